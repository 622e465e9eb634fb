"""In-process Vertex for `MockTransport`: a handler answering Vertex's paths in Vertex's
wire format (the fakes' pure reply builders), a token source that needs no network, and
deployment specs.

    provider = vertex(MockTransport(VertexUpstream()), "gemini-2.5-flash")
    await provider.generate(call(), request)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson

from genroute.config import DeploymentParams, ModelInfo
from genroute.providers.base import DeploymentSpec, Provider
from genroute.providers.registry import build_provider
from genroute.providers.transport import HttpRequest, HttpResponse, MockTransport
from tests.fakes import anthropic_upstream, gemini_upstream
from tests.fakes.mock_http import Upstream, json_reply, sse_reply

__all__ = [
    "GOOGLE_CLOUD_ENV",
    "PROJECT",
    "StaticTokens",
    "VertexUpstream",
    "vertex",
    "vertex_spec",
]

PROJECT = "mock-project"
# The shell's Google Cloud settings, which would change where calls go: tests clear them.
GOOGLE_CLOUD_ENV = (
    "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION",
    "VERTEXAI_PROJECT", "VERTEXAI_LOCATION", "VERTEX_PROJECT", "VERTEX_LOCATION",
)  # fmt: skip
_PATH = re.compile(
    r"/(?P<version>v1|v1beta1)/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
    r"/publishers/(?P<publisher>[^/]+)/models/(?P<model>[^/:]+):(?P<method>\w+)$"
)


class StaticTokens:
    """A TokenSource stand-in: always the same token, no network; records invalidations."""

    def __init__(self, token: str = "ya29.mock", project_id: str | None = None) -> None:
        self.value = token
        self.project_id = project_id
        self.quota_project: str | None = None
        self.invalidated: list[str] = []
        self.calls = 0

    async def token(self) -> str:
        self.calls += 1
        return self.value

    def invalidate(self, token: str) -> None:
        self.invalidated.append(token)


def vertex_spec(model: str, info: Mapping[str, Any] | None = None, **params: Any) -> DeploymentSpec:
    """A `vertex_ai/<model>` deployment in PROJECT (unless params say otherwise)."""
    params.setdefault("vertex_project", PROJECT)
    deployment = DeploymentParams(model=f"vertex_ai/{model}", **params)
    return DeploymentSpec("vertex_ai", model, deployment, ModelInfo(**(info or {})))


def vertex(
    transport: MockTransport,
    model: str,
    tokens: StaticTokens | None = None,
    info: Mapping[str, Any] | None = None,
    **params: Any,
) -> Provider:
    """A Vertex provider on the mock transport, with a token that needs no network."""
    provider = build_provider(vertex_spec(model, info, **params), transport)
    provider.auth = tokens or StaticTokens()  # type: ignore[attr-defined]
    return provider


def _embedding(content: dict[str, Any], config: Mapping[str, Any] | None) -> dict[str, Any]:
    text = " ".join(p.get("text", "") for p in content.get("parts") or [])
    dim = int((config or {}).get("outputDimensionality") or 4)
    return {"values": gemini_upstream.embedding_values(text, dim)}


class VertexUpstream(Upstream):
    """Answers Vertex paths as Vertex would (Gemini models in Gemini's wire, Claude through
    rawPredict), other paths as `mock_http.Upstream`. Embedding replies carry no token
    counts unless `input_tokens` says (as the Gemini conformance cases expect)."""

    def __init__(self, provider: str = "gemini", chunk: int | None = None, **kw: Any) -> None:
        super().__init__(provider, chunk, **kw)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        found = _PATH.search(urlsplit(request.url).path)
        if found is None:
            return super().__call__(request)
        self.requests.append(request)
        body = orjson.loads(request.body) if request.body else {}
        model, method = unquote(found["model"]), found["method"]
        if found["publisher"] == "anthropic":
            return self._claude(model, method, body)
        return self._gemini(model, method, body)

    def _gemini(self, model: str, method: str, body: Any) -> HttpResponse:
        if method == "generateContent":
            return json_reply(gemini_upstream.build_generate_response(body, model))
        if method == "streamGenerateContent":
            return sse_reply(gemini_upstream.build_stream_chunks(body, model), self.chunk)
        if method == "countTokens":
            return json_reply(gemini_upstream.build_count_tokens_response(body))
        if method == "embedContent":
            return json_reply({"embedding": _embedding(body["content"], body.get("embedContentConfig"))})  # fmt: skip
        if method == "batchEmbedContents":
            found = [
                _embedding(r["content"], r.get("embedContentConfig")) for r in body["requests"]
            ]
            return json_reply({"embeddings": found})
        assert method == "predict", method
        dim = body.get("parameters", {}).get("outputDimensionality") or 4
        predictions = [
            {"embeddings": {"values": gemini_upstream.embedding_values(i["content"], dim),
                            "statistics": {"token_count": len(i["content"].split())}}}
            for i in body["instances"]
        ]  # fmt: skip
        return json_reply({"predictions": predictions})

    def _claude(self, model: str, method: str, body: Any) -> HttpResponse:
        if model == "count-tokens":
            return json_reply({"input_tokens": anthropic_upstream.words(body)})
        body = {**body, "model": model}
        reply = anthropic_upstream.message(body, anthropic_upstream.default_content(body))
        if method == "streamRawPredict":
            events = [{"type": "ping"}, *anthropic_upstream.stream_events(reply)]
            return sse_reply(events, self.chunk)
        assert method == "rawPredict", method
        return json_reply(reply)
