"""Golden fixtures for the ConverseStream decoder: events in, Gemini chunks out.

Each `stream_<name>.in.json` holds the reply context and the events exactly as Bedrock
sends them (each checked against its member of botocore's `ConverseStreamOutput` shape),
and optionally the exception that interrupts the stream; `.out.json` the chunks, and the
error that ends the stream if one does. The same events also go through the binary
framing and the provider, cut at every byte.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from genroute.call import Operation
from genroute.errors import GenrouteError
from genroute.providers.bedrock.errors import stream_error
from genroute.providers.bedrock.response import ReplyContext, from_wire
from genroute.providers.bedrock.stream import StreamDecoder
from genroute.providers.registry import build_provider
from genroute.providers.transport import HttpResponse, MockTransport
from genroute.wire import GenerateContentRequest, GenerateContentResponse
from tests.fakes.bedrock_upstream import (
    event_frame,
    exception_frame,
    output_shape,
    reasoning,
    redacted,
    reply_for,
    shape_problems,
    stream_events,
    text,
    tool_use,
)
from tests.fakes.mock_http import call, pieces
from tests.providers.bedrock.golden import FIXTURES, context, expect, load, names, spec

STREAM = output_shape("ConverseStream").members["stream"]


def decode(case: dict[str, Any], ctx: ReplyContext) -> tuple[list[Any], Any]:
    decoder = StreamDecoder(ctx, "req-1")
    chunks: list[GenerateContentResponse] = []
    error = None
    try:
        for event_type, payload in case["events"]:
            chunks += decoder.feed(event_type, orjson.dumps(payload))
        if exception := case.get("exception"):
            member = exception["member"]
            body = {k: v for k, v in exception.items() if k != "member"}
            headers = {":message-type": "exception", ":exception-type": member}
            raise stream_error("exception", headers, orjson.dumps(body), "req-1")
        chunks += decoder.finish()
    except GenrouteError as exc:
        error = {"code": exc.code, "status": exc.status, "message": exc.message}
        error["reason"] = exc.reason.value
    return [c.to_dict() for c in chunks], error


@pytest.mark.parametrize("name", names("stream"))
def test_stream_matches_golden_and_the_service_model(name: str) -> None:
    case = load(FIXTURES / f"{name}.in.json")
    for event_type, payload in case["events"]:
        assert shape_problems(payload, STREAM.members[event_type], event_type) == []
    if exception := case.get("exception"):
        shape = STREAM.members[exception["member"]]
        assert shape_problems({"message": exception["message"]}, shape) == []
    chunks, error = decode(case, context(case))
    actual: dict[str, Any] = {"chunks": chunks}
    if error is not None:
        actual["error"] = error
    assert actual == expect(name, actual)
    check_chunk_rules(chunks, finished=error is None)


def check_chunk_rules(chunks: list[dict[str, Any]], finished: bool) -> None:
    """No empty parts, no null finishReason; finishReason (and usage) only at the end."""
    for i, chunk in enumerate(chunks):
        candidate = chunk["candidates"][0]
        last = finished and i == len(chunks) - 1
        assert ("finishReason" in candidate) is last
        if "usageMetadata" in chunk:
            assert last
        assert candidate["content"]["parts"]
        assert chunk["modelVersion"] and chunk["responseId"] == "req-1"


CONTENTS = {
    "text": [text("Hello there, how are you?")],
    "thinking and a call": [reasoning("Need weather."), text("Checking."),
                            tool_use("get_weather", {"city": "Paris"}, "tooluse_1")],
    "redacted and parallel calls": [redacted("z"), tool_use("f", {"a": 1}, "t1"),
                                    tool_use("f", {"a": [1, 2]}, "t2")],
    "json tool": [tool_use("json_output", {"x": {"y": "z"}}, "tj")],
}  # fmt: skip
CONTEXTS = [
    ReplyContext(include_thoughts=True),
    ReplyContext(),
    ReplyContext(json_tool="json_output"),
]


def merged(chunks: list[GenerateContentResponse]) -> dict[str, Any]:
    """The parts of a stream merged as a client would (texts of a kind joined)."""
    parts: list[dict[str, Any]] = []
    for chunk in chunks:
        for part in chunk.to_dict()["candidates"][0]["content"]["parts"]:
            if part == {"text": ""}:
                continue
            previous = parts[-1] if parts else None
            same = previous is not None and "text" in previous and "text" in part
            if same and bool(previous.get("thought")) == bool(part.get("thought")):
                previous["text"] += part["text"]
                previous.setdefault("thoughtSignature", part.get("thoughtSignature"))
                if part.get("thoughtSignature") and not previous.get("thoughtSignature"):
                    previous["thoughtSignature"] = part["thoughtSignature"]
                continue
            parts.append(dict(part))
    for part in parts:
        if part.get("thoughtSignature") is None:
            part.pop("thoughtSignature", None)
    last = chunks[-1].to_dict()
    return {"parts": parts, "finish": last["candidates"][0]["finishReason"],
            "usage": last.get("usageMetadata")}  # fmt: skip


@pytest.mark.parametrize("content", list(CONTENTS), ids=list(CONTENTS))
@pytest.mark.parametrize("ctx", CONTEXTS, ids=["thoughts", "plain", "json-tool"])
def test_the_stream_says_what_generate_says(content: str, ctx: ReplyContext) -> None:
    body = {"messages": [{"role": "user", "content": [text("hi")]}]}
    reply = reply_for(body, CONTENTS[content])
    decoder = StreamDecoder(ctx, "req-1")
    chunks = [c for kind, p in stream_events(reply) for c in decoder.feed(kind, orjson.dumps(p))]
    chunks += decoder.finish()
    whole = from_wire(orjson.dumps(reply), ctx, "req-1").to_dict()
    candidate = whole["candidates"][0]
    expected = {"parts": candidate["content"]["parts"], "finish": candidate["finishReason"],
                "usage": whole["usageMetadata"]}  # fmt: skip
    got = merged(chunks)
    if ctx.json_tool and content == "json tool":  # streamed JSON keeps the upstream's spacing
        got["parts"] = [
            {"text": orjson.dumps(orjson.loads(p["text"])).decode()} for p in got["parts"]
        ]
    assert got == expected


REQUEST = GenerateContentRequest.model_validate(
    {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
)


@pytest.mark.parametrize("name", names("stream"))
async def test_the_framed_stream_cut_at_every_byte_decodes_alike(name: str) -> None:
    case = load(FIXTURES / f"{name}.in.json")
    frames = b"".join(event_frame(kind, payload) for kind, payload in case["events"])
    if exception := case.get("exception"):
        extra = {k: v for k, v in exception.items() if k not in ("member", "message")}
        frames += exception_frame(exception["member"], exception["message"], **extra)
    deployment = spec({"params": {"aws_access_key_id": "AKID", "aws_secret_access_key": "s",
                                  "aws_region_name": "us-east-1"}})  # fmt: skip

    def reply(request: Any) -> HttpResponse:
        headers = {"x-amzn-RequestId": "req-1"}
        return HttpResponse(200, headers, pieces(frames, 1))

    provider = build_provider(deployment, MockTransport(reply))
    got: list[dict[str, Any]] = []
    error = None
    try:
        async for chunk in provider.stream(call(Operation.STREAM), REQUEST):
            got.append(chunk.to_dict())
    except GenrouteError as exc:
        error = exc
    expected = load(FIXTURES / f"{name}.out.json")
    # The provider's context is its own request's (no thoughts, no JSON tool).
    plain, plain_error = decode(case, ReplyContext(model=deployment.upstream_model))
    assert got == plain
    assert (error is None) is (plain_error is None) is ("error" not in expected)
    if error is not None:
        assert error.message == expected["error"]["message"]
