"""The interface every provider implements, and the resolved deployment it serves.

A provider instance serves one deployment (one upstream model with its key and base URL).
Streaming returns an async iterator of chunks in the canonical wire model; errors are
raised as `genroute.errors` exceptions, never as a vendor's own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from genroute.config import DeploymentParams, ModelInfo
from genroute.http_pool import HttpPool
from genroute.wire import (
    BatchEmbedContentsRequest,
    BatchEmbedContentsResponse,
    ContentEmbedding,
    CountTokensRequest,
    CountTokensResponse,
    EmbedContentRequest,
    EmbedContentResponse,
    GenerateContentRequest,
    GenerateContentResponse,
)

DEFAULT_TIMEOUT = 600.0


@dataclass(frozen=True, slots=True)
class DeploymentSpec:
    """What a provider needs to serve one deployment, resolved from config."""

    provider: str
    upstream_model: str
    params: DeploymentParams
    model_info: ModelInfo = field(default_factory=ModelInfo)

    @property
    def timeout(self) -> float:
        """Seconds allowed for a whole non-streamed call."""
        return self.params.timeout or DEFAULT_TIMEOUT

    @property
    def stream_timeout(self) -> float:
        """Seconds allowed until the first byte of a stream, and between reads."""
        return self.params.stream_timeout or self.timeout


class Provider(Protocol):
    """One upstream deployment behind the generateContent interface."""

    name: str
    spec: DeploymentSpec

    async def generate(self, request: GenerateContentRequest) -> GenerateContentResponse: ...

    def stream(self, request: GenerateContentRequest) -> AsyncIterator[GenerateContentResponse]: ...

    async def count_tokens(self, request: CountTokensRequest) -> CountTokensResponse: ...

    async def embed_content(self, request: EmbedContentRequest) -> EmbedContentResponse: ...

    async def batch_embed_contents(
        self, request: BatchEmbedContentsRequest
    ) -> BatchEmbedContentsResponse: ...


class ProviderFactory(Protocol):
    """Builds a provider for a deployment; given the shared HTTP pool."""

    def __call__(self, spec: DeploymentSpec, http: HttpPool) -> Provider: ...


async def embed_one_by_batch(
    provider: Provider, request: EmbedContentRequest
) -> EmbedContentResponse:
    """embedContent for providers that only implement the batch form."""
    batch = await provider.batch_embed_contents(BatchEmbedContentsRequest(requests=[request]))
    first = batch.embeddings[0] if batch.embeddings else ContentEmbedding(values=[])
    return EmbedContentResponse(embedding=first)
