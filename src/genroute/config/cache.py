"""`litellm_settings.cache` and `litellm_settings.cache_params`: the response cache.

LiteLLM's keys load unchanged: `type` (`local`, `redis`, `redis-semantic`,
`local-semantic`), `ttl`, `host`, `port`, `password`, `namespace`, `similarity_threshold`,
`redis_semantic_cache_embedding_model`, `supported_call_types` (LiteLLM's call type names,
or the Gemini method names) and `max_size_in_memory`. genroute adds `url`, `max_entries`,
`max_memory_mb`, `shared_across_teams`, `cache_function_calls` and `socket_timeout`.
Whether the embedding model names a configured model group is checked with the model
list, in `genroute.config.Config`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from typing import Literal

from pydantic import AliasChoices, Field, field_validator, model_validator

from genroute.config.base import Strict

__all__ = [
    "CACHE_TYPES",
    "CALL_TYPES",
    "SEMANTIC_TYPES",
    "CacheParams",
    "CallKind",
    "embedding_model_problem",
]

CallKind = Literal["generate", "embed"]

# LiteLLM's call type names (and the Gemini methods) → what genroute caches for them.
# Transcription, rerank and the responses API have no route here: accepted, so that a
# LiteLLM config loads, and nothing is cached for them.
CALL_TYPES: dict[str, CallKind | None] = {
    "completion": "generate",
    "acompletion": "generate",
    "text_completion": "generate",
    "atext_completion": "generate",
    "generateContent": "generate",
    "streamGenerateContent": "generate",
    "generate_content": "generate",
    "agenerate_content": "generate",
    "embedding": "embed",
    "aembedding": "embed",
    "embedContent": "embed",
    "batchEmbedContents": "embed",
    "transcription": None,
    "atranscription": None,
    "rerank": None,
    "arerank": None,
    "responses": None,
    "aresponses": None,
}
CACHE_TYPES = ("local", "redis", "redis-semantic", "local-semantic")
SEMANTIC_TYPES = frozenset({"redis-semantic", "local-semantic"})


class CacheParams(Strict):
    """How responses are cached (docs/cache.md)."""

    type: str = "local"
    ttl: float = Field(default=3600.0, gt=0)
    namespace: str | None = Field(default=None, min_length=1, max_length=128)
    # Redis: `url`, else `host`/`port`/`password`, else $REDIS_URL or $REDIS_HOST (as
    # LiteLLM), else general_settings.redis_url.
    url: str | None = Field(
        default=None, repr=False, validation_alias=AliasChoices("url", "redis_url")
    )
    host: str | None = None
    port: int = Field(default=6379, ge=1, le=65535)
    password: str | None = Field(default=None, repr=False)
    socket_timeout: float = Field(default=0.25, gt=0)
    # Semantic.
    similarity_threshold: float | None = Field(default=None, ge=0, le=1)
    redis_semantic_cache_embedding_model: str = Field(default="text-embedding-ada-002")
    # What is cached, and for whom.
    supported_call_types: list[str] = Field(default_factory=lambda: ["acompletion", "aembedding"])
    shared_across_teams: bool = False
    cache_function_calls: bool = False
    # Memory: entries (responses of `local`; vectors of the semantic index) and megabytes.
    max_entries: int = Field(
        default=10_000,
        ge=1,
        le=10_000_000,
        validation_alias=AliasChoices("max_entries", "max_size_in_memory"),
    )
    max_memory_mb: float = Field(default=256.0, gt=0)

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in CACHE_TYPES:
            raise ValueError(
                f"{value!r} is not a cache type genroute serves: one of {', '.join(CACHE_TYPES)}"
            )
        return value

    @field_validator("supported_call_types")
    @classmethod
    def _known_call_types(cls, value: list[str]) -> list[str]:
        for name in value:
            if name not in CALL_TYPES:
                raise ValueError(
                    f"{name!r} is not a call type; use LiteLLM's (acompletion, aembedding, ...) "
                    "or a Gemini method (generateContent, embedContent)"
                )
        return value

    @model_validator(mode="after")
    def _semantic_needs_threshold(self) -> CacheParams:
        if self.semantic and self.similarity_threshold is None:
            raise ValueError(
                f"similarity_threshold: required for type {self.type} (e.g. 0.9: cosine "
                "similarity of the prompt's embedding to a cached one)"
            )
        if self.url and self.host:
            raise ValueError("give either url or host, not both")
        return self

    @property
    def semantic(self) -> bool:
        """Whether prompts are matched by meaning as well as exactly."""
        return self.type in SEMANTIC_TYPES

    @property
    def shared(self) -> bool:
        """Whether entries live in Redis, shared by every instance."""
        return self.type.startswith("redis")

    @property
    def kinds(self) -> frozenset[CallKind]:
        """What is cached: generate (with streams) and/or embed (with batches)."""
        return frozenset(k for n in self.supported_call_types if (k := CALL_TYPES[n]))


def embedding_model_problem(
    params: CacheParams, model_names: Iterable[str], aliases: Mapping[str, str]
) -> str | None:
    """Why the semantic cache's embedding model is not a configured model group (None when
    it is: a `model_name`, a wildcard `model_name` matching it, or an alias)."""
    name = params.redis_semantic_cache_embedding_model
    if name in aliases:
        return None
    for model_name in model_names:
        if model_name == name or fnmatch.fnmatchcase(name, model_name):
            return None
    return (
        "litellm_settings.cache_params.redis_semantic_cache_embedding_model: no model_name "
        f"{name!r} in model_list (the embedding model is a model group, routed and priced "
        "like any other)"
    )
