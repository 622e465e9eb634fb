"""A relayed stream chunk whose facts are deferred: read out of its JSON only when asked
for, so that of a Gemini stream's chunks (each carrying the usage so far) only the last
one's are read, by the router and the metering layer alike."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from genroute.call import Operation
from genroute.errors import UpstreamMalformed
from genroute.pipeline import Metered
from genroute.providers.gemini import translate
from genroute.routing.router import _StreamTokens
from genroute.wire import GenerateContentRequest, GenerateContentResponse, ResponseFacts, wire_bytes
from tests.calls import call
from tests.pipeline.test_layers import REQUEST, Scripted, pricer


def event(text: str, total: int | None, *, finish: str | None = None, version: str = "v1") -> bytes:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": text}]}}
    if finish:
        candidate["finishReason"] = finish
    body: dict[str, Any] = {"candidates": [candidate], "modelVersion": version}
    if total is not None:
        body["usageMetadata"] = {"promptTokenCount": 3, "totalTokenCount": total}
    return orjson.dumps(body)


def test_a_deferred_chunk_reads_its_facts_when_asked_and_once() -> None:
    raw = event("Hello", 9, finish="STOP")
    chunk = translate.decode_event(raw, first=False)
    assert chunk.facts_deferred() and "_facts" not in chunk.__dict__
    assert wire_bytes(chunk) is raw  # relayed as it came
    facts = chunk.facts()
    assert not chunk.facts_deferred()
    assert facts == ResponseFacts.read(raw, chunk=True)
    assert (facts.total_tokens, facts.finish_reason, facts.text_chars) == (9, "STOP", 5)
    assert chunk.facts() is facts
    assert chunk.text == "Hello" and chunk.usage_metadata is not None  # parses as any relayed


def test_only_chunks_after_the_first_with_a_usage_are_deferred() -> None:
    with_usage, without = event("a", 4), event("a", None)
    assert not translate.decode_event(with_usage, first=True).facts_deferred()
    assert not translate.decode_event(without, first=False).facts_deferred()
    assert translate.decode_event(with_usage, first=False).facts_deferred()
    # the first chunk's and a chunk without usage's facts are checked at once, as before
    broken = b'{"candidates": 5, "usageMetadata": {}}'
    with pytest.raises(UpstreamMalformed, match="stream event"):
        translate.decode_event(broken, first=True)
    with pytest.raises(UpstreamMalformed, match="stream event"):
        translate.decode_event(b'{"candidates": 5}', first=False)


def test_a_deferred_chunk_that_is_not_the_apis_shape_has_no_facts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    raw = b'{"candidates": [], "usageMetadata": {"totalTokenCount": "many"}}'
    chunk = translate.decode_event(raw, first=False)
    with caplog.at_level(logging.WARNING, logger="genroute.wire"):
        facts = chunk.facts()
    assert not facts.has_usage and facts.total_tokens == 0
    assert "gemini upstream sent a stream event whose usage could not be read" in caplog.text
    assert wire_bytes(chunk) is raw


def stream_of(*events: bytes) -> list[GenerateContentResponse]:
    return [translate.decode_event(e, first=i == 0) for i, e in enumerate(events)]


async def metered(chunks: list[GenerateContentResponse]) -> Any:
    layer = Metered(Scripted(chunks), pricer())  # type: ignore[arg-type]
    c = call("demo", operation=Operation.STREAM)
    got = [chunk async for chunk in layer.stream(c, REQUEST)]
    assert got == chunks
    return c.meter


async def test_metering_reads_only_the_last_deferred_chunk() -> None:
    chunks = stream_of(event("a", 4), event("bb", 5), event("ccc", 7, finish="STOP", version="v2"))
    meter = await metered(chunks)
    assert meter.usage.total_token_count == 7 and not meter.cost_estimated
    assert (meter.finish_reason, meter.response_model) == ("STOP", "v2")
    assert chunks[1].facts_deferred()  # passed by: never read
    assert not chunks[2].facts_deferred()


async def test_a_deferred_chunk_is_read_before_a_chunk_that_is_not() -> None:
    chunks = stream_of(
        event("a", 4), event("bb", 6, finish="MAX_TOKENS", version="v2"), event("", None)
    )
    meter = await metered(chunks)
    assert meter.usage.total_token_count == 6
    assert (meter.finish_reason, meter.response_model) == ("MAX_TOKENS", "v1")
    assert meter.output_chars == 3  # the first chunk's and the deferred one's


async def test_a_stream_cut_after_a_deferred_chunk_is_priced_from_it() -> None:
    class Cut(Scripted):
        async def stream(
            self, call: Any, request: GenerateContentRequest
        ) -> AsyncIterator[GenerateContentResponse]:
            async for chunk in super().stream(call, request):
                yield chunk
            raise ConnectionResetError("gone")

    chunks = stream_of(event("a", 4), event("bb", 5))
    layer = Metered(Cut(chunks), pricer())  # type: ignore[arg-type]
    c = call("demo", operation=Operation.STREAM)
    with pytest.raises(ConnectionResetError):
        async for _ in layer.stream(c, REQUEST):
            pass
    assert c.meter.usage is not None and c.meter.usage.total_token_count == 5


def test_the_routers_token_count_is_the_last_chunks_with_usage() -> None:
    tokens = _StreamTokens()
    for chunk in stream_of(event("a", 4), event("b", 5), event("c", 8)):
        tokens.see(chunk)
    assert tokens.total() == 8
    tokens = _StreamTokens()
    for chunk in stream_of(event("a", 4), event("b", 5), event("c", None)):
        tokens.see(chunk)
    assert tokens.count == 5 and tokens.total() == 5
