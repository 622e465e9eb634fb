"""`AnthropicProvider`: one Anthropic deployment, its URL, headers and key over the JSON
transport.

`POST {base}/v1/messages` (JSON or SSE) and `POST {base}/v1/messages/count_tokens`, with
`x-api-key` and `anthropic-version`. The base is `params.api_base`, else
$ANTHROPIC_API_BASE, else $ANTHROPIC_BASE_URL, else https://api.anthropic.com (catalog.py);
the key `params.api_key`, else $ANTHROPIC_API_KEY. Translation lives in translate.py,
response.py and stream.py.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import orjson

from genroute.call import Call
from genroute.errors import InvalidRequest
from genroute.providers.anthropic import translate
from genroute.providers.anthropic.errors import PROVIDER, map_error
from genroute.providers.anthropic.profile import profile_for
from genroute.providers.anthropic.stream import StreamDecoder
from genroute.providers.base import DeploymentSpec
from genroute.providers.catalog import CATALOG, first_env
from genroute.providers.shapes import Reader
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
)

__all__ = ["API_VERSION", "NO_EMBEDDINGS", "AnthropicProvider", "api_root"]

log = logging.getLogger("genroute.providers.anthropic")

FACTS = CATALOG["anthropic"]
API_VERSION = "2023-06-01"
NO_EMBEDDINGS = (
    "anthropic models have no embeddings API; route embedContent/batchEmbedContents "
    "to an embedding model (e.g. gemini/text-embedding-004)"
)


def api_root(api_base: str | None) -> str:
    """The base URL without a trailing `/` or `/v1` (both forms are accepted)."""
    base = (api_base or "").strip() or first_env(FACTS.base_env) or FACTS.default_base or ""
    return base.rstrip("/").removesuffix("/v1")


class AnthropicProvider:
    """Serves one Anthropic deployment."""

    name = PROVIDER

    def __init__(self, spec: DeploymentSpec, transport: Transport) -> None:
        self.spec = spec
        self.profile = profile_for(spec)
        root = api_root(spec.params.api_base)
        self._messages_url = f"{root}/v1/messages"
        self._count_url = f"{root}/v1/messages/count_tokens"
        self._headers = {"content-type": "application/json", "anthropic-version": API_VERSION}
        key = (spec.params.api_key or "").strip() or first_env(FACTS.key_env)
        if key:
            self._headers["x-api-key"] = key
        if spec.params.extra_headers:
            self._headers.update(spec.params.extra_headers)
        self._http = JsonTransport.for_deployment(
            transport, spec, provider=self.name, map_error=map_error
        )

    def _prepare(self, request: GenerateContentRequest, stream: bool) -> translate.Prepared:
        prepared = translate.to_wire(request, self.profile, stream=stream)
        if prepared.dropped:
            log.debug("left out (drop_params): %s", ", ".join(prepared.dropped))
        return prepared

    async def generate(
        self, call: Call, request: GenerateContentRequest
    ) -> GenerateContentResponse:
        prepared = self._prepare(request, stream=False)
        body = orjson.dumps(prepared.body)
        data = await self._http.post(self._messages_url, body, self._headers, call)
        return translate.from_wire(data, prepared.context)

    async def stream(
        self, call: Call, request: GenerateContentRequest
    ) -> AsyncIterator[GenerateContentResponse]:
        prepared = self._prepare(request, stream=True)
        decoder = StreamDecoder(prepared.context)
        body = orjson.dumps(prepared.body)
        stream = self._http.stream(self._messages_url, body, self._headers, call)
        async with reading(stream) as payloads:
            async for payload in payloads:
                for chunk in decoder.feed(payload):
                    yield chunk
        for chunk in decoder.finish():
            yield chunk

    async def count_tokens(self, call: Call, request: CountTokensRequest) -> CountTokensResponse:
        body = orjson.dumps(translate.count_tokens_body(request, self.profile))
        data = await self._http.post(self._count_url, body, self._headers, call)
        r = Reader(self.name, "token count")
        total = r.integer(r.load(data).get("input_tokens"), "input_tokens")
        if total is None:
            raise r.fail("input_tokens is missing")
        return CountTokensResponse(total_tokens=total)

    async def embed(self, call: Call, request: EmbedContentRequest) -> EmbedContentResponse:
        raise InvalidRequest(NO_EMBEDDINGS)

    async def batch_embed(
        self, call: Call, request: BatchEmbedContentsRequest
    ) -> BatchEmbedContentsResponse:
        raise InvalidRequest(NO_EMBEDDINGS)
