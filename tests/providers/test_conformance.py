"""One suite over every provider: the same cases through `build_provider` and a
`MockTransport` that answers in each upstream's own wire format (tests/fakes/mock_http.py).

What every provider promises the pipeline: an answer and its stream agree, however the
stream's bytes are cut; the upstream observer wraps each request and its headers go
upstream; error statuses carry the FailureReason routing needs; timeouts, broken
connections and replies that are not the API's shape become genroute errors.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from genroute.call import Operation
from genroute.errors import (
    FailureReason,
    GenrouteError,
    InvalidRequest,
    UpstreamError,
    UpstreamMalformed,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from genroute.providers.base import Provider
from genroute.providers.registry import build_provider
from genroute.providers.transport import HttpRequest, HttpResponse, MockTransport
from genroute.wire import (
    BatchEmbedContentsRequest,
    CountTokensRequest,
    EmbedContentRequest,
    GenerateContentRequest,
    GenerateContentResponse,
)
from tests.fakes.mock_http import (
    TRACEPARENT,
    Observer,
    Upstream,
    call,
    error_body,
    json_reply,
    spec,
    sse_body,
)


@dataclass(frozen=True)
class Case:
    """One provider under test: its prefix and model, and the API its upstream speaks."""

    prefix: str
    model: str
    wire: str
    params: dict[str, Any] = field(default_factory=dict)

    def provider(self, transport: MockTransport) -> Provider:
        return build_provider(spec(self.prefix, self.model, **self.params), transport)

    @property
    def embeds(self) -> bool:
        return self.wire != "anthropic"


CASES = [
    Case("gemini", "gemini-2.5-flash", "gemini"),
    Case("openai", "gpt-4o", "openai"),
    Case("azure", "my-gpt", "openai", {"api_base": "https://res.openai.azure.com"}),
    Case("ollama", "llama3.2", "openai", {"api_key": None}),
    Case("anthropic", "claude-sonnet-4-5", "anthropic"),
]
each_provider = pytest.mark.parametrize("case", CASES, ids=lambda c: c.prefix)
REQUEST = GenerateContentRequest.model_validate(
    {"contents": [{"role": "user", "parts": [{"text": "hello there"}]}]}
)


async def streamed(
    provider: Provider, observer: Observer | None = None
) -> list[GenerateContentResponse]:
    return [c async for c in provider.stream(call(Operation.STREAM, observer=observer), REQUEST)]


def finishes(chunks: list[GenerateContentResponse]) -> list[int]:
    return [i for i, c in enumerate(chunks) for d in c.candidates or [] if d.finish_reason]


@each_provider
async def test_generate_answers(case: Case) -> None:
    upstream = Upstream(case.wire)
    response = await case.provider(MockTransport(upstream)).generate(call(), REQUEST)
    assert response.text == "Echo: hello there"
    assert response.usage_metadata is not None and response.usage_metadata.total_token_count
    assert len(upstream.requests) == 1


@each_provider
@pytest.mark.parametrize("chunk", [1, 7, None], ids=["every-byte", "7-bytes", "whole"])
async def test_a_stream_cut_anywhere_says_what_generate_says(case: Case, chunk: int | None) -> None:
    chunks = await streamed(case.provider(MockTransport(Upstream(case.wire, chunk=chunk))))
    assert "".join(c.text for c in chunks) == "Echo: hello there"
    assert finishes(chunks) == [len(chunks) - 1]
    assert chunks[-1].usage_metadata is not None
    # Shaped like Gemini's chunks: code reading `candidates[0].content.parts` never breaks.
    for chunk in chunks:
        assert chunk.candidates, chunk
        for candidate in chunk.candidates:
            assert candidate.content is not None and candidate.content.role == "model"
            assert candidate.content.parts


@each_provider
async def test_the_observer_wraps_each_request_and_its_headers_go_upstream(case: Case) -> None:
    upstream, observer = Upstream(case.wire), Observer()
    provider = case.provider(MockTransport(upstream))
    await provider.generate(call(observer=observer), REQUEST)
    chunks = provider.stream(call(Operation.STREAM, observer=observer), REQUEST)
    await anext(chunks)
    assert observer.open == 1  # the stream's request is still being read
    async for _ in chunks:
        pass
    assert observer.entered == [r.url for r in upstream.requests] and len(observer.entered) == 2
    assert observer.exited == [(url, None) for url in observer.entered]
    assert all(r.headers["traceparent"] == TRACEPARENT for r in upstream.requests)


@each_provider
async def test_leaving_a_stream_early_ends_the_observed_request(case: Case) -> None:
    observer = Observer()
    chunks = case.provider(MockTransport(Upstream(case.wire))).stream(
        call(Operation.STREAM, observer=observer), REQUEST
    )
    await anext(chunks)
    await chunks.aclose()
    assert observer.open == 0


def failing(case: Case, status: int) -> MockTransport:
    headers = {"retry-after": "3"} if status == 429 else {}
    return MockTransport(lambda r: HttpResponse(status, headers, error_body(case.wire, status)))


STATUSES = [
    (400, FailureReason.BAD_REQUEST),
    (401, FailureReason.AUTH),
    (403, FailureReason.AUTH),
    (404, FailureReason.NOT_FOUND),
    (408, FailureReason.TIMEOUT),
    (429, FailureReason.RATE_LIMIT),
    (500, FailureReason.UPSTREAM_5XX),
    (502, FailureReason.UPSTREAM_5XX),
    (503, FailureReason.OVERLOADED),
    (504, FailureReason.TIMEOUT),
    (529, FailureReason.OVERLOADED),
]


@each_provider
@pytest.mark.parametrize(("status", "reason"), STATUSES, ids=[str(s) for s, _ in STATUSES])
async def test_error_statuses_carry_their_failure_reason(
    case: Case, status: int, reason: FailureReason
) -> None:
    provider = case.provider(failing(case, status))
    with pytest.raises(UpstreamError) as info:
        await provider.generate(call(), REQUEST)
    assert info.value.reason is reason and info.value.provider == case.prefix
    assert info.value.retry_after == (3 if status == 429 else None)
    with pytest.raises(UpstreamError) as streamed_info:
        await streamed(provider)
    assert streamed_info.value.reason is reason


def _raise(exc: BaseException) -> HttpResponse:
    raise exc


@each_provider
@pytest.mark.parametrize(
    ("exc", "error"),
    [(TimeoutError(), UpstreamTimeout), (ConnectionResetError(104, "reset"), UpstreamUnavailable)],
    ids=["timeout", "connection"],
)
async def test_timeouts_and_broken_connections(
    case: Case, exc: BaseException, error: type[GenrouteError]
) -> None:
    provider = case.provider(MockTransport(lambda r: _raise(exc)))
    with pytest.raises(error) as info:
        await provider.generate(call(), REQUEST)
    assert info.value.provider == case.prefix
    with pytest.raises(error):
        await streamed(provider)


@each_provider
async def test_a_stream_that_stalls_midway_times_out_after_what_it_sent(case: Case) -> None:
    whole = Upstream(case.wire)

    async def stalling(request: HttpRequest) -> HttpResponse:
        body = await whole(request).read()

        async def reads() -> AsyncIterator[bytes]:
            yield body[: body.index(b"\n\n", body.index(b"Echo") if b"Echo" in body else 0) + 2]
            raise TimeoutError

        return HttpResponse(200, {}, reads())

    observer = Observer()
    received: list[GenerateContentResponse] = []
    with pytest.raises(UpstreamTimeout) as info:
        async for chunk in case.provider(MockTransport(stalling)).stream(
            call(Operation.STREAM, observer=observer), REQUEST
        ):
            received.append(chunk)
    assert received and "stalled" in info.value.message
    assert observer.exited == [(observer.entered[0], info.value)]


MALFORMED = [b"[]", b'{"candidates": [', b"<html>bad gateway</html>", b'"text"', b"5", b""]


@each_provider
@pytest.mark.parametrize("body", MALFORMED, ids=lambda b: b.decode() or "empty")
async def test_a_200_that_is_not_the_apis_shape_is_malformed(case: Case, body: bytes) -> None:
    provider = case.provider(MockTransport(lambda r: HttpResponse(200, {}, body)))
    with pytest.raises(UpstreamMalformed) as info:
        await provider.generate(call(), REQUEST)
    assert info.value.reason is FailureReason.MALFORMED and info.value.code == 502
    assert case.wire in info.value.message or case.prefix in info.value.message


@each_provider
@pytest.mark.parametrize("event", [b"[]", b'{"a": ', b"5", b'"x"'], ids=lambda b: b.decode())
async def test_a_stream_event_that_is_not_the_apis_shape_is_malformed(
    case: Case, event: bytes
) -> None:
    whole = Upstream(case.wire)

    async def broken(request: HttpRequest) -> HttpResponse:
        good = await whole(request).read()
        first = good[: good.index(b"\n\n") + 2]
        return HttpResponse(200, {}, [first, sse_body([event]), good[len(first) :]])

    observer = Observer()
    with pytest.raises(UpstreamMalformed) as info:
        await streamed(case.provider(MockTransport(broken)), observer)
    assert observer.exited == [(observer.entered[0], info.value)]


@each_provider
async def test_count_tokens(case: Case) -> None:
    upstream = Upstream(case.wire)
    request = CountTokensRequest.model_validate({"contents": REQUEST.model_dump()["contents"]})
    counted = await case.provider(MockTransport(upstream)).count_tokens(
        call(Operation.COUNT_TOKENS), request
    )
    assert counted.total_tokens and counted.total_tokens > 0
    # Chat Completions has no counting endpoint: OpenAI-compatible providers estimate locally.
    assert len(upstream.requests) == (0 if case.wire == "openai" else 1)


EMBED = EmbedContentRequest.model_validate({"content": {"parts": [{"text": "embed me"}]}})


@each_provider
async def test_embed_and_batch_embed(case: Case) -> None:
    upstream = Upstream(case.wire)
    provider = case.provider(MockTransport(upstream))
    batch = BatchEmbedContentsRequest(
        requests=[EMBED, EMBED.model_copy(update={"output_dimensionality": 8})]
    )
    if not case.embeds:
        with pytest.raises(InvalidRequest, match="no embeddings API"):
            await provider.embed(call(Operation.EMBED), EMBED)
        with pytest.raises(InvalidRequest, match="no embeddings API"):
            await provider.batch_embed(call(Operation.BATCH_EMBED), batch)
        assert upstream.requests == []
        return
    one = await provider.embed(call(Operation.EMBED), EMBED)
    many = await provider.batch_embed(call(Operation.BATCH_EMBED), batch)
    assert one.embedding.values and [len(e.values) > 0 for e in many.embeddings] == [True, True]
    assert len(many.embeddings[1].values) == 8
    if case.wire == "openai":  # two /embeddings calls (one per dimensionality), 3 tokens each
        assert (one._input_tokens, many._input_tokens) == (3, 6)
    else:  # Gemini does not say how many tokens it embedded
        assert (one._input_tokens, many._input_tokens) == (None, None)


@each_provider
async def test_a_2xx_other_than_200_is_not_taken_for_an_answer(case: Case) -> None:
    provider = case.provider(MockTransport(lambda r: json_reply({}, status=204)))
    with pytest.raises(UpstreamError):
        await provider.generate(call(), REQUEST)
