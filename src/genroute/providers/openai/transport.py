"""`OpenAIProvider`: one Chat Completions deployment behind the generateContent interface.

Serves `openai/`, `azure/` and every OpenAI-compatible prefix in prefixes.SERVERS; which
server it talks to is data (URLs, auth header, body quirks), never a branch on the name.
Translation is in translate.py / messages.py / stream.py; this module only sends.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from functools import partial

import orjson

from genroute.errors import Unauthenticated
from genroute.http_pool import HttpPool
from genroute.providers.base import DeploymentSpec, embed_one_by_batch
from genroute.providers.openai import tokens, translate
from genroute.providers.openai.errors import map_error
from genroute.providers.openai.prefixes import (
    SERVERS,
    endpoint,
    missing_key_message,
    takes_sampling,
)
from genroute.providers.openai.stream import StreamDecoder
from genroute.providers.transport import JsonTransport
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

log = logging.getLogger("genroute.providers.openai")


class OpenAIProvider:
    """Serves one deployment on an OpenAI-compatible Chat Completions server."""

    def __init__(self, spec: DeploymentSpec, http: HttpPool) -> None:
        self.spec = spec
        self.name = spec.provider
        self._server = SERVERS[spec.provider]
        self._endpoint = endpoint(self._server, spec.params, spec.upstream_model)
        flags = spec.model_info.model_extra or {}
        self._options = translate.ChatOptions(
            model=spec.upstream_model,
            max_tokens_field=self._endpoint.max_tokens_field,
            top_k=self._endpoint.top_k,
            reasoning_effort=self._endpoint.reasoning_effort
            and flags.get("supports_reasoning") is not False,
            stream_usage=self._endpoint.stream_usage,
            sampling=takes_sampling(
                self._server, spec.model_info.base_model or spec.upstream_model
            ),
            renames=self._endpoint.renames,
        )
        self._transport = JsonTransport.for_deployment(
            http, spec, provider=self.name, map_error=partial(map_error, provider=self.name)
        )

    def _chat(self, request: GenerateContentRequest, stream: bool) -> translate.ChatRequest:
        if not self._endpoint.has_key:
            raise Unauthenticated(
                missing_key_message(self._server, self.spec.upstream_model), provider=self.name
            )
        chat = translate.to_wire(request, self._options, stream=stream)
        if chat.dropped:
            log.debug("%s: left out (no equivalent): %s", self.name, ", ".join(chat.dropped))
        return chat

    async def generate(self, request: GenerateContentRequest) -> GenerateContentResponse:
        chat = self._chat(request, stream=False)
        data = await self._transport.post(
            self._endpoint.chat_url, orjson.dumps(chat.body), self._endpoint.headers
        )
        return translate.from_wire(
            data, include_thoughts=chat.include_thoughts, unwrap=chat.unwrap, provider=self.name
        )

    async def stream(
        self, request: GenerateContentRequest
    ) -> AsyncIterator[GenerateContentResponse]:
        chat = self._chat(request, stream=True)
        decoder = StreamDecoder(
            include_thoughts=chat.include_thoughts, unwrap=chat.unwrap, provider=self.name
        )
        payloads = self._transport.stream(
            self._endpoint.chat_url, orjson.dumps(chat.body), self._endpoint.headers
        )
        try:
            async for payload in payloads:
                for chunk in decoder.feed(payload):
                    yield chunk
                if decoder.done:
                    break
        finally:
            aclose = getattr(payloads, "aclose", None)
            if aclose is not None:
                await aclose()
        for chunk in decoder.end():
            yield chunk

    async def count_tokens(self, request: CountTokensRequest) -> CountTokensResponse:
        return tokens.estimate(request)

    async def embed_content(self, request: EmbedContentRequest) -> EmbedContentResponse:
        return await embed_one_by_batch(self, request)

    async def batch_embed_contents(
        self, request: BatchEmbedContentsRequest
    ) -> BatchEmbedContentsResponse:
        if not self._endpoint.has_key:
            raise Unauthenticated(
                missing_key_message(self._server, self.spec.upstream_model), provider=self.name
            )
        dropped: set[str] = set()
        bodies = translate.embed_bodies(request, self.spec.upstream_model, dropped)
        if dropped:
            log.debug("%s: left out (no equivalent): %s", self.name, ", ".join(sorted(dropped)))
        vectors: list[list[float]] = [[] for _ in request.requests]
        for indices, body in bodies:
            data = await self._transport.post(
                self._endpoint.embeddings_url, orjson.dumps(body), self._endpoint.headers
            )
            for index, values in zip(
                indices, translate.embed_vectors(data, len(indices), self.name), strict=True
            ):
                vectors[index] = values
        return BatchEmbedContentsResponse(embeddings=[ContentEmbedding(values=v) for v in vectors])
