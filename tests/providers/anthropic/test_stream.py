"""Golden fixtures for the Anthropic stream decoder: SSE events in, Gemini chunks out.

Each `stream_<name>.in.json` holds the reply context and the events exactly as Anthropic
sends them (checked against the SDK's RawMessageStreamEvent); `.out.json` the chunks, and
the error that ends the stream if one does.
"""

from __future__ import annotations

import contextlib
import functools
import json
from typing import Any

import orjson
import pytest
from pydantic import TypeAdapter

from genroute.errors import GenrouteError
from genroute.providers.anthropic.stream import StreamDecoder
from genroute.providers.anthropic.translate import ReplyContext, from_wire
from genroute.wire import GenerateContentResponse
from tests.fakes.anthropic_upstream import message, stream_events, text, thinking, tool_use
from tests.providers.anthropic.golden import FIXTURES, context, expect, load, names


@functools.cache
def sdk_events() -> tuple[TypeAdapter[Any], Any]:
    """The anthropic SDK's stream event and error types, imported on first use: importing
    the SDK costs ~1.1 s of CPU, which every xdist worker would otherwise pay collecting."""
    from anthropic.types import RawMessageStreamEvent
    from anthropic.types.shared import ErrorResponse

    return TypeAdapter(RawMessageStreamEvent), ErrorResponse


def decode(events: list[dict[str, Any]], ctx: ReplyContext) -> tuple[list[Any], Any]:
    decoder = StreamDecoder(ctx)
    chunks: list[GenerateContentResponse] = []
    error = None
    try:
        for event in events:
            chunks += decoder.feed(event)
        chunks += decoder.finish()
    except GenrouteError as exc:
        error = {"code": exc.code, "status": exc.status, "message": exc.message}
    return [c.to_dict() for c in chunks], error


@pytest.mark.parametrize("name", names("stream"))
def test_stream_matches_golden(name: str) -> None:
    case = load(FIXTURES / f"{name}.in.json")
    events, error_response = sdk_events()
    for event in case["events"]:
        if event["type"] == "error":
            error_response.model_validate(event)
        elif event["type"] != "ping":
            events.validate_python(event)
    chunks, error = decode(case["events"], context(case))
    actual: dict[str, Any] = {"chunks": chunks}
    if error is not None:
        actual["error"] = error
    assert actual == expect(name, actual)
    _check_chunk_rules(chunks, finished=error is None)


def _check_chunk_rules(chunks: list[dict[str, Any]], finished: bool) -> None:
    """No empty parts lists, no null finishReason, finishReason and usage only at the end."""
    for i, chunk in enumerate(chunks):
        candidate = chunk["candidates"][0]
        last = finished and i == len(chunks) - 1
        assert ("finishReason" in candidate) is last
        assert ("usageMetadata" in chunk) is last
        if "content" in candidate:
            assert candidate["content"]["parts"]
        else:
            assert last
        assert chunk["modelVersion"] and chunk["responseId"]


@pytest.mark.parametrize(
    "ctx",
    [
        ReplyContext(include_thoughts=True),
        ReplyContext(),
        ReplyContext(json_tool="json_output"),
    ],
)
@pytest.mark.parametrize(
    "content",
    [
        [text("Hello there, how are you today?")],
        [thinking("Let me think about it."), text("Fine."), tool_use("f", {"a": [1, 2]})],
        [thinking("Two calls."), tool_use("f", {"x": 1}), tool_use("f", {"x": 2})],
        [tool_use("json_output", {"answer": 42, "why": "because"})],
    ],
)
def test_stream_assembles_what_generate_returns(
    ctx: ReplyContext, content: list[dict[str, Any]]
) -> None:
    """Joined chunks carry the same parts as the non-streamed reply of the same message."""
    reply = message({"model": "claude-sonnet-4-5", "messages": []}, content)
    chunks, error = decode(stream_events(reply), ctx)
    assert error is None
    streamed = [p for c in chunks for p in c["candidates"][0].get("content", {}).get("parts", [])]
    whole = from_wire(orjson.dumps(reply), ctx).to_dict()
    assert _joined(streamed) == _joined(whole["candidates"][0]["content"]["parts"])
    assert chunks[-1]["usageMetadata"] == whole["usageMetadata"]
    assert chunks[-1]["candidates"][0]["finishReason"] == whole["candidates"][0]["finishReason"]


def _joined(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Adjacent text deltas of the same kind merged, as a client concatenates them."""
    out: list[dict[str, Any]] = []
    for part in parts:
        if part == {"text": ""}:  # what a chunk that only finishes the answer carries
            continue
        prev = out[-1] if out else None
        same_kind = prev is not None and bool(prev.get("thought")) == bool(part.get("thought"))
        if (
            prev is not None
            and "text" in prev
            and "text" in part
            and same_kind
            and "thoughtSignature" not in part
        ):
            prev["text"] += part["text"]
        else:
            out.append(dict(part))
    for part in out:  # JSON answers compare as values: the stream keeps upstream spacing
        with contextlib.suppress(ValueError):
            part["text"] = json.loads(part.get("text", ""))
    return out


def test_a_stream_cut_before_message_stop_is_an_error() -> None:
    reply = message({"model": "m", "messages": []}, [text("partial answer")])
    chunks, error = decode(stream_events(reply)[:-2], ReplyContext())
    assert chunks and error == {
        "code": 502,
        "status": "UNAVAILABLE",
        "message": "anthropic stream ended before message_stop",
    }
