"""The cached layer: answers from the response cache, and answers kept for next time.

It sits inside the metering layer and outside the Router, so a hit never reaches a
deployment, and metering prices it at 0 (reading `call.cache`). Around generateContent,
its stream, embedContent and batchEmbedContents it
  1. plans (`ResponseCache.plan`): is this call cached at all, under which key;
  2. looks up (unless `no-cache`): a hit is answered at once, a streamed hit replayed as
     chunks (`genroute.cache.assemble.replay`), and `call.cache` says hit or semantic-hit,
     with what the answer saved. A hit's `responseId` is its own request id (every Gemini
     response has an id of its own); its modelVersion and usage are the answer's;
  3. on a miss, calls inward, and hands the answer (a stream's chunks, collected as they
     pass and never held back) to a background write (unless `no-store`). A stream that
     fails or is left by its client is not stored.
countTokens passes through.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from genroute.cache.assemble import replay
from genroute.cache.service import ResponseCache
from genroute.call import Call, ModelAPI
from genroute.cost import text_tokens
from genroute.wire import (
    BatchEmbedContentsRequest,
    BatchEmbedContentsResponse,
    Content,
    CountTokensRequest,
    CountTokensResponse,
    EmbedContentRequest,
    EmbedContentResponse,
    GenerateContentRequest,
    GenerateContentResponse,
    UsageMetadata,
    WireModel,
)

__all__ = ["MAX_CHUNKS", "Cached"]

E = TypeVar("E", EmbedContentResponse, BatchEmbedContentsResponse)
MAX_CHUNKS = 50_000  # a stream longer than this is relayed but not stored


class Cached:
    """Serves calls from the response cache around the next layer (see the module
    docstring)."""

    def __init__(self, inner: ModelAPI, cache: ResponseCache) -> None:
        self.inner = inner
        self.cache = cache

    async def generate(
        self, call: Call, request: GenerateContentRequest
    ) -> GenerateContentResponse:
        cache = self.cache
        plan = await cache.plan(call, request, "generate")
        if plan is None:
            return await self.inner.generate(call, request)
        if plan.lookup and (hit := await cache.lookup(call, plan, GenerateContentResponse)):
            entry, response = hit
            cache.priced(call, entry, response.usage_metadata)
            response.response_id = call.request_id
            return response
        response = await self.inner.generate(call, request)
        cache.store_later(call, plan, response)
        return response

    async def stream(
        self, call: Call, request: GenerateContentRequest
    ) -> AsyncIterator[GenerateContentResponse]:
        cache = self.cache
        plan = await cache.plan(call, request, "generate")
        if (
            plan is not None
            and plan.lookup
            and (hit := await cache.lookup(call, plan, GenerateContentResponse))
        ):
            entry, response = hit
            cache.priced(call, entry, response.usage_metadata)
            response.response_id = call.request_id
            for chunk in replay(response):
                yield chunk
            return
        chunks: list[GenerateContentResponse] | None = (
            [] if plan is not None and plan.store else None
        )
        async for chunk in self.inner.stream(call, request):
            if chunks is not None:
                chunks.append(chunk)
                if len(chunks) > MAX_CHUNKS:
                    chunks = None
            yield chunk
        if plan is not None and chunks is not None:
            cache.store_later(call, plan, chunks)

    async def count_tokens(self, call: Call, request: CountTokensRequest) -> CountTokensResponse:
        return await self.inner.count_tokens(call, request)

    async def embed(self, call: Call, request: EmbedContentRequest) -> EmbedContentResponse:
        return await self._embedding(
            call,
            request,
            "embed",
            EmbedContentResponse,
            lambda: self.inner.embed(call, request),
            [request.content],
        )

    async def batch_embed(
        self, call: Call, request: BatchEmbedContentsRequest
    ) -> BatchEmbedContentsResponse:
        return await self._embedding(
            call,
            request,
            "batch_embed",
            BatchEmbedContentsResponse,
            lambda: self.inner.batch_embed(call, request),
            [r.content for r in request.requests],
        )

    async def _embedding(
        self,
        call: Call,
        request: WireModel,
        kind: str,
        answer: type[E],
        inner: Callable[[], Awaitable[E]],
        contents: list[Content],
    ) -> E:
        """An embedding call from the cache, else from `inner` (then stored). A hit's
        saving is priced from the tokens the upstream reported, else an estimate from the
        text (as the metering layer does)."""
        cache = self.cache
        plan = await cache.plan(call, request, kind)
        if plan is None:
            return await inner()
        if plan.lookup and (hit := await cache.lookup(call, plan, answer)):
            entry, response = hit
            response.set_private("_input_tokens", entry.input_tokens)
            tokens = entry.input_tokens
            if tokens is None:
                tokens = text_tokens(contents)
            usage = UsageMetadata(prompt_token_count=tokens, total_token_count=tokens)
            cache.priced(call, entry, usage)
            return response
        response = await inner()
        cache.store_later(call, plan, response)
        return response
