"""The Anthropic transport: URL, headers and key over the shared JSON transport.

`POST {base}/v1/messages` (JSON or SSE) and `POST {base}/v1/messages/count_tokens`, with
`x-api-key` and `anthropic-version`. The base is `params.api_base`, else
$ANTHROPIC_API_BASE, else $ANTHROPIC_BASE_URL, else https://api.anthropic.com; the key
`params.api_key`, else $ANTHROPIC_API_KEY. Translation lives in translate.py and stream.py.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping

import orjson

from genroute.errors import InvalidRequest, UpstreamError
from genroute.http_pool import HttpPool
from genroute.providers.anthropic import translate
from genroute.providers.anthropic.errors import PROVIDER, map_error
from genroute.providers.anthropic.profile import profile_for
from genroute.providers.anthropic.stream import StreamDecoder
from genroute.providers.base import DeploymentSpec
from genroute.providers.transport import JsonTransport
from genroute.wire import (
    BatchEmbedContentsRequest,
    BatchEmbedContentsResponse,
    CountTokensRequest,
    CountTokensResponse,
    EmbedContentRequest,
    EmbedContentResponse,
    GenerateContentRequest,
    GenerateContentResponse,
)

DEFAULT_API_BASE = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
KEY_ENV_VARS = ("ANTHROPIC_API_KEY",)
BASE_ENV_VARS = ("ANTHROPIC_API_BASE", "ANTHROPIC_BASE_URL")
NO_EMBEDDINGS = (
    "anthropic models have no embeddings API; route embedContent/batchEmbedContents "
    "to an embedding model (e.g. gemini/text-embedding-004)"
)


def first_env(names: tuple[str, ...], environ: Mapping[str, str] | None = None) -> str | None:
    """The value of the first of `names` that is set and not empty."""
    env = os.environ if environ is None else environ
    return next((env[name] for name in names if env.get(name)), None)


def api_root(api_base: str | None) -> str:
    """The base URL without a trailing `/` or `/v1` (both forms are accepted)."""
    base = (api_base or first_env(BASE_ENV_VARS) or DEFAULT_API_BASE).strip().rstrip("/")
    return base.removesuffix("/v1")


class AnthropicProvider:
    """Serves one Anthropic deployment."""

    name = PROVIDER

    def __init__(self, spec: DeploymentSpec, http: HttpPool) -> None:
        self.spec = spec
        self.profile = profile_for(spec)
        root = api_root(spec.params.api_base)
        self._messages_url = f"{root}/v1/messages"
        self._count_url = f"{root}/v1/messages/count_tokens"
        self._headers = {"content-type": "application/json", "anthropic-version": API_VERSION}
        key = spec.params.api_key or first_env(KEY_ENV_VARS)
        if key:
            self._headers["x-api-key"] = key.strip()
        if spec.params.extra_headers:
            self._headers.update(spec.params.extra_headers)
        self._transport = JsonTransport.for_deployment(
            http, spec, provider=self.name, map_error=map_error
        )

    async def generate(self, request: GenerateContentRequest) -> GenerateContentResponse:
        prepared = translate.to_wire(request, self.profile)
        data = await self._transport.post(
            self._messages_url, orjson.dumps(prepared.body), self._headers
        )
        return translate.from_wire(data, prepared.context)

    async def stream(
        self, request: GenerateContentRequest
    ) -> AsyncIterator[GenerateContentResponse]:
        prepared = translate.to_wire(request, self.profile, stream=True)
        decoder = StreamDecoder(prepared.context)
        body = orjson.dumps(prepared.body)
        async for payload in self._transport.stream(self._messages_url, body, self._headers):
            try:
                event = orjson.loads(payload)
            except orjson.JSONDecodeError:
                raise UpstreamError(
                    "anthropic upstream sent a malformed stream event",
                    code=502,
                    provider=self.name,
                ) from None
            if not isinstance(event, dict):
                continue
            for chunk in decoder.feed(event):
                yield chunk
        for chunk in decoder.finish():
            yield chunk

    async def count_tokens(self, request: CountTokensRequest) -> CountTokensResponse:
        body = orjson.dumps(translate.count_tokens_body(request, self.profile))
        data = await self._transport.post(self._count_url, body, self._headers)
        try:
            total = orjson.loads(data)["input_tokens"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            total = None
        if not isinstance(total, int):
            raise UpstreamError(
                "anthropic upstream sent a malformed token count", code=502, provider=self.name
            )
        return CountTokensResponse(total_tokens=total)

    async def embed_content(self, request: EmbedContentRequest) -> EmbedContentResponse:
        raise InvalidRequest(NO_EMBEDDINGS)

    async def batch_embed_contents(
        self, request: BatchEmbedContentsRequest
    ) -> BatchEmbedContentsResponse:
        raise InvalidRequest(NO_EMBEDDINGS)
