"""`BedrockProvider`: one AWS Bedrock deployment over the Converse API, signed with SigV4.

    POST {base}/model/{modelId}/converse           JSON
    POST {base}/model/{modelId}/converse-stream    AWS event stream
    POST {base}/model/{foundationModelId}/count-tokens   (Claude; others count locally)

`{base}` is `https://bedrock-runtime.{region}.amazonaws.com` or `api_base`; `{modelId}` a
model id, inference profile (`us.anthropic.claude-…`) or ARN. Credentials, region and
signing are auth.py's, the exchanges http.py's, translation translate.py's.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import orjson

from genroute.call import Call
from genroute.errors import InvalidRequest
from genroute.providers.base import DeploymentSpec
from genroute.providers.bedrock import translate
from genroute.providers.bedrock.auth import AwsAuth, endpoint, model_path
from genroute.providers.bedrock.errors import PROVIDER
from genroute.providers.bedrock.http import BedrockHttp, reading
from genroute.providers.bedrock.profile import profile_for
from genroute.providers.bedrock.stream import StreamDecoder
from genroute.providers.openai.tokens import estimate
from genroute.providers.shapes import Reader
from genroute.providers.transport import Transport
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

__all__ = ["EVENT_STREAM", "NO_API_KEY", "NO_EMBEDDINGS", "BedrockProvider"]

log = logging.getLogger("genroute.providers.bedrock")

EVENT_STREAM = "application/vnd.amazon.eventstream"
NO_API_KEY = (
    "model bedrock/{model}: params.api_key is not used by bedrock deployments, which sign "
    "each request with AWS credentials (aws_access_key_id and aws_secret_access_key, or "
    "botocore's credential chain); Bedrock API keys are not supported by this version"
)
NO_EMBEDDINGS = (
    "bedrock models are served through the Converse API, which has no embeddings; route "
    "embedContent/batchEmbedContents to an embedding model (e.g. gemini/text-embedding-004)"
)


class BedrockProvider:
    """Serves one Bedrock deployment."""

    name = PROVIDER

    def __init__(self, spec: DeploymentSpec, transport: Transport) -> None:
        self.spec = spec
        if (spec.params.api_key or "").strip():
            raise InvalidRequest(NO_API_KEY.format(model=spec.upstream_model))
        self.profile = profile_for(spec)
        self.auth = AwsAuth(spec.params, spec.upstream_model)
        root = endpoint(spec.params, self.auth.region)
        model = f"{root}/model/{model_path(spec.upstream_model)}"
        self.converse_url = f"{model}/converse"
        self.stream_url = f"{model}/converse-stream"
        count = self.profile.count_model
        self.count_url = f"{root}/model/{model_path(count)}/count-tokens" if count else None
        self._headers = {"content-type": "application/json"}
        if spec.params.extra_headers:
            self._headers.update(spec.params.extra_headers)
        self._stream_headers = {**self._headers, "accept": EVENT_STREAM}
        self._http = BedrockHttp(transport, spec, self.auth)

    def _prepare(self, request: GenerateContentRequest) -> translate.Prepared:
        prepared = translate.to_wire(request, self.profile)
        if prepared.dropped:
            log.debug("left out (drop_params): %s", ", ".join(prepared.dropped))
        return prepared

    async def generate(
        self, call: Call, request: GenerateContentRequest
    ) -> GenerateContentResponse:
        prepared = self._prepare(request)
        body = orjson.dumps(prepared.body)
        data, headers = await self._http.post(self.converse_url, body, self._headers, call)
        return translate.from_wire(data, prepared.context, headers.get("x-amzn-RequestId"))

    async def stream(
        self, call: Call, request: GenerateContentRequest
    ) -> AsyncIterator[GenerateContentResponse]:
        prepared = self._prepare(request)
        body = orjson.dumps(prepared.body)
        started: list[str | None] = []
        events = self._http.events(self.stream_url, body, self._stream_headers, call, started)
        decoder: StreamDecoder | None = None
        async with reading(events) as stream:
            async for event_type, payload in stream:
                if decoder is None:
                    decoder = StreamDecoder(prepared.context, started[0] if started else None)
                for chunk in decoder.feed(event_type, payload):
                    yield chunk
        for chunk in (decoder or StreamDecoder(prepared.context)).finish():
            yield chunk

    async def count_tokens(self, call: Call, request: CountTokensRequest) -> CountTokensResponse:
        if self.count_url is None:
            return estimate(request)
        body = orjson.dumps(translate.count_tokens_body(request, self.profile))
        data, _ = await self._http.post(self.count_url, body, self._headers, call)
        r = Reader(self.name, "token count")
        total = r.integer(r.load(data).get("inputTokens"), "inputTokens")
        if total is None:
            raise r.fail("inputTokens is missing")
        return CountTokensResponse(total_tokens=total)

    async def embed(self, call: Call, request: EmbedContentRequest) -> EmbedContentResponse:
        raise InvalidRequest(NO_EMBEDDINGS)

    async def batch_embed(
        self, call: Call, request: BatchEmbedContentsRequest
    ) -> BatchEmbedContentsResponse:
        raise InvalidRequest(NO_EMBEDDINGS)
