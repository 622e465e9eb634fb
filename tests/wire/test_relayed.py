"""A relayed response (a Gemini upstream's bytes, parsed on first use): its bytes go out
as they came while nothing reads into it; anything that reads, writes, copies, compares
or serialises it parses it first, so an edit is always sent."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from genroute.errors import UpstreamMalformed
from genroute.providers.base import stream_content
from genroute.wire import (
    Candidate,
    Content,
    GenerateContentResponse,
    Part,
    ResponseFacts,
    UsageMetadata,
    dump_json,
    text_answer,
    text_chunk,
    wire_bytes,
)
from genroute.wire.response import _plain_usage

BODY = {
    "candidates": [
        {
            "content": {"role": "model", "parts": [{"text": "Hello"}, {"text": " there"}]},
            "finishReason": "STOP",
            "index": 0,
            "futureField": {"kept": True},
        }
    ],
    "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2, "totalTokenCount": 5},
    "modelVersion": "gemini-2.5-flash",
    "responseId": "r1",
    "unknownTopLevel": [1, 2],
}
RAW = orjson.dumps(BODY, option=orjson.OPT_INDENT_2)  # Google's replies are indented


def relayed(raw: bytes = RAW, *, chunk: bool = False) -> GenerateContentResponse:
    return GenerateContentResponse.relayed(raw, "gemini", chunk=chunk)


def parsed() -> GenerateContentResponse:
    return GenerateContentResponse.model_validate_json(RAW)


def test_untouched_it_goes_out_as_its_own_bytes_and_says_its_facts() -> None:
    response = relayed()
    assert wire_bytes(response) is RAW
    facts = response.facts()
    assert facts == ResponseFacts.of(parsed())
    assert facts == ResponseFacts(
        UsageMetadata(prompt_token_count=3, candidates_token_count=2, total_token_count=5),
        "gemini-2.5-flash",
        "STOP",
        len("Hello there"),
    )
    assert wire_bytes(response) is RAW  # reading the facts parsed nothing


def test_on_one_line_its_line_breaks_become_spaces() -> None:
    line = wire_bytes(relayed(), one_line=True)
    assert b"\n" not in line and b"\r" not in line
    assert orjson.loads(line) == BODY
    one = orjson.dumps(BODY)
    assert wire_bytes(relayed(one), one_line=True) is one


def test_a_read_parses_it_and_an_edit_after_is_sent() -> None:
    response = relayed()
    assert response.candidates is not None
    assert response.candidates[0].content is not None
    response.candidates[0].finish_reason = "SAFETY"
    sent = orjson.loads(wire_bytes(response))
    assert sent["candidates"][0]["finishReason"] == "SAFETY"
    assert sent["candidates"][0]["futureField"] == {"kept": True}  # unknown fields kept
    assert sent["unknownTopLevel"] == [1, 2]
    assert response.facts().finish_reason == "SAFETY"


def test_an_assignment_without_a_read_parses_first_and_keeps_the_rest() -> None:
    response = relayed()
    response.model_version = "edited"
    sent = orjson.loads(wire_bytes(response))
    assert sent["modelVersion"] == "edited" and sent["responseId"] == "r1"
    assert sent["candidates"] == orjson.loads(dump_json(parsed()))["candidates"]


def _serialised(r: GenerateContentResponse) -> Any:
    return orjson.loads(r.__pydantic_serializer__.to_json(r, by_alias=True, exclude_none=True))


USES: dict[str, Callable[[GenerateContentResponse], Any]] = {
    "dump_json": lambda r: orjson.loads(dump_json(r)),
    "to_dict": lambda r: r.to_dict(),
    "model_dump": lambda r: r.model_dump(),
    "model_dump_json": lambda r: orjson.loads(r.model_dump_json(by_alias=True)),
    "the serializer itself": _serialised,
    "model_copy": lambda r: r.model_copy(update={"response_id": "x"}).model_dump(),
    "copy": lambda r: copy.copy(r).model_dump(),
    "deepcopy": lambda r: copy.deepcopy(r).model_dump(),
    "pickle": lambda r: pickle.loads(pickle.dumps(r)).model_dump(),
    "repr": repr,
    "iter": lambda r: dict(iter(r)),
    "fields_set": lambda r: r.model_fields_set,
    "extra": lambda r: r.model_extra,
    "text": lambda r: r.text,
}


@pytest.mark.parametrize("use", USES.values(), ids=USES.keys())
def test_every_use_sees_what_a_parsed_response_shows(
    use: Callable[[GenerateContentResponse], Any],
) -> None:
    assert use(relayed()) == use(parsed())


def test_it_equals_the_parsed_response_both_ways() -> None:
    assert relayed() == parsed()
    assert parsed() == relayed()
    assert relayed() != GenerateContentResponse()


def test_a_deep_shape_error_is_malformed_when_it_is_read() -> None:
    body = dict(BODY, candidates=[{"safetyRatings": "not a list"}])
    response = relayed(orjson.dumps(body))
    with pytest.raises(UpstreamMalformed, match="gemini upstream sent a malformed response"):
        _ = response.candidates


@pytest.mark.parametrize(
    "raw",
    [
        b"[]",
        b'{"candidates": {}}',
        b'{"candidates": [1]}',
        b'{"candidates": [{"content": "x"}]}',
        b'{"candidates": [{"content": {"parts": "x"}}]}',
        b'{"candidates": [{"content": {"parts": [1]}}]}',
        b'{"candidates": [{"content": {"parts": [{"text": 1}]}}]}',
        b'{"candidates": [{"finishReason": 1}]}',
        b'{"modelVersion": 1}',
    ],
)
def test_facts_of_the_wrong_shape_are_refused_at_once(raw: bytes) -> None:
    with pytest.raises(ValueError):
        relayed(raw)


def test_a_body_cannot_pose_as_relayed_bytes() -> None:
    response = GenerateContentResponse.model_validate({"_raw": "x", "_facts": 1})
    assert response.__dict__.get("_raw") is None
    assert orjson.loads(wire_bytes(response)) == {"_raw": "x", "_facts": 1}


def test_a_chunks_usage_is_built_only_when_read() -> None:
    assert relayed().facts()._usage is not None  # a whole response's is used: built at once
    facts = relayed(chunk=True).facts()
    assert facts.has_usage and facts.total_tokens == 5
    assert facts._usage is None  # checked, not built
    assert facts.usage == UsageMetadata(
        prompt_token_count=3, candidates_token_count=2, total_token_count=5
    )
    assert facts.usage is facts.usage  # built once


@pytest.mark.parametrize(
    ("usage", "total"),
    [
        ({"total_token_count": 7}, 7),  # snake_case, as the model also reads it
        ({"totalTokenCount": "7"}, 7),  # a numeric string, which the model takes
        ({"totalTokenCount": 7, "futureCount": 1}, 7),  # an unknown field, kept
    ],
)
def test_a_usage_out_of_the_plain_shape_is_built_by_the_model_at_once(
    usage: dict[str, Any], total: int
) -> None:
    facts = relayed(orjson.dumps({**BODY, "usageMetadata": usage}), chunk=True).facts()
    assert facts._usage is not None and facts.total_tokens == total
    assert facts.usage == UsageMetadata.model_validate(usage)


@pytest.mark.parametrize(
    "usage",
    [{"totalTokenCount": "many"}, {"promptTokensDetails": [{"tokenCount": []}]}, []],
)
def test_a_malformed_usage_is_refused_when_the_chunk_is_read(usage: Any) -> None:
    with pytest.raises(ValueError):
        relayed(orjson.dumps({**BODY, "usageMetadata": usage}), chunk=True)


USAGE_KEYS = ["promptTokenCount", "totalTokenCount", "trafficType", "candidatesTokensDetails"]
ANY = st.none() | st.integers() | st.text(max_size=3) | st.booleans() | st.floats()
DETAIL = st.dictionaries(st.sampled_from(["modality", "tokenCount", "x"]), ANY)


@given(st.dictionaries(st.sampled_from([*USAGE_KEYS, "other"]), ANY | st.lists(DETAIL, max_size=2)))
def test_a_usage_left_for_later_is_one_the_model_accepts_as_it_is(usage: dict[str, Any]) -> None:
    """Built when first read, it cannot fail then: the model takes it, with nothing extra."""
    if _plain_usage(usage):
        built = UsageMetadata.model_validate(usage)
        assert built.model_extra == {}
        kept = {k: [{n: x for n, x in d.items() if x is not None} for d in v]
                if isinstance(v, list) else v for k, v in usage.items() if v is not None}  # fmt: skip
        assert built.model_dump(by_alias=True, exclude_none=True) == kept


@given(
    text=st.text(max_size=40),
    index=st.integers(min_value=0, max_value=3),
    thought=st.booleans(),
    signature=st.none() | st.text(max_size=8),
    model=st.none() | st.text(max_size=12),
    response_id=st.none() | st.text(max_size=12),
)
def test_a_text_chunk_is_what_the_models_would_write(
    text: str,
    index: int,
    thought: bool,
    signature: str | None,
    model: str | None,
    response_id: str | None,
) -> None:
    """A translator's text chunk, written at once, sends the bytes and has the facts of the
    same chunk built as models; reading into it gives those models."""
    built = GenerateContentResponse(
        candidates=[
            Candidate(
                content=stream_content(
                    [Part(text=text, thought=thought or None, thought_signature=signature)]
                ),
                index=index,
            )
        ],
        model_version=model,
        response_id=response_id,
    )
    written = text_chunk(
        text,
        index=index,
        thought=thought,
        thought_signature=signature,
        model_version=model,
        response_id=response_id,
    )
    assert wire_bytes(written) == dump_json(built)
    assert written.facts() == ResponseFacts.of(built)
    assert written == built  # parses it
    assert written.candidates[0].content.parts[0].text == text


def test_an_edited_text_chunk_sends_its_edit() -> None:
    chunk = text_chunk("Hello", model_version="gpt-4o-mini")
    chunk.candidates[0].finish_reason = "SAFETY"
    sent = orjson.loads(wire_bytes(chunk))
    assert sent["candidates"][0]["finishReason"] == "SAFETY"
    assert sent["candidates"][0]["content"]["parts"] == [{"text": "Hello"}]


@given(
    text=st.text(min_size=1, max_size=40),
    finish=st.sampled_from(["STOP", "MAX_TOKENS", "SAFETY", "OTHER"]),
    message=st.none() | st.text(max_size=12),
    usage=st.none()
    | st.builds(
        UsageMetadata,
        prompt_token_count=st.none() | st.integers(0, 10**6),
        candidates_token_count=st.none() | st.integers(0, 10**6),
        total_token_count=st.none() | st.integers(0, 10**6),
        thoughts_token_count=st.none() | st.integers(0, 10**6),
    ),
    model=st.none() | st.text(max_size=12),
    response_id=st.none() | st.text(max_size=12),
)
def test_a_text_answer_is_what_the_models_would_write(
    text: str,
    finish: str,
    message: str | None,
    usage: UsageMetadata | None,
    model: str | None,
    response_id: str | None,
) -> None:
    """A translator's whole text answer, written at once, sends the bytes and has the facts
    of the same answer built as models; reading into it gives those models."""
    built = GenerateContentResponse(
        candidates=[
            Candidate(
                content=Content(role="model", parts=[Part(text=text)]),
                finish_reason=finish,
                finish_message=message,
                index=0,
            )
        ],
        usage_metadata=usage,
        model_version=model,
        response_id=response_id,
    )
    written = text_answer(
        text,
        finish_reason=finish,
        finish_message=message,
        usage=usage,
        model_version=model,
        response_id=response_id,
    )
    assert wire_bytes(written) == dump_json(built)
    assert written.facts() == ResponseFacts.of(built)
    assert written == built
    written.candidates[0].finish_reason = "SAFETY"  # an edit is sent
    assert orjson.loads(wire_bytes(written))["candidates"][0]["finishReason"] == "SAFETY"
