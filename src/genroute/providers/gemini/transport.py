"""The Gemini transport: URLs, auth and the pooled HTTP calls. Translation lives in translate.py."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import TypeVar

import aiohttp

from genroute.errors import GenrouteError, UpstreamTimeout, UpstreamUnavailable
from genroute.http_pool import HttpPool
from genroute.providers.base import DeploymentSpec
from genroute.providers.gemini import translate
from genroute.sse import SSEDecoder
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


def versioned_base(api_base: str | None) -> str:
    """The API root with its version: `api_base` (else $GEMINI_API_BASE, else
    $GOOGLE_GEMINI_BASE_URL, else Google's) as given if it ends in one, else + /v1beta."""
    from_env = next((os.environ[n] for n in BASE_ENV_VARS if os.environ.get(n)), None)
    base = (api_base or from_env or DEFAULT_API_BASE).strip().rstrip("/")
    return base if base.endswith(_VERSIONS) else f"{base}/{DEFAULT_VERSION}"


def api_key_from_env(environ: dict[str, str] | None = None) -> str | None:
    """GEMINI_API_KEY, else GOOGLE_API_KEY."""
    env = os.environ if environ is None else environ
    for name in KEY_ENV_VARS:
        if env.get(name):
            return env[name]
    return None


class GeminiProvider:
    """Serves one Gemini deployment through a pooled aiohttp session."""

    name = translate.PROVIDER

    def __init__(self, spec: DeploymentSpec, http: HttpPool) -> None:
        self.spec = spec
        self._http = http
        root = versioned_base(spec.params.api_base)
        self._model_url = f"{root}/{translate.model_path(spec.upstream_model)}"
        self._headers = {"content-type": "application/json"}
        key = spec.params.api_key or api_key_from_env()
        if key:
            self._headers["x-goog-api-key"] = key.strip()
        if spec.params.extra_headers:
            self._headers.update(spec.params.extra_headers)
        self._timeout = aiohttp.ClientTimeout(
            total=spec.timeout, sock_connect=min(spec.timeout, 30)
        )
        self._stream_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=min(spec.stream_timeout, 30), sock_read=spec.stream_timeout
        )

    async def _post(self, action: str, body: bytes) -> bytes:
        url = f"{self._model_url}:{action}"
        session = self._http.session(url)
        try:
            async with session.post(
                url, data=body, headers=self._headers, timeout=self._timeout
            ) as resp:
                data = await resp.read()
                if resp.status != 200:
                    raise translate.map_error(resp.status, data, resp.headers)
                return data
        except GenrouteError:
            raise
        except TimeoutError:
            raise UpstreamTimeout(
                f"gemini upstream did not answer within {self.spec.timeout:g}s", provider=self.name
            ) from None
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(
                f"gemini upstream unreachable: {type(exc).__name__}: {exc}", provider=self.name
            ) from None

    async def _call(self, action: str, body: bytes, reply: type[T]) -> T:
        data = await self._post(action, body)
        try:
            return reply.model_validate_json(data)
        except ValueError:
            raise translate.map_error(502, data, {}) from None

    async def generate(self, request: GenerateContentRequest) -> GenerateContentResponse:
        return translate.from_wire(await self._post("generateContent", translate.to_wire(request)))

    async def stream(
        self, request: GenerateContentRequest
    ) -> AsyncIterator[GenerateContentResponse]:
        url = f"{self._model_url}:streamGenerateContent?alt=sse"
        session = self._http.session(url)
        body = translate.to_wire(request)
        try:
            async with session.post(
                url, data=body, headers=self._headers, timeout=self._stream_timeout
            ) as resp:
                if resp.status != 200:
                    raise translate.map_error(resp.status, await resp.read(), resp.headers)
                decoder = SSEDecoder()
                async for chunk in resp.content.iter_any():
                    for payload in decoder.feed(chunk):
                        yield translate.decode_event(payload)
                for payload in decoder.flush():
                    yield translate.decode_event(payload)
        except GenrouteError:
            raise
        except TimeoutError:
            raise UpstreamTimeout(
                f"gemini upstream stream stalled for {self.spec.stream_timeout:g}s",
                provider=self.name,
            ) from None
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(
                f"gemini upstream stream broke: {type(exc).__name__}: {exc}", provider=self.name
            ) from None

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
