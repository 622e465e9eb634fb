"""embedContent and batchEmbedContents requests and responses."""

from __future__ import annotations

from typing import ClassVar

from genroute.wire.base import Repeated, WireModel
from genroute.wire.content import Content

__all__ = [
    "BatchEmbedContentsRequest",
    "BatchEmbedContentsResponse",
    "ContentEmbedding",
    "EmbedContentRequest",
    "EmbedContentResponse",
]


class EmbedContentRequest(WireModel):
    """One text (as a Content) to embed."""

    model: str | None = None
    content: Content
    task_type: str | None = None
    title: str | None = None
    output_dimensionality: int | None = None


class ContentEmbedding(WireModel):
    """An embedding vector."""

    values: list[float]


class EmbedContentResponse(WireModel):
    """The reply of `:embedContent`."""

    embedding: ContentEmbedding
    # Tokens embedded, when the upstream says (OpenAI does, Gemini does not); never sent on.
    _input_tokens: ClassVar[int | None] = None  # set with set_private


class BatchEmbedContentsRequest(WireModel):
    """The body of `:batchEmbedContents`, which both SDKs use even for one input."""

    requests: Repeated[EmbedContentRequest]


class BatchEmbedContentsResponse(WireModel):
    """The reply of `:batchEmbedContents`, one embedding per request, in order."""

    embeddings: list[ContentEmbedding]
    # Tokens embedded over every request, when the upstream says; never sent on.
    _input_tokens: ClassVar[int | None] = None  # set with set_private
