"""`OpenAIProvider`: one Chat Completions deployment behind the model API.

Serves `openai/`, `azure/` and every OpenAI-compatible prefix in prefixes.SERVERS; which
server it talks to is data (URLs, auth header, body quirks), never a branch on the name.
Translation is in translate.py / messages.py / response.py / stream.py; this module only
sends. countTokens is a local estimate (tokens.py): Chat Completions has no such endpoint.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from functools import partial

import orjson

from genroute.call import Call
from genroute.errors import FailureReason, Unauthenticated
from genroute.providers.base import DeploymentSpec, embed_one_by_batch
from genroute.providers.drops import Drops
from genroute.providers.models import model_facts
from genroute.providers.openai import tokens, translate
from genroute.providers.openai.errors import map_error
from genroute.providers.openai.prefixes import SERVERS, Endpoint, endpoint, missing_key_message
from genroute.providers.openai.stream import DONE, StreamDecoder
from genroute.providers.transport import JsonTransport, Transport, reading
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

__all__ = ["OpenAIProvider", "chat_options"]

log = logging.getLogger("genroute.providers.openai")


def chat_options(spec: DeploymentSpec, found: Endpoint) -> translate.ChatOptions:
    """What the translator may send this deployment: the server's row (`found`) and the
    model's facts (providers/models.py, `model_info` applied). A model that does not
    reason gets no reasoning_effort; a reasoning model no sampling settings, and the
    max-tokens field it requires."""
    facts = model_facts(spec.provider, spec.upstream_model, spec.model_info)
    return translate.ChatOptions(
        model=spec.upstream_model,
        max_tokens_field=facts.max_tokens_field or found.max_tokens_field,
        top_k=found.top_k,
        reasoning_effort=found.reasoning_effort and facts.takes_effort,
        effort_values=facts.efforts or (),
        stream_usage=found.stream_usage,
        sampling=facts.sampling,
        renames=found.renames,
        drop_params=spec.drop_params,
    )


class OpenAIProvider:
    """Serves one deployment on an OpenAI-compatible Chat Completions server."""

    def __init__(self, spec: DeploymentSpec, transport: Transport) -> None:
        self.spec = spec
        self.name = spec.provider
        self._server = SERVERS[spec.provider]
        self._endpoint = endpoint(self._server, spec.params, spec.upstream_model)
        self._options = chat_options(spec, self._endpoint)
        self._http = JsonTransport.for_deployment(
            transport, spec, provider=self.name, map_error=partial(map_error, provider=self.name)
        )

    def _require_key(self) -> None:
        if not self._endpoint.has_key:
            raise Unauthenticated(
                missing_key_message(self._server, self.spec.upstream_model),
                provider=self.name,
                reason=FailureReason.AUTH,
            )

    def _chat(self, request: GenerateContentRequest, stream: bool) -> translate.ChatRequest:
        self._require_key()
        chat = translate.to_wire(request, self._options, stream=stream)
        if chat.dropped:
            log.debug("%s: left out (no equivalent): %s", self.name, ", ".join(chat.dropped))
        return chat

    async def generate(
        self, call: Call, request: GenerateContentRequest
    ) -> GenerateContentResponse:
        chat = self._chat(request, stream=False)
        body = orjson.dumps(chat.body)
        data = await self._http.post(self._endpoint.chat_url, body, self._endpoint.headers, call)
        return translate.from_wire(
            data, include_thoughts=chat.include_thoughts, unwrap=chat.unwrap, provider=self.name
        )

    async def stream(
        self, call: Call, request: GenerateContentRequest
    ) -> AsyncIterator[GenerateContentResponse]:
        chat = self._chat(request, stream=True)
        decoder = StreamDecoder(
            include_thoughts=chat.include_thoughts, unwrap=chat.unwrap, provider=self.name
        )
        body = orjson.dumps(chat.body)
        stream = self._http.stream(
            self._endpoint.chat_url, body, self._endpoint.headers, call, done=DONE
        )
        async with reading(stream) as payloads:
            async for payload in payloads:
                for chunk in decoder.feed(payload):
                    yield chunk
        for chunk in decoder.end():
            yield chunk

    async def count_tokens(self, call: Call, request: CountTokensRequest) -> CountTokensResponse:
        return tokens.estimate(request)

    async def embed(self, call: Call, request: EmbedContentRequest) -> EmbedContentResponse:
        return await embed_one_by_batch(self, call, request)

    async def batch_embed(
        self, call: Call, request: BatchEmbedContentsRequest
    ) -> BatchEmbedContentsResponse:
        self._require_key()
        dropped = Drops(self.spec.drop_params)
        bodies = translate.embed_bodies(request, self.spec.upstream_model, dropped)
        if dropped:
            log.debug("%s: left out (no equivalent): %s", self.name, ", ".join(dropped))
        vectors: list[list[float]] = [[] for _ in request.requests]
        input_tokens: int | None = 0
        for indices, body in bodies:
            data = await self._http.post(
                self._endpoint.embeddings_url, orjson.dumps(body), self._endpoint.headers, call
            )
            reply = translate.embeddings_from_wire(data, len(indices), self.name)
            for index, values in zip(indices, reply.vectors, strict=True):
                vectors[index] = values
            # The sum over every sub-request, or None when one of them did not say.
            if input_tokens is not None and reply.input_tokens is not None:
                input_tokens += reply.input_tokens
            else:
                input_tokens = None
        response = BatchEmbedContentsResponse(
            embeddings=[ContentEmbedding(values=v) for v in vectors]
        )
        response.set_private("_input_tokens", input_tokens if bodies else None)
        return response
