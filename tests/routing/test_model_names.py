"""Model names a wildcard captures cannot walk the upstream's URL.

A client's name matching `gemini-*` becomes part of the upstream model id, which the Gemini
provider puts in the request path. Whatever the name, either the Router refuses it with a
400 naming the model, or the upstream receives exactly `/v1beta/models/<id>:<method>`:
no other path, no query, no fragment.
"""

from __future__ import annotations

import http.client
import json
import random
from pathlib import Path
from typing import Any

import pytest

from genroute.call import Operation
from genroute.errors import GenrouteError, InvalidRequest
from genroute.routing.groups import MAX_MODEL_NAME, check_model_id
from genroute.wire import CountTokensRequest
from tests.calls import call
from tests.conftest import InProcessGateway
from tests.fakes.gemini_upstream import FakeGemini
from tests.routing.conftest import REQUEST, UPSTREAM_KEY, make_router

REFUSED = [
    "gemini-x/../../../evil#",  # the issue's name, as the edge decodes it
    "gemini-x/../../evil",
    "gemini-x/..",
    "gemini-x/./y",
    "gemini-x//y",
    "gemini-x/",
    "gemini-x?key=stolen",
    "gemini-x#fragment",
    "gemini-x%2F..%2Fevil",
    "gemini-x%3Fq",
    "gemini-x\\..\\evil",
    "gemini-x\x00",
    "gemini-x\r\nHost: evil",
    "gemini-x\x7f",
    "gemini- x",
    "gemini-x\ty",
    "gemini-x\u00a0y",  # no-break space
    "gemini-x\u202ey",  # right-to-left override
    "gemini-x\u200by",  # zero-width space
    "gemini-" + "a" * MAX_MODEL_NAME,
]
ACCEPTED = [
    "gemini-2.5-flash",
    "gemini-x:streamGenerateContent",
    "gemini-x@001",
    "gemini-a/b",
    "gemini-x;y=1&z",
    "gemini-x+y~z",
    "gemini-über",
    "gemini-...",
    "gemini-" + "a" * (MAX_MODEL_NAME - len("gemini-")),
]
ALPHABET = "ab-.:/?#%\\ \t\x00\x1f@&=+;~é\u202e"


def wildcard_entries(fake: FakeGemini) -> list[dict[str, Any]]:
    params = {"model": "gemini/gemini-*", "api_key": UPSTREAM_KEY, "api_base": fake.base_url}
    return [{"model_name": "gemini-*", "params": params}]


@pytest.mark.parametrize("name", REFUSED, ids=range(len(REFUSED)))
async def test_names_no_model_id_looks_like_are_refused(fakes: list[FakeGemini], name: str) -> None:
    router = make_router(wildcard_entries(fakes[0]))
    with pytest.raises(InvalidRequest) as info:
        await router.generate(call(name), REQUEST)
    assert info.value.code == 400 and info.value.status == "INVALID_ARGUMENT"
    assert repr(name[:40])[1:-1] in info.value.message  # the message names the model
    assert fakes[0].requests == []
    assert all(d.model_name != name for d in router._groups.all_deployments())


@pytest.mark.parametrize("name", ACCEPTED, ids=range(len(ACCEPTED)))
async def test_accepted_names_reach_exactly_their_own_path(
    fakes: list[FakeGemini], name: str
) -> None:
    await _check_path(fakes[0], name)


async def test_any_name_is_refused_or_stays_under_models(fakes: list[FakeGemini]) -> None:
    """A property over names drawn from the characters that mean something in a URL."""
    rng = random.Random(20261202)
    fake = fakes[0]
    router = make_router(wildcard_entries(fake))
    refused = 0
    for _ in range(300):
        name = "gemini-" + "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 12)))
        fake.reset()
        try:
            await router.generate(call(name), REQUEST)
        except InvalidRequest as exc:
            refused += 1
            assert exc.code == 400 and "is not a valid model name" in exc.message
            assert fake.requests == []
            continue
        except GenrouteError:
            pass  # the fake's own 404 for a model it does not know
        _assert_one_request_under_models(fake, name.strip())
    assert 0 < refused < 300


async def test_stream_and_count_tokens_paths_are_escaped_too(fakes: list[FakeGemini]) -> None:
    fake = fakes[0]
    router = make_router(wildcard_entries(fake))
    name = "gemini-a/b:c@d"
    with pytest.raises(GenrouteError):  # the fake's 404: it knows no model `b:c@d`
        async for _ in router.stream(call(name, stream=True), REQUEST):
            pass
    count = CountTokensRequest.model_validate({"contents": REQUEST.model_dump()["contents"]})
    with pytest.raises(GenrouteError):
        await router.count_tokens(call(name, operation=Operation.COUNT_TOKENS), count)
    paths = [(r.path, r.query) for r in fake.requests]
    assert paths == [
        ("/v1beta/models/gemini-a/b:c@d:streamGenerateContent", {"alt": "sse"}),
        ("/v1beta/models/gemini-a/b:c@d:countTokens", {}),
    ]


def test_check_model_id_alone() -> None:
    check_model_id("x-a/b", ["a/b"], "openrouter/a/b")  # OpenRouter ids have a `/`
    with pytest.raises(InvalidRequest):
        check_model_id("x-..", [".."], "openrouter/..")
    with pytest.raises(InvalidRequest):
        check_model_id("x-a", ["a\n"], "openrouter/a\n")


def test_the_issues_path_through_the_gateway(fakes: list[FakeGemini], tmp_path: Path) -> None:
    """The raw path of the issue, sent as is: a 400 naming the model, nothing upstream."""
    fake = fakes[0]
    gateway = InProcessGateway({"model_list": wildcard_entries(fake)}, tmp_path)
    try:
        for path in (
            "/v1beta/models/gemini-x%2F..%2F..%2F..%2Fevil%23:generateContent",
            "/v1beta/models/gemini-x%3Fkey=1:generateContent",
            "/v1beta/models/gemini-x%2F%2E%2E%2Fevil:streamGenerateContent?alt=sse",
        ):
            status, body = _post(gateway, path)
            assert status == 400, body
            error = body["error"]
            assert error["status"] == "INVALID_ARGUMENT" and "gemini-x" in error["message"]
        assert fake.requests == []
        status, body = _post(gateway, "/v1beta/models/gemini-2.5-flash:generateContent")
        assert status == 200, body
        assert [r.path for r in fake.requests] == [
            "/v1beta/models/gemini-2.5-flash:generateContent"
        ]
    finally:
        gateway.stop()


def _post(gateway: InProcessGateway, path: str) -> tuple[int, dict[str, Any]]:
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    try:
        body = json.dumps({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
        connection.request("POST", path, body, {"content-type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


async def _check_path(fake: FakeGemini, name: str) -> None:
    router = make_router(wildcard_entries(fake))
    try:
        await router.generate(call(name), REQUEST)
    except GenrouteError as exc:
        assert exc.code == 404, exc  # the fake does not know every model
    _assert_one_request_under_models(fake, name)


def _assert_one_request_under_models(fake: FakeGemini, name: str) -> None:
    requests = fake.requests
    assert len(requests) == 1, [r.path for r in requests]
    assert requests[0].path == f"/v1beta/models/{name}:generateContent"
    assert requests[0].query == {} and requests[0].method == "POST"


async def test_a_wildcard_entrys_prices_price_every_name_it_matches(
    fakes: list[FakeGemini],
) -> None:
    from genroute.cost import pricer_for
    from genroute.pipeline.metering import Metered

    entries = wildcard_entries(fakes[0])
    entries[0]["model_info"] = {"input_cost_per_token": 1.0, "output_cost_per_token": 10.0}
    router = make_router(entries)
    metered = Metered(router, pricer_for(router.config.model_list))
    await metered.generate(ctx := call("gemini-2.5-flash"), REQUEST)
    usage = ctx.meter.usage
    assert usage is not None and usage.prompt_token_count and usage.candidates_token_count
    thinking = usage.thoughts_token_count or 0
    expected = usage.prompt_token_count + 10.0 * (usage.candidates_token_count + thinking)
    assert ctx.meter.cost == pytest.approx(expected)
