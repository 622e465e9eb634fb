"""Vertex AI deployments: where they send, with which token; Gemini and Claude models.

    POST {base}/{version}/projects/{project}/locations/{location}/publishers/{publisher}/
         models/{model}:{method}

`base` is `params.api_base`, else `https://{location}-aiplatform.googleapis.com` (the
`global` location: `https://aiplatform.googleapis.com`); `version` is `v1` (or the one
`api_base` ends with, or `params.api_version`, e.g. `v1beta1`). `project` is
`vertex_project`, else $VERTEXAI_PROJECT ($VERTEX_PROJECT, $GOOGLE_CLOUD_PROJECT), else
the project the credentials name; `location` is `vertex_location`, else
$VERTEXAI_LOCATION ($VERTEX_LOCATION, $GOOGLE_CLOUD_LOCATION), else `us-central1`.
Every request carries `authorization: Bearer <token>` from the deployment's TokenSource
(auth.py), never a key of genroute's; a 401 from Vertex drops the token it refused.

- Gemini models (publisher `google`): `generateContent`, `streamGenerateContent?alt=sse`,
  `countTokens`, and `embedContent` / `batchEmbedContents` / `predict` for embedding
  models; translation in gemini.py.
- Claude models (`claude-*`, publisher `anthropic`): `rawPredict` and `streamRawPredict`
  with the Anthropic provider's own Messages body, less `model`, plus
  `anthropic_version: vertex-2023-10-16`; countTokens is Vertex's
  `models/count-tokens:rawPredict` (the body keeps `model`), so counts are Anthropic's.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson

from genroute.call import Call
from genroute.errors import ConfigError, FailureReason, InvalidRequest, UpstreamError
from genroute.providers.anthropic import translate as claude
from genroute.providers.anthropic.profile import profile_for
from genroute.providers.anthropic.stream import StreamDecoder
from genroute.providers.base import DeploymentSpec, Provider
from genroute.providers.catalog import first_env
from genroute.providers.drops import Drops
from genroute.providers.shapes import Reader
from genroute.providers.transport import (
    ErrorMapper,
    JsonTransport,
    Transport,
    path_segment,
    reading,
)
from genroute.providers.vertex import gemini
from genroute.providers.vertex.auth import PROVIDER, CredentialsRef, TokenSource, token_source
from genroute.providers.vertex.errors import as_vertex, map_claude_error, map_error
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

__all__ = [
    "ANTHROPIC_VERSION",
    "DEFAULT_LOCATION",
    "DEFAULT_VERSION",
    "LOCATION_ENV",
    "PROJECT_ENV",
    "Placement",
    "VertexClaudeProvider",
    "VertexGeminiProvider",
    "default_base",
    "is_claude",
    "vertex_provider",
]

log = logging.getLogger("genroute.providers.vertex")

ANTHROPIC_VERSION = "vertex-2023-10-16"
DEFAULT_LOCATION = "us-central1"
DEFAULT_VERSION = "v1"
PROJECT_ENV = ("VERTEXAI_PROJECT", "VERTEX_PROJECT", "GOOGLE_CLOUD_PROJECT")
LOCATION_ENV = ("VERTEXAI_LOCATION", "VERTEX_LOCATION", "GOOGLE_CLOUD_LOCATION")
_LOCATION = re.compile(r"[a-z][a-z0-9-]{0,62}\Z")  # it becomes part of a host name
_VERSION = re.compile(r"/(v1|v1beta1)\Z")
NO_EMBEDDINGS = (
    "Claude on Vertex AI has no embeddings API; route embedContent/batchEmbedContents to "
    "an embedding model (e.g. vertex_ai/text-embedding-005)"
)


#: How each publisher's errors read: Google's shape, or Claude's through rawPredict.
_MAPPERS: dict[str, ErrorMapper] = {"google": map_error, "anthropic": map_claude_error}


def default_base(location: str) -> str:
    """Vertex's endpoint for a location: regional, or the global one."""
    if location == "global":
        return "https://aiplatform.googleapis.com"
    return f"https://{location}-aiplatform.googleapis.com"


def is_claude(model: str) -> bool:
    """Whether a Vertex model id is one of Anthropic's (served through rawPredict)."""
    return model.strip().lower().rsplit("/", 1)[-1].startswith("claude")


def _segment(name: str) -> str:
    """A path segment: escaped, except `@` (`claude-sonnet-4-5@20250929`), which paths
    may hold as it is."""
    return path_segment(name).replace("%40", "@")


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a deployment's requests go: the versioned root, the project (None: the one the
    credentials name) and the location."""

    root: str
    project: str | None
    location: str

    @classmethod
    def from_spec(cls, spec: DeploymentSpec) -> Placement:
        params = spec.params
        location = (params.vertex_location or "").strip() or first_env(LOCATION_ENV)
        location = (location or DEFAULT_LOCATION).lower()
        if not _LOCATION.match(location):
            raise ConfigError(f"vertex_location {location!r} is not a Google Cloud location")
        project = (params.vertex_project or "").strip() or first_env(PROJECT_ENV)
        base = ((params.api_base or "").strip() or default_base(location)).rstrip("/")
        if not _VERSION.search(base):
            base = f"{base}/{(params.api_version or '').strip() or DEFAULT_VERSION}"
        return cls(base, project, location)

    def prefix(self, project: str) -> str:
        """`projects/{project}/locations/{location}` (a resource name's start)."""
        return f"projects/{project}/locations/{self.location}"


class _Vertex:
    """What every Vertex deployment shares: placement, token, headers, errors."""

    name = PROVIDER
    publisher: ClassVar[str]

    def __init__(self, spec: DeploymentSpec, transport: Transport) -> None:
        if spec.params.api_key:
            raise ConfigError(
                f"{spec.params.model}: vertex_ai deployments authenticate with "
                "vertex_credentials or application default credentials, not api_key"
            )
        self.spec = spec
        self.place = Placement.from_spec(spec)
        self.auth: TokenSource = token_source(CredentialsRef.parse(spec.params.vertex_credentials))
        self._model = _segment(spec.upstream_model)
        self._http = JsonTransport.for_deployment(
            transport, spec, provider=PROVIDER, map_error=_MAPPERS[self.publisher]
        )

    def _project(self) -> str:
        project = self.place.project or self.auth.project_id
        if not project:
            raise UpstreamError(
                f"{self.spec.params.model}: no Vertex AI project; set vertex_project or "
                "$VERTEXAI_PROJECT, or use credentials that name one",
                code=400,
                status="FAILED_PRECONDITION",
                provider=PROVIDER,
                reason=FailureReason.AUTH,
            )
        return project

    def _url(self, method: str, model: str | None = None) -> str:
        place, project = self.place, _segment(self._project())
        return (
            f"{place.root}/projects/{project}/locations/{place.location}/publishers/"
            f"{self.publisher}/models/{model or self._model}:{method}"
        )

    async def _headers(self) -> tuple[dict[str, str], str]:
        token = await self.auth.token()
        headers = {"content-type": "application/json", "authorization": f"Bearer {token}"}
        if self.auth.quota_project:
            headers["x-goog-user-project"] = self.auth.quota_project
        if self.spec.params.extra_headers:
            headers.update(self.spec.params.extra_headers)
        return headers, token

    @contextmanager
    def _errors(self, token: str) -> Iterator[None]:
        """Errors as Vertex's; a 401 means Vertex no longer takes the token."""
        try:
            with as_vertex():
                yield
        except UpstreamError as exc:
            if exc.code == 401:
                self.auth.invalidate(token)
            raise

    async def _post(self, call: Call, method: str, body: bytes, model: str | None = None) -> bytes:
        headers, token = await self._headers()
        with self._errors(token):
            return await self._http.post(self._url(method, model), body, headers, call)

    def _drops(self) -> Drops:
        return Drops(self.spec.drop_params)

    def _log(self, drops: Drops) -> None:
        if drops:
            log.debug("vertex_ai: left out: %s", ", ".join(drops))


class VertexGeminiProvider(_Vertex):
    """A Gemini (or Google embedding) model on Vertex AI."""

    publisher = "google"

    async def _body(self, request: GenerateContentRequest) -> bytes:
        drops = self._drops()
        location = None
        if gemini.needs_location(request):
            if not (self.place.project or self.auth.project_id):
                await self.auth.token()  # the credentials say which project
            location = self.place.prefix(self._project())
        body = gemini.to_wire(request, drops, location)
        self._log(drops)
        return body

    async def generate(
        self, call: Call, request: GenerateContentRequest
    ) -> GenerateContentResponse:
        data = await self._post(call, "generateContent", await self._body(request))
        return gemini.from_wire(data)

    async def stream(
        self, call: Call, request: GenerateContentRequest
    ) -> AsyncIterator[GenerateContentResponse]:
        body = await self._body(request)
        headers, token = await self._headers()
        url = f"{self._url('streamGenerateContent')}?alt=sse"
        with self._errors(token):
            async with reading(self._http.stream(url, body, headers, call)) as payloads:
                async for payload in payloads:
                    yield gemini.decode_event(payload)

    async def count_tokens(self, call: Call, request: CountTokensRequest) -> CountTokensResponse:
        drops = self._drops()
        body = gemini.count_to_wire(request, drops)
        self._log(drops)
        data = await self._post(call, "countTokens", body)
        return gemini.parse_reply(data, CountTokensResponse, "token count")

    async def embed(self, call: Call, request: EmbedContentRequest) -> EmbedContentResponse:
        batch = await self.batch_embed(call, BatchEmbedContentsRequest(requests=[request]))
        return gemini.one_embedding(batch)

    async def batch_embed(
        self, call: Call, request: BatchEmbedContentsRequest
    ) -> BatchEmbedContentsResponse:
        requests = list(request.requests)
        if not gemini.embeds_by_content(self.spec.upstream_model):
            return await self._predict(call, requests)
        if len(requests) == 1 or "maas" in self.spec.upstream_model.lower():
            # MaaS models embed one content a call (google-genai refuses more).
            found = [
                await self._post(call, "embedContent", orjson.dumps(gemini.embed_content_body(r)))
                for r in requests
            ]
            with as_vertex():
                return _joined([gemini.embed_reply(data, None) for data in found])
        body = orjson.dumps(gemini.batch_embed_body(requests))
        data = await self._post(call, "batchEmbedContents", body)
        return gemini.embed_reply(data, len(requests))

    async def _predict(
        self, call: Call, requests: list[EmbedContentRequest]
    ) -> BatchEmbedContentsResponse:
        """One `:predict` per output dimensionality asked for; answers in request order."""
        groups: dict[int | None, list[int]] = {}
        for index, r in enumerate(requests):
            groups.setdefault(r.output_dimensionality, []).append(index)
        drops = self._drops()
        bodies = [
            (indices, gemini.predict_body([requests[i] for i in indices], indices[0], drops))
            for indices in groups.values()
        ]
        self._log(drops)
        vectors: list[ContentEmbedding | None] = [None] * len(requests)
        tokens: int | None = 0
        for indices, body in bodies:
            data = await self._post(call, "predict", orjson.dumps(body))
            reply = gemini.predict_reply(data, len(indices))
            for index, embedding in zip(indices, reply.embeddings, strict=True):
                vectors[index] = embedding
            found = reply._input_tokens
            tokens = tokens + found if tokens is not None and found is not None else None
        response = BatchEmbedContentsResponse(embeddings=[v for v in vectors if v is not None])
        response.set_private("_input_tokens", tokens if requests else None)
        return response


def _joined(batches: list[BatchEmbedContentsResponse]) -> BatchEmbedContentsResponse:
    joined = BatchEmbedContentsResponse(embeddings=[e for b in batches for e in b.embeddings])
    counts = [b._input_tokens for b in batches]
    joined.set_private("_input_tokens", None if None in counts else sum(c or 0 for c in counts))
    return joined


class VertexClaudeProvider(_Vertex):
    """A Claude model on Vertex AI: the Anthropic translator, sent through rawPredict."""

    publisher = "anthropic"

    def __init__(self, spec: DeploymentSpec, transport: Transport) -> None:
        super().__init__(spec, transport)
        self.profile = profile_for(spec)

    def _prepare(self, request: GenerateContentRequest, stream: bool) -> claude.Prepared:
        prepared = claude.to_wire(request, self.profile, stream=stream)
        if prepared.dropped:
            log.debug("vertex_ai: left out (drop_params): %s", ", ".join(prepared.dropped))
        return prepared

    @staticmethod
    def raw_body(body: dict[str, Any]) -> bytes:
        """The rawPredict body: the Messages body without `model` (the URL names it), with
        Vertex's `anthropic_version`."""
        sent = {"anthropic_version": ANTHROPIC_VERSION}
        sent.update((k, v) for k, v in body.items() if k != "model")
        return orjson.dumps(sent)

    async def generate(
        self, call: Call, request: GenerateContentRequest
    ) -> GenerateContentResponse:
        prepared = self._prepare(request, stream=False)
        data = await self._post(call, "rawPredict", self.raw_body(prepared.body))
        with as_vertex():
            return claude.from_wire(data, prepared.context)

    async def stream(
        self, call: Call, request: GenerateContentRequest
    ) -> AsyncIterator[GenerateContentResponse]:
        prepared = self._prepare(request, stream=True)
        decoder = StreamDecoder(prepared.context)
        body = self.raw_body(prepared.body)
        headers, token = await self._headers()
        url = self._url("streamRawPredict")
        with self._errors(token):
            async with reading(self._http.stream(url, body, headers, call)) as payloads:
                async for payload in payloads:
                    for chunk in decoder.feed(payload):
                        yield chunk
            for chunk in decoder.finish():
                yield chunk

    async def count_tokens(self, call: Call, request: CountTokensRequest) -> CountTokensResponse:
        body = claude.count_tokens_body(request, self.profile)
        body["anthropic_version"] = ANTHROPIC_VERSION
        data = await self._post(call, "rawPredict", orjson.dumps(body), model="count-tokens")
        r = Reader(PROVIDER, "token count")
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


def vertex_provider(spec: DeploymentSpec, transport: Transport) -> Provider:
    """The provider of a `vertex_ai/<model>` deployment: Claude's or Gemini's wire."""
    names = (spec.upstream_model, spec.model_info.base_model or "")
    kind = VertexClaudeProvider if any(is_claude(n) for n in names) else VertexGeminiProvider
    return kind(spec, transport)
