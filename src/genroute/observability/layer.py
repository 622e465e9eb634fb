"""The observed layer: every call recorded once, however it ends.

The outermost layer of the pipeline. Around each of the five operations it starts the
request span (when tracing is on), hands the layers inside a copy of the call whose
`upstream` observer opens one child span per upstream HTTP request and sends its
`traceparent` upstream, and in a `finally` records the call (log line, metrics, span,
callbacks) with the error it ended with: an upstream error, a refusal by the governed
layer, a cancellation or a client that left mid-stream. With content logging on it also
collects the answer's text.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar

from genroute.call import Call, ModelAPI
from genroute.observability.core import Observability
from genroute.wire import (
    BatchEmbedContentsRequest,
    BatchEmbedContentsResponse,
    CountTokensRequest,
    CountTokensResponse,
    EmbedContentRequest,
    EmbedContentResponse,
    GenerateContentRequest,
    GenerateContentResponse,
)

if TYPE_CHECKING:
    from opentelemetry.trace import Span

__all__ = ["Observed"]

T = TypeVar("T")


class _Attempts:
    """The upstream observer of one traced call: a child span per upstream request."""

    __slots__ = ("call", "span", "tracing")

    def __init__(self, obs: Observability, span: Span, call: Call) -> None:
        assert obs.tracing is not None
        self.tracing = obs.tracing
        self.span = span
        self.call = call

    def __call__(self, url: str) -> AbstractContextManager[Mapping[str, str]]:
        return self.tracing.attempt(self.span, self.call, url)


class _Propagate:
    """The upstream observer of a call that is not sampled: no span per upstream request,
    only the call's trace context (flags 00) sent upstream, computed once per call."""

    __slots__ = ("headers",)

    def __init__(self, headers: Mapping[str, str]) -> None:
        self.headers = headers

    def __call__(self, url: str) -> _Propagate:
        return self

    def __enter__(self) -> Mapping[str, str]:
        return self.headers

    def __exit__(self, *exc: object) -> None:
        return None


def _answer_text(response: GenerateContentResponse) -> str:
    return response.text


class Observed:
    """Records every call around the next layer (see the module docstring)."""

    def __init__(self, inner: ModelAPI, observability: Observability) -> None:
        self.inner = inner
        self.obs = observability
        self._content = observability.redactor is not None

    def _begin(self, call: Call, request: Any) -> tuple[Call, Span | None]:
        span = self.obs.start(call, request)
        if span is None:
            return call, None
        trace_id = f"{span.get_span_context().trace_id:032x}"  # kept in the ledger row
        if not span.is_recording():  # not sampled: nothing to record, only to propagate
            assert self.obs.tracing is not None
            observer = _Propagate(self.obs.tracing.context_headers(span))
            return call.with_trace(trace_id, observer), span
        return call.with_trace(trace_id, _Attempts(self.obs, span, call)), span

    async def _around(
        self,
        call: Call,
        request: Any,
        work: Callable[[Call], Awaitable[T]],
        text: Callable[[T], str] | None = None,
    ) -> T:
        inner_call, span = self._begin(call, request)
        error: BaseException | None = None
        answer: str | None = None
        try:
            result = await work(inner_call)
            if self._content and text is not None:
                answer = text(result)
            return result
        except BaseException as exc:
            error = exc
            raise
        finally:
            self.obs.finish(
                call,
                error,
                finished=time.perf_counter(),
                span=span,
                request=request if self._content else None,
                response_text=answer,
            )

    async def generate(
        self, call: Call, request: GenerateContentRequest
    ) -> GenerateContentResponse:
        return await self._around(
            call, request, lambda c: self.inner.generate(c, request), _answer_text
        )

    async def stream(
        self, call: Call, request: GenerateContentRequest
    ) -> AsyncIterator[GenerateContentResponse]:
        inner_call, span = self._begin(call, request)
        error: BaseException | None = None
        texts: list[str] | None = [] if self._content else None
        try:
            async for chunk in self.inner.stream(inner_call, request):
                if texts is not None:
                    texts.append(chunk.text)
                yield chunk
        except BaseException as exc:
            error = exc
            raise
        finally:
            self.obs.finish(
                call,
                error,
                finished=time.perf_counter(),
                span=span,
                request=request if self._content else None,
                response_text="".join(texts) if texts is not None else None,
            )

    async def count_tokens(self, call: Call, request: CountTokensRequest) -> CountTokensResponse:
        return await self._around(call, request, lambda c: self.inner.count_tokens(c, request))

    async def embed(self, call: Call, request: EmbedContentRequest) -> EmbedContentResponse:
        return await self._around(call, request, lambda c: self.inner.embed(c, request))

    async def batch_embed(
        self, call: Call, request: BatchEmbedContentsRequest
    ) -> BatchEmbedContentsResponse:
        return await self._around(call, request, lambda c: self.inner.batch_embed(c, request))
