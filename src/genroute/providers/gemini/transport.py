"""The Gemini transport: URLs and auth over the shared JSON transport.

Translation lives in translate.py; this module only knows where and how to send.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from typing import TypeVar

from genroute.http_pool import HttpPool
from genroute.providers.base import DeploymentSpec
from genroute.providers.gemini import translate
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
    WireModel,
)

DEFAULT_API_BASE = "https://generativelanguage.googleapis.com"
DEFAULT_VERSION = "v1beta"
KEY_ENV_VARS = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
BASE_ENV_VARS = ("GEMINI_API_BASE", "GOOGLE_GEMINI_BASE_URL")
_VERSIONS = ("/v1", "/v1beta", "/v1alpha")

T = TypeVar("T", bound=WireModel)


def first_env(names: tuple[str, ...], environ: Mapping[str, str] | None = None) -> str | None:
    """The value of the first of `names` that is set and not empty."""
    env = os.environ if environ is None else environ
    return next((env[name] for name in names if env.get(name)), None)


def versioned_base(api_base: str | None) -> str:
    """The API root with its version: `api_base` (else $GEMINI_API_BASE, else
    $GOOGLE_GEMINI_BASE_URL, else Google's) as given if it ends in one, else + /v1beta."""
    base = (api_base or first_env(BASE_ENV_VARS) or DEFAULT_API_BASE).strip().rstrip("/")
    return base if base.endswith(_VERSIONS) else f"{base}/{DEFAULT_VERSION}"


class GeminiProvider:
    """Serves one Gemini deployment."""

    name = translate.PROVIDER

    def __init__(self, spec: DeploymentSpec, http: HttpPool) -> None:
        self.spec = spec
        root = versioned_base(spec.params.api_base)
        self._model_url = f"{root}/{translate.model_path(spec.upstream_model)}"
        self._headers = {"content-type": "application/json"}
        key = spec.params.api_key or first_env(KEY_ENV_VARS)
        if key:
            self._headers["x-goog-api-key"] = key.strip()
        if spec.params.extra_headers:
            self._headers.update(spec.params.extra_headers)
        self._transport = JsonTransport.for_deployment(
            http, spec, provider=self.name, map_error=translate.map_error
        )

    async def _call(self, action: str, body: bytes, reply: type[T]) -> T:
        data = await self._transport.post(f"{self._model_url}:{action}", body, self._headers)
        try:
            return reply.model_validate_json(data)
        except ValueError:
            raise translate.map_error(502, data, {}) from None

    async def generate(self, request: GenerateContentRequest) -> GenerateContentResponse:
        url = f"{self._model_url}:generateContent"
        return translate.from_wire(
            await self._transport.post(url, translate.to_wire(request), self._headers)
        )

    async def stream(
        self, request: GenerateContentRequest
    ) -> AsyncIterator[GenerateContentResponse]:
        url = f"{self._model_url}:streamGenerateContent?alt=sse"
        async for payload in self._transport.stream(url, translate.to_wire(request), self._headers):
            yield translate.decode_event(payload)

    async def count_tokens(self, request: CountTokensRequest) -> CountTokensResponse:
        if request.generate_content_request is not None:
            inner = request.generate_content_request.model_copy(
                update={"model": translate.model_path(self.spec.upstream_model)}
            )
            request = request.model_copy(update={"generate_content_request": inner})
        return await self._call("countTokens", translate.dump(request), CountTokensResponse)

    async def embed_content(self, request: EmbedContentRequest) -> EmbedContentResponse:
        body = translate.dump(request.model_copy(update={"model": None}))
        return await self._call("embedContent", body, EmbedContentResponse)

    async def batch_embed_contents(
        self, request: BatchEmbedContentsRequest
    ) -> BatchEmbedContentsResponse:
        body = translate.batch_to_wire(request, self.spec.upstream_model)
        return await self._call("batchEmbedContents", body, BatchEmbedContentsResponse)
