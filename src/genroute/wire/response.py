"""The generateContent response, which is also the shape of each stream chunk."""

from __future__ import annotations

from typing import Any, ClassVar

from genroute.wire.base import WireModel
from genroute.wire.content import Content

__all__ = [
    "Candidate",
    "CitationMetadata",
    "CitationSource",
    "GenerateContentResponse",
    "ModalityTokenCount",
    "PromptFeedback",
    "SafetyRating",
    "UsageMetadata",
]


class SafetyRating(WireModel):
    """How likely a candidate or prompt falls in a harm category."""

    category: str | None = None
    probability: str | None = None
    blocked: bool | None = None


class CitationSource(WireModel):
    """A span of the answer attributed to a source."""

    start_index: int | None = None
    end_index: int | None = None
    uri: str | None = None
    license: str | None = None


class CitationMetadata(WireModel):
    """The sources cited by a candidate (`citationSources` on the wire)."""

    citation_sources: list[CitationSource] | None = None


class Candidate(WireModel):
    """One generated answer."""

    content: Content | None = None
    finish_reason: str | None = None
    index: int | None = None
    safety_ratings: list[SafetyRating] | None = None
    citation_metadata: CitationMetadata | None = None
    avg_logprobs: float | None = None
    logprobs_result: dict[str, Any] | None = None
    grounding_metadata: dict[str, Any] | None = None
    url_context_metadata: dict[str, Any] | None = None
    token_count: int | None = None
    finish_message: str | None = None


class ModalityTokenCount(WireModel):
    """A token count for one modality (TEXT, IMAGE, AUDIO, ...)."""

    modality: str | None = None
    token_count: int | None = None


class UsageMetadata(WireModel):
    """Token accounting. `totalTokenCount` includes `thoughtsTokenCount`."""

    prompt_token_count: int | None = None
    candidates_token_count: int | None = None
    total_token_count: int | None = None
    thoughts_token_count: int | None = None
    cached_content_token_count: int | None = None
    tool_use_prompt_token_count: int | None = None
    prompt_tokens_details: list[ModalityTokenCount] | None = None
    candidates_tokens_details: list[ModalityTokenCount] | None = None
    cache_tokens_details: list[ModalityTokenCount] | None = None
    tool_use_prompt_tokens_details: list[ModalityTokenCount] | None = None
    traffic_type: str | None = None
    # Not on the wire (Gemini has no field for it): prompt tokens the provider wrote to its
    # prompt cache (Anthropic's cache_creation_input_tokens, Bedrock's cacheWriteInputTokens),
    # part of promptTokenCount and priced at the cache-write rate.
    _cache_write_tokens: ClassVar[int] = 0  # set with set_private


class PromptFeedback(WireModel):
    """Set when the prompt itself was blocked; then there are no candidates."""

    block_reason: str | None = None
    block_reason_message: str | None = None
    safety_ratings: list[SafetyRating] | None = None


class GenerateContentResponse(WireModel):
    """A whole response, or one stream chunk carrying only the new parts."""

    candidates: list[Candidate] | None = None
    prompt_feedback: PromptFeedback | None = None
    usage_metadata: UsageMetadata | None = None
    model_version: str | None = None
    response_id: str | None = None
    create_time: str | None = None
    model_status: dict[str, Any] | None = None

    @property
    def text(self) -> str:
        """The non-thought text of the first candidate, as the SDKs compute `.text`."""
        if not self.candidates or self.candidates[0].content is None:
            return ""
        parts = self.candidates[0].content.parts or []
        return "".join(p.text for p in parts if p.text and not p.thought)
