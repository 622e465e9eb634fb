"""A deterministic local provider for first runs and tests.

It answers by quoting the last user message, streams word by word, counts one token per
word (for countTokens, usage and the tokens it embeds), honours `maxOutputTokens`, and
embeds text into a stable hash-derived vector.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import struct
from collections.abc import AsyncIterator

from genroute.call import Call
from genroute.providers.base import DeploymentSpec
from genroute.providers.transport import Transport
from genroute.wire import (
    BatchEmbedContentsRequest,
    BatchEmbedContentsResponse,
    Candidate,
    Content,
    ContentEmbedding,
    CountTokensRequest,
    CountTokensResponse,
    EmbedContentRequest,
    EmbedContentResponse,
    GenerateContentRequest,
    GenerateContentResponse,
    ModalityTokenCount,
    Part,
    UsageMetadata,
)

__all__ = [
    "DEFAULT_DIMENSIONS",
    "DEMO_NOTICE",
    "WORDS_PER_CHUNK",
    "DemoProvider",
    "count_words",
    "embed_text",
    "last_user_text",
    "reply_words",
]

DEMO_NOTICE = "genroute demo model (local and deterministic, not a real LLM)"
DEFAULT_DIMENSIONS = 16
WORDS_PER_CHUNK = 3


def count_words(contents: list[Content]) -> int:
    """The demo's token count: whitespace-separated words of every text part, at least 1."""
    words = 0
    for content in contents:
        for part in content.parts or []:
            if part.text:
                words += len(part.text.split())
            elif part.inline_data or part.file_data:
                words += 1
    return words


def last_user_text(request: GenerateContentRequest) -> str:
    """The text of the newest user turn."""
    for content in reversed(request.contents):
        if content.role in (None, "user"):
            texts = [p.text for p in content.parts or [] if p.text]
            if texts:
                return " ".join(texts)
    return ""


def reply_words(request: GenerateContentRequest) -> tuple[list[str], str]:
    """The words of the answer, and its finish reason (STOP or MAX_TOKENS)."""
    said = last_user_text(request).strip() or "nothing"
    words = f"This is the genroute demo model. You said: {said}".split()
    config = request.generation_config
    limit = config.max_output_tokens if config and config.max_output_tokens else None
    if limit is not None and len(words) > limit:
        return words[:limit], "MAX_TOKENS"
    return words, "STOP"


def _usage(prompt: int, output: int) -> UsageMetadata:
    return UsageMetadata(
        prompt_token_count=prompt,
        candidates_token_count=output,
        total_token_count=prompt + output,
        prompt_tokens_details=[ModalityTokenCount(modality="TEXT", token_count=prompt)],
    )


def _response_id(request: GenerateContentRequest) -> str:
    digest = hashlib.sha256(last_user_text(request).encode()).hexdigest()
    return f"demo-{digest[:16]}"


def embed_text(text: str, dimensions: int) -> list[float]:
    """A unit vector derived from the SHA-256 of the text: equal texts, equal vectors."""
    values: list[float] = []
    counter = 0
    while len(values) < dimensions:
        block = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        values.extend(x / 2**31 for x in struct.unpack(">8i", block))
        counter += 1
    values = values[:dimensions]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 6) for v in values]


class DemoProvider:
    """Serves the `demo` model locally."""

    name = "demo"

    def __init__(self, spec: DeploymentSpec, transport: Transport | None = None) -> None:
        self.spec = spec  # the transport is not used: nothing leaves the process

    def _chunk(
        self, text: str, request: GenerateContentRequest, usage: UsageMetadata, finish: str | None
    ) -> GenerateContentResponse:
        return GenerateContentResponse(
            candidates=[
                Candidate(
                    content=Content(role="model", parts=[Part(text=text)]),
                    finish_reason=finish,
                    index=0,
                )
            ],
            usage_metadata=usage,
            model_version=f"demo/{self.spec.upstream_model}",
            response_id=_response_id(request),
        )

    async def generate(
        self, call: Call, request: GenerateContentRequest
    ) -> GenerateContentResponse:
        words, finish = reply_words(request)
        usage = _usage(count_words(request.contents), len(words))
        return self._chunk(" ".join(words), request, usage, finish)

    async def stream(
        self, call: Call, request: GenerateContentRequest
    ) -> AsyncIterator[GenerateContentResponse]:
        words, finish = reply_words(request)
        prompt = count_words(request.contents)
        for start in range(0, len(words), WORDS_PER_CHUNK):
            piece = words[start : start + WORDS_PER_CHUNK]
            text = (" " if start else "") + " ".join(piece)
            done = start + WORDS_PER_CHUNK >= len(words)
            sent = min(len(words), start + WORDS_PER_CHUNK)
            yield self._chunk(text, request, _usage(prompt, sent), finish if done else None)
            await asyncio.sleep(0)

    async def count_tokens(self, call: Call, request: CountTokensRequest) -> CountTokensResponse:
        total = count_words(request.all_contents())
        return CountTokensResponse(
            total_tokens=total,
            prompt_tokens_details=[ModalityTokenCount(modality="TEXT", token_count=total)],
        )

    async def embed(self, call: Call, request: EmbedContentRequest) -> EmbedContentResponse:
        response = EmbedContentResponse(embedding=self._embed(request))
        response.set_private("_input_tokens", count_words([request.content]))
        return response

    async def batch_embed(
        self, call: Call, request: BatchEmbedContentsRequest
    ) -> BatchEmbedContentsResponse:
        response = BatchEmbedContentsResponse(embeddings=[self._embed(r) for r in request.requests])
        response.set_private("_input_tokens", count_words([r.content for r in request.requests]))
        return response

    def _embed(self, request: EmbedContentRequest) -> ContentEmbedding:
        text = " ".join(p.text for p in request.content.parts or [] if p.text)
        dims = request.output_dimensionality or DEFAULT_DIMENSIONS
        return ContentEmbedding(values=embed_text(text, dims))
