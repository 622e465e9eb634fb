"""`GeminiProvider`: one Gemini API deployment, its URLs and key over the JSON transport.

The base is `params.api_base`, else $GEMINI_API_BASE / $GOOGLE_GEMINI_BASE_URL, else
Google's (catalog.py); `/v1beta` is appended unless the base names a version. The key is
`params.api_key`, else $GEMINI_API_KEY / $GOOGLE_API_KEY, sent as `x-goog-api-key`.
Translation lives in translate.py; this module only knows where and how to send.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeVar

from genroute.call import Call
from genroute.providers.base import DeploymentSpec, UpstreamCache
from genroute.providers.catalog import CATALOG, first_env
from genroute.providers.gemini import translate
from genroute.providers.gemini.files import (
    create_cached_content,
    files_target,
    get_file,
    upload_file,
)
from genroute.providers.transport import JsonTransport, Transport, reading
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

__all__ = ["DEFAULT_VERSION", "GeminiProvider", "versioned_base"]

FACTS = CATALOG["gemini"]
DEFAULT_VERSION = "v1beta"
_VERSIONS = ("/v1", "/v1beta", "/v1alpha")

T = TypeVar("T", bound=WireModel)


def versioned_base(api_base: str | None) -> str:
    """The API root with its version: the base as given if it ends in one, else + /v1beta."""
    base = (api_base or "").strip() or first_env(FACTS.base_env) or FACTS.default_base or ""
    base = base.rstrip("/")
    return base if base.endswith(_VERSIONS) else f"{base}/{DEFAULT_VERSION}"


class GeminiProvider:
    """Serves one Gemini deployment."""

    name = translate.PROVIDER

    def __init__(self, spec: DeploymentSpec, transport: Transport) -> None:
        self.spec = spec
        root = versioned_base(spec.params.api_base)
        self._root = root
        self._transport = transport
        self._model_url = f"{root}/{translate.model_path(spec.upstream_model)}"
        self._model_name = translate.unescaped_model_path(spec.upstream_model)
        self._headers = {"content-type": "application/json"}
        key = (spec.params.api_key or "").strip() or first_env(FACTS.key_env)
        if key:
            self._headers["x-goog-api-key"] = key
        if spec.params.extra_headers:
            self._headers.update(spec.params.extra_headers)
        self._http = JsonTransport.for_deployment(
            transport, spec, provider=self.name, map_error=translate.map_error
        )

    @property
    def files_target(self) -> str:
        """Who sees a file uploaded through this deployment (its API root and key)."""
        return files_target(self._root, self._headers.get("x-goog-api-key"))

    async def upload_file(
        self,
        call: Call,
        chunks: AsyncIterator[bytes],
        *,
        size: int,
        mime_type: str,
        display_name: str | None,
    ) -> dict[str, Any]:
        """Upload a file to this deployment's Files API; the File it made there."""
        return await upload_file(
            self._transport,
            self._root,
            self._headers,
            chunks,
            size=size,
            mime_type=mime_type,
            display_name=display_name,
            seconds=self.spec.timeout,
        )

    async def get_file(self, call: Call, name: str) -> dict[str, Any]:
        """A file this deployment's key uploaded to its Files API (its state, say)."""
        return await get_file(
            self._transport, self._root, self._headers, name, seconds=self.spec.timeout
        )

    async def create_cache(
        self, call: Call, request: GenerateContentRequest, ttl_seconds: float
    ) -> UpstreamCache:
        """Create a cached content for this deployment's model (its upstream name and
        token count)."""
        body = request.model_dump(
            by_alias=True,
            exclude_none=True,
            include={"contents", "system_instruction", "tools", "tool_config"},
        )
        body["model"] = self._model_name
        body["ttl"] = f"{max(1, int(ttl_seconds))}s"
        return await create_cached_content(
            self._transport, self._root, self._headers, body, seconds=self.spec.timeout
        )

    async def _call(self, call: Call, action: str, body: bytes, reply: type[T], what: str) -> T:
        data = await self._http.post(f"{self._model_url}:{action}", body, self._headers, call)
        return translate.parse_reply(data, reply, what)

    async def generate(
        self, call: Call, request: GenerateContentRequest
    ) -> GenerateContentResponse:
        body = translate.to_wire(request)
        url = f"{self._model_url}:generateContent"
        return translate.from_wire(await self._http.post(url, body, self._headers, call))

    async def stream(
        self, call: Call, request: GenerateContentRequest
    ) -> AsyncIterator[GenerateContentResponse]:
        url = f"{self._model_url}:streamGenerateContent?alt=sse"
        stream = self._http.stream(url, translate.to_wire(request), self._headers, call)
        async with reading(stream) as payloads:
            async for payload in payloads:
                yield translate.decode_event(payload)

    async def count_tokens(self, call: Call, request: CountTokensRequest) -> CountTokensResponse:
        if request.generate_content_request is not None:
            inner = request.generate_content_request.model_copy(update={"model": self._model_name})
            request = request.model_copy(update={"generate_content_request": inner})
        body = translate.dump(request)
        return await self._call(call, "countTokens", body, CountTokensResponse, "token count")

    async def embed(self, call: Call, request: EmbedContentRequest) -> EmbedContentResponse:
        body = translate.dump(request.model_copy(update={"model": None}))
        return await self._call(call, "embedContent", body, EmbedContentResponse, "embedding")

    async def batch_embed(
        self, call: Call, request: BatchEmbedContentsRequest
    ) -> BatchEmbedContentsResponse:
        body = translate.batch_to_wire(request, self.spec.upstream_model)
        return await self._call(
            call, "batchEmbedContents", body, BatchEmbedContentsResponse, "batch of embeddings"
        )
