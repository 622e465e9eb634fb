"""The interface every provider implements, and the resolved deployment it serves.

A provider instance serves one deployment (one upstream model with its key and base URL)
behind `genroute.call.ModelAPI`: the same five methods the Router and every pipeline layer
serve, each taking the `Call` first. Streaming returns an async iterator of chunks in the
canonical wire model; errors are raised as `genroute.errors` exceptions carrying a
`FailureReason`, never as a vendor's own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from genroute.call import Call, ModelAPI
from genroute.config import DeploymentParams, ModelInfo
from genroute.wire import (
    BatchEmbedContentsRequest,
    Content,
    ContentEmbedding,
    EmbedContentRequest,
    EmbedContentResponse,
    GenerateContentRequest,
    Part,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "DeploymentSpec",
    "Provider",
    "UpstreamCache",
    "UpstreamCaches",
    "UpstreamFiles",
    "embed_one_by_batch",
    "standard_base64",
    "stream_content",
]

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

    @property
    def drop_params(self) -> bool:
        """Leave out what the upstream cannot take instead of refusing the request."""
        return bool(self.params.drop_params)


class Provider(ModelAPI, Protocol):
    """One upstream deployment behind the model API."""

    name: str
    spec: DeploymentSpec


@runtime_checkable
class UpstreamFiles(Protocol):
    """A provider with a Files API of its own that `fileData.fileUri` may name (Gemini):
    genroute uploads a file there once per `files_target` and sends its URI."""

    @property
    def files_target(self) -> str:
        """Who sees a file uploaded here (the upstream and its key), as a short digest."""
        ...

    async def upload_file(
        self,
        call: Call,
        chunks: AsyncIterator[bytes],
        *,
        size: int,
        mime_type: str,
        display_name: str | None,
    ) -> dict[str, Any]:
        """Upload a file; the upstream's `File` (with `uri`, `state`, `expirationTime`)."""
        ...

    async def get_file(self, call: Call, name: str) -> dict[str, Any]:
        """The upstream's `File` named `name` (`files/{id}`), to see its `state`."""
        ...


@dataclass(frozen=True, slots=True)
class UpstreamCache:
    """A cached content created on an upstream: its name there, and the tokens it holds
    by the upstream's own count (`usageMetadata.totalTokenCount`; 0 when not given)."""

    name: str
    tokens: int = 0


@runtime_checkable
class UpstreamCaches(Protocol):
    """A provider with context caches of its own (Gemini's cachedContents): genroute
    creates a cached content there once per `files_target` and names it in calls."""

    @property
    def files_target(self) -> str:
        """Who sees a cache created here (the upstream and its key), as a short digest."""
        ...

    async def create_cache(
        self, call: Call, request: GenerateContentRequest, ttl_seconds: float
    ) -> UpstreamCache:
        """Create a cached content of the request's contents, system instruction, tools
        and tool config for this deployment's model, kept `ttl_seconds` there."""
        ...


async def embed_one_by_batch(
    provider: Provider, call: Call, request: EmbedContentRequest
) -> EmbedContentResponse:
    """embedContent for providers that only implement the batch form."""
    batch = await provider.batch_embed(call, BatchEmbedContentsRequest(requests=[request]))
    first = batch.embeddings[0] if batch.embeddings else ContentEmbedding(values=[])
    response = EmbedContentResponse(embedding=first)
    response.set_private("_input_tokens", batch._input_tokens)
    return response


def stream_content(parts: list[Part]) -> Content:
    """A translated stream chunk's content, shaped as Gemini's own: role `model` and a parts
    list that is never empty (a chunk that only finishes the answer carries one empty text
    part), so that code reading `chunk.candidates[0].content.parts` works on every chunk."""
    return Content(role="model", parts=parts or [Part(text="")])


def standard_base64(data: str) -> str:
    """Base64 in the standard alphabet with padding. google-genai for Python sends bytes
    URL-safe (`-`, `_`), which Gemini reads; OpenAI, Anthropic and AWS decode the standard
    alphabet only."""
    cleaned = "".join(data.split()).replace("-", "+").replace("_", "/")
    return cleaned + "=" * (-len(cleaned) % 4)
