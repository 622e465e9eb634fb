"""The metering layer: what came back from every call, and what it cost.

It sits just outside the Router, so it sees the answer the client gets and knows the
deployment that served it (`call.route`). On `call.meter` it records the usage, the
finish reason and the model version, the time of a stream's first chunk, and the cost in
USD (see `genroute.cost`):

- generateContent and streams: priced from the usage the upstream reported; a stream that
  ended without usage is priced from an estimate (its prompt, and the characters it
  produced, at four characters a token) and marked `cost_estimated`;
- embeddings: priced from the tokens the upstream reported (OpenAI does), else estimated
  from the text embedded;
- countTokens: free;
- an answer the response cache served (`call.cache.hit`): free (its usage is recorded;
  what it would have cost is the cache record's `saved_cost`).

Outer layers (governance, observability), the HTTP edge and the SDK read `call.meter`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from genroute.call import Call, Meter, ModelAPI
from genroute.cost import Pricer, estimate_usage, text_tokens
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
    ResponseFacts,
    UsageMetadata,
)

__all__ = ["Metered", "observe_chunk"]


def observe_chunk(meter: Meter, chunk: GenerateContentResponse) -> ResponseFacts:
    """Note what one response (or stream chunk) says: model, finish, text size (its facts:
    a relayed response is not parsed for them); its usage is the caller's to take (a
    stream's last usage is the one priced, so only that one is built)."""
    facts = chunk.facts()
    if facts.model_version:
        meter.response_model = facts.model_version
    if facts.finish_reason:
        meter.finish_reason = facts.finish_reason
    meter.output_chars += facts.text_chars
    return facts


class Metered:
    """Records usage and cost of every call on `call.meter`, around the next layer."""

    def __init__(self, inner: ModelAPI, pricer: Pricer) -> None:
        self.inner = inner
        self.pricer = pricer

    def _price(self, call: Call, usage: UsageMetadata | None) -> float:
        if call.cache.hit:
            return 0.0
        route = call.route
        return self.pricer.cost(
            usage, route.provider, route.provider_model, route.deployment_id, route.group
        ).usd

    async def generate(
        self, call: Call, request: GenerateContentRequest
    ) -> GenerateContentResponse:
        response = await self.inner.generate(call, request)
        meter = call.meter
        facts = observe_chunk(meter, response)
        if facts.has_usage:
            meter.usage = facts.usage
        meter.cost = self._price(call, meter.usage) if meter.usage is not None else 0.0
        return response

    async def stream(
        self, call: Call, request: GenerateContentRequest
    ) -> AsyncIterator[GenerateContentResponse]:
        meter = call.meter
        last: ResponseFacts | None = None  # of the last chunk with usage
        try:
            async for chunk in self.inner.stream(call, request):
                if meter.first_chunk_at is None:
                    meter.first_chunk_at = time.perf_counter()
                facts = observe_chunk(meter, chunk)
                if facts.has_usage:
                    last = facts
                yield chunk
        finally:
            if last is not None:
                meter.usage = last.usage
            usage = meter.usage
            if usage is None and meter.first_chunk_at is not None:
                usage = estimate_usage(request, meter.output_chars)
                meter.cost_estimated = True
            meter.cost = self._price(call, usage) if usage is not None else 0.0

    async def count_tokens(self, call: Call, request: CountTokensRequest) -> CountTokensResponse:
        response = await self.inner.count_tokens(call, request)
        call.meter.cost = 0.0
        return response

    def _embedded(self, call: Call, reported: int | None, contents: list[Content]) -> None:
        meter = call.meter
        tokens = reported
        if tokens is None:
            tokens = text_tokens(contents)
            meter.cost_estimated = True
        meter.input_tokens = tokens
        usage = UsageMetadata(prompt_token_count=tokens, total_token_count=tokens)
        meter.usage = usage
        meter.cost = self._price(call, usage)

    async def embed(self, call: Call, request: EmbedContentRequest) -> EmbedContentResponse:
        response = await self.inner.embed(call, request)
        self._embedded(call, response._input_tokens, [request.content])
        return response

    async def batch_embed(
        self, call: Call, request: BatchEmbedContentsRequest
    ) -> BatchEmbedContentsResponse:
        response = await self.inner.batch_embed(call, request)
        self._embedded(call, response._input_tokens, [r.content for r in request.requests])
        return response
