"""A generateContent request read from a client's JSON is sent on as that JSON, until
anything changes it."""

from __future__ import annotations

import copy

import orjson
import pytest

from genroute.providers.gemini.translate import to_wire
from genroute.server.app import parse_json
from genroute.wire import Content, GenerateContentRequest, GenerationConfig, Part

BODY = orjson.dumps(
    {
        "contents": {"role": "user", "parts": [{"text": "hi", "future_part_field": 1}]},
        "generation_config": {"temperature": 0.5, "top_k": None},
        "labels": {"team": "a"},
    }
)
# what genroute writes when it serialises the same request itself
SERIALISED = {
    "contents": [{"role": "user", "parts": [{"text": "hi", "future_part_field": 1}]}],
    "generationConfig": {"temperature": 0.5},
    "labels": {"team": "a"},
}


def parsed() -> GenerateContentRequest:
    return parse_json(BODY, GenerateContentRequest)


def test_an_unchanged_request_is_sent_as_the_client_wrote_it() -> None:
    request = parsed()
    assert to_wire(request) is BODY
    assert request.sent_body() is BODY
    # it is the request the JSON says, as a model (the body is no field of it)
    assert request.contents[0].parts[0].text == "hi"
    assert orjson.loads(request.model_dump_json(by_alias=True, exclude_none=True)) == SERIALISED
    assert request == GenerateContentRequest.model_validate(orjson.loads(BODY))


@pytest.mark.parametrize(
    "change",
    [
        lambda r: setattr(r, "contents", [Content(role="user", parts=[Part(text="other")])]),
        lambda r: setattr(r, "generation_config", GenerationConfig(temperature=1.0)),
        lambda r: r.model_copy(update={"cached_content": "cachedContents/x"}),
        lambda r: r.model_copy(),
        lambda r: r.model_copy(deep=True),
        copy.copy,
        copy.deepcopy,
    ],
    ids=["contents", "config", "copy-update", "copy", "deep-copy", "copy.copy", "deepcopy"],
)
def test_a_changed_or_copied_request_is_serialised(change: object) -> None:
    request = parsed()
    result = change(request)  # type: ignore[operator]
    changed = result if isinstance(result, GenerateContentRequest) else request
    assert changed.sent_body() is None
    sent = orjson.loads(to_wire(changed))
    assert sent == orjson.loads(changed.model_dump_json(by_alias=True, exclude_none=True))
    if changed is not request:  # a copy leaves the original as it was
        assert request.sent_body() is BODY


def test_a_body_that_names_the_model_is_serialised_without_it() -> None:
    body = orjson.dumps({"model": "models/x", "contents": [{"parts": [{"text": "hi"}]}]})
    request = parse_json(body, GenerateContentRequest)
    assert request.sent_body() is None
    assert orjson.loads(to_wire(request)) == {"contents": [{"parts": [{"text": "hi"}]}]}


def test_a_reshaped_body_is_not_kept() -> None:
    request = parse_json(BODY, GenerateContentRequest, reshape=lambda d: d)
    assert request.sent_body() is None


def test_a_request_built_in_python_is_serialised() -> None:
    request = GenerateContentRequest(contents=[Content(role="user", parts=[Part(text="hi")])])
    assert request.sent_body() is None
    assert orjson.loads(to_wire(request)) == {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}]
    }
