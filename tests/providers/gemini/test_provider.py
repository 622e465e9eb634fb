"""`GeminiProvider` over a MockTransport: where it sends, with which key, what it sends, and
that model names can never change the upstream path."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import orjson
import pytest
import yarl

from genroute.call import Operation
from genroute.errors import FailureReason, InvalidRequest, UpstreamError
from genroute.providers.gemini import GeminiProvider
from genroute.providers.transport import HttpResponse, MockTransport
from genroute.wire import (
    BatchEmbedContentsRequest,
    CountTokensRequest,
    EmbedContentRequest,
    GenerateContentRequest,
)
from tests.fakes.mock_http import Upstream, call, json_reply, spec, sse_reply

REQUEST = GenerateContentRequest.model_validate(
    {
        "model": "models/the-clients-name",
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
        "futureField": {"kept": True},
    }
)
ROOT = "https://generativelanguage.googleapis.com/v1beta"


def provider(model: str = "gemini-2.5-flash", **params: Any) -> tuple[GeminiProvider, Upstream]:
    upstream = Upstream("gemini")
    built = GeminiProvider(spec("gemini", model, **params), MockTransport(upstream))
    return built, upstream


async def test_generate_sends_the_request_as_given_less_its_model() -> None:
    gemini, upstream = provider(extra_headers={"x-extra": "1"})
    await gemini.generate(call(), REQUEST)
    sent = upstream.requests[0]
    assert sent.url == f"{ROOT}/models/gemini-2.5-flash:generateContent"
    assert dict(sent.headers) == {
        "content-type": "application/json",
        "x-goog-api-key": "test-key",
        "x-extra": "1",
    }
    body = orjson.loads(sent.body)
    assert "model" not in body and body["futureField"] == {"kept": True}
    assert body["safetySettings"][0]["threshold"] == "BLOCK_NONE"


async def test_drop_params_changes_nothing_for_the_passthrough() -> None:
    plain, plain_upstream = provider()
    dropping, dropping_upstream = provider(drop_params=True)
    await plain.generate(call(), REQUEST)
    await dropping.generate(call(), REQUEST)
    assert plain_upstream.requests[0].body == dropping_upstream.requests[0].body


async def test_the_reply_passes_through_with_its_unknown_fields_and_edits_show() -> None:
    gemini, _ = provider()
    response = await gemini.generate(call(), REQUEST)
    assert response.to_dict()["futureField"] == {
        "note": "unknown to current SDKs",
        "values": [1, 2, 3],
    }
    response.model_version = "edited"
    assert response.to_dict()["modelVersion"] == "edited"


async def test_stream_asks_for_sse() -> None:
    gemini, upstream = provider()
    chunks = [c async for c in gemini.stream(call(Operation.STREAM), REQUEST)]
    assert (
        upstream.requests[0].url == f"{ROOT}/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    )
    assert chunks[-1].candidates and chunks[-1].candidates[0].finish_reason == "STOP"


async def test_a_mid_stream_error_event_keeps_googles_code_and_reason() -> None:
    error = {"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}}
    chunk = {"candidates": [{"content": {"parts": [{"text": "a"}]}}]}
    gemini = GeminiProvider(
        spec("gemini", "gemini-2.5-flash"), MockTransport(lambda r: sse_reply([chunk, error]))
    )
    received = []
    with pytest.raises(UpstreamError) as info:
        async for c in gemini.stream(call(Operation.STREAM), REQUEST):
            received.append(c)
    assert len(received) == 1
    assert (info.value.code, info.value.reason) == (429, FailureReason.RATE_LIMIT)


async def test_count_tokens_names_the_upstream_model_inside_the_request() -> None:
    gemini, upstream = provider("tunedModels/my-tune")
    inner = {"model": "models/alias", "contents": [{"parts": [{"text": "a b c"}]}]}
    request = CountTokensRequest.model_validate({"generateContentRequest": inner})
    counted = await gemini.count_tokens(call(Operation.COUNT_TOKENS), request)
    assert counted.total_tokens == 3
    sent = upstream.requests[0]
    assert sent.url == f"{ROOT}/tunedModels/my-tune:countTokens"
    assert orjson.loads(sent.body)["generateContentRequest"]["model"] == "tunedModels/my-tune"


async def test_embeddings_go_to_the_upstream_model_and_report_no_tokens() -> None:
    gemini, upstream = provider("text-embedding-004")
    one = EmbedContentRequest.model_validate(
        {"model": "models/alias", "content": {"parts": [{"text": "a"}]}}
    )
    single = await gemini.embed(call(Operation.EMBED), one)
    batch = await gemini.batch_embed(
        call(Operation.BATCH_EMBED), BatchEmbedContentsRequest(requests=[one, one])
    )
    assert single.embedding.values and len(batch.embeddings) == 2
    assert single._input_tokens is None and batch._input_tokens is None
    assert [r.url.rsplit(":", 1)[1] for r in upstream.requests] == [
        "embedContent",
        "batchEmbedContents",
    ]
    assert "model" not in orjson.loads(upstream.requests[0].body)
    inner = orjson.loads(upstream.requests[1].body)["requests"]
    assert [r["model"] for r in inner] == ["models/text-embedding-004"] * 2


@pytest.mark.parametrize(
    ("model", "collection", "name"),
    [
        ("gemini-2.5-flash", "models", "gemini-2.5-flash"),
        ("models/gemini-2.5-pro", "models", "gemini-2.5-pro"),
        ("tunedModels/my-tune", "tunedModels", "my-tune"),
        ("gemini-x/../../files/abc", "models", "gemini-x/../../files/abc"),
        ("models/../../v1/files", "models", "../../v1/files"),
        ("gemini-%2F..%2Fx", "models", "gemini-%2F..%2Fx"),
        ("gemini?key=stolen#x", "models", "gemini?key=stolen#x"),
        ("a b/c", "models", "a b/c"),
    ],
)
async def test_a_model_name_stays_one_path_segment(model: str, collection: str, name: str) -> None:
    """A wildcard deployment (`gemini-*`) captures whatever the client names; no name may
    reach another upstream path, add a query or cut the URL short."""
    gemini, upstream = provider(model)
    await gemini.generate(call(), REQUEST)
    url = yarl.URL(upstream.requests[0].url)  # as aiohttp will parse it
    assert url.raw_parts[:3] == ("/", "v1beta", collection) and len(url.raw_parts) == 4
    assert unquote(url.raw_parts[3]) == f"{name}:generateContent"
    assert url.query_string == "" and url.fragment == ""


@pytest.mark.parametrize("model", ["..", "models/..", "tunedModels/."])
def test_dot_segments_are_not_model_names(model: str) -> None:
    with pytest.raises(InvalidRequest):
        provider(model)


@pytest.mark.parametrize(
    ("env", "api_base", "url"),
    [
        ({}, None, f"{ROOT}/models/m:generateContent"),
        ({"GEMINI_API_BASE": " http://proxy:8080/ "}, None, "http://proxy:8080/v1beta/models/m:generateContent"),
        ({"GOOGLE_GEMINI_BASE_URL": "http://b/v1"}, None, "http://b/v1/models/m:generateContent"),
        ({"GEMINI_API_BASE": "http://env"}, "http://cfg/v1alpha/", "http://cfg/v1alpha/models/m:generateContent"),
    ],
)  # fmt: skip
async def test_the_base_url(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], api_base: str | None, url: str
) -> None:
    for name in ("GEMINI_API_BASE", "GOOGLE_GEMINI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    gemini, upstream = provider("m", api_base=api_base)
    await gemini.generate(call(), REQUEST)
    assert upstream.requests[0].url == url


async def test_the_key_comes_from_the_config_else_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "  ")
    monkeypatch.setenv("GOOGLE_API_KEY", " from-env \n")
    from_env, upstream = provider(api_key=None)
    await from_env.generate(call(), REQUEST)
    assert upstream.requests[0].headers["x-goog-api-key"] == "from-env"
    monkeypatch.delenv("GOOGLE_API_KEY")
    keyless, upstream = provider(api_key=None)
    await keyless.generate(call(), REQUEST)
    assert "x-goog-api-key" not in upstream.requests[0].headers


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (400, {"error": {"code": 400, "message": "API key not valid.", "status": "INVALID_ARGUMENT",
               "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]}},
         FailureReason.AUTH),
        (400, {"error": {"code": 400, "message": "The input token count (2000000) exceeds the maximum "
               "number of tokens allowed (1048576).", "status": "INVALID_ARGUMENT"}}, FailureReason.CONTEXT_WINDOW),
        (400, {"error": {"code": 400, "message": "* GenerateContentRequest.contents: contents is not specified",
               "status": "INVALID_ARGUMENT"}}, FailureReason.BAD_REQUEST),
        (503, {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}},
         FailureReason.OVERLOADED),
    ],
)  # fmt: skip
async def test_error_replies_carry_their_reason(
    status: int, body: Any, reason: FailureReason
) -> None:
    gemini = GeminiProvider(spec("gemini", "m"), MockTransport(lambda r: json_reply(body, status)))
    with pytest.raises(UpstreamError) as info:
        await gemini.generate(call(), REQUEST)
    assert info.value.reason is reason and info.value.code == status


async def test_a_reply_is_closed_after_it_is_read() -> None:
    closed: list[bool] = []
    reply = orjson.dumps({"candidates": []})
    gemini = GeminiProvider(
        spec("gemini", "m"),
        MockTransport(lambda r: HttpResponse(200, {}, reply, on_close=lambda: closed.append(True))),
    )
    await gemini.generate(call(), REQUEST)
    assert closed == [True]
