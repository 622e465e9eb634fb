"""In-process upstreams for `MockTransport`: each provider's API answered in its own wire
format (the fakes' pure reply builders), SSE bodies cut into chunks of any size, and an
observer that records the upstream requests it wraps.

    transport = MockTransport(Upstream("openai", chunk=1))   # SSE split at every byte
    provider = build_provider(spec("openai", "gpt-4o"), transport)
    await provider.generate(call(observer=observer), request)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson

from genroute.call import Call, Operation, UpstreamObserver
from genroute.config import DeploymentParams, ModelInfo
from genroute.providers.base import DeploymentSpec
from genroute.providers.transport import HttpRequest, HttpResponse
from tests.fakes import anthropic_upstream, gemini_upstream, openai_upstream

__all__ = [
    "TRACEPARENT",
    "Observer",
    "Upstream",
    "call",
    "error_body",
    "json_reply",
    "pieces",
    "spec",
    "sse_body",
    "sse_reply",
]

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
_GEMINI_ACTION = re.compile(r"/(?P<model>(?:models|tunedModels)/[^:/]+):(?P<action>\w+)$")


def spec(
    provider: str, model: str, info: Mapping[str, Any] | None = None, **params: Any
) -> DeploymentSpec:
    """A deployment of `provider/model` with the given params (a test key unless given)."""
    params.setdefault("api_key", "test-key")
    deployment = DeploymentParams(model=f"{provider}/{model}", **params)
    return DeploymentSpec(provider, model, deployment, ModelInfo(**(info or {})))


def call(
    operation: Operation = Operation.GENERATE,
    model: str = "m",
    observer: UpstreamObserver | None = None,
) -> Call:
    """A call as the pipeline hands it to a provider."""
    return Call(operation, model, upstream=observer)


def pieces(data: bytes, size: int | None) -> list[bytes]:
    """`data` cut into chunks of `size` bytes (one chunk for None)."""
    if size is None:
        return [data]
    return [data[i : i + size] for i in range(0, len(data), size)]


def sse_body(payloads: Iterable[Any]) -> bytes:
    """SSE events, one per payload (dicts as JSON, bytes and str as they are)."""
    out = []
    for payload in payloads:
        if isinstance(payload, dict | list):
            payload = orjson.dumps(payload)
        elif isinstance(payload, str):
            payload = payload.encode()
        out.append(b"data: " + payload + b"\n\n")
    return b"".join(out)


def sse_reply(payloads: Iterable[Any], chunk: int | None = None) -> HttpResponse:
    """A 200 event stream, its bytes cut into `chunk`-sized reads."""
    headers = {"content-type": "text/event-stream"}
    return HttpResponse(200, headers, pieces(sse_body(payloads), chunk))


def json_reply(
    obj: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> HttpResponse:
    """A JSON reply."""
    return HttpResponse(
        status, {"content-type": "application/json", **(headers or {})}, orjson.dumps(obj)
    )


# The Anthropic error type sent with each status (docs.anthropic.com, "Errors").
_ANTHROPIC_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
    404: "not_found_error", 408: "timeout_error", 413: "request_too_large",
    429: "rate_limit_error", 500: "api_error", 502: "api_error", 503: "overloaded_error",
    504: "timeout_error", 529: "overloaded_error",
}  # fmt: skip


def error_body(provider: str, status: int, message: str = "upstream said no") -> bytes:
    """The error JSON `provider` (an API: gemini, openai, anthropic) sends with `status`."""
    if provider == "gemini":
        google = gemini_upstream.STATUS_BY_CODE.get(status, "UNKNOWN")
        return orjson.dumps({"error": {"code": status, "message": message, "status": google}})
    if provider == "anthropic":
        kind = _ANTHROPIC_TYPES.get(status, "api_error")
        return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})
    codes = {429: "rate_limit_exceeded", 401: "invalid_api_key", 404: "model_not_found"}
    return orjson.dumps(
        {"error": {"message": message, "type": "api_error", "code": codes.get(status)}}
    )


@dataclass
class Upstream:
    """A MockTransport handler answering as `provider`'s API (gemini, openai, anthropic; an
    OpenAI-compatible prefix answers as openai). `chunk` cuts streamed bodies into reads of
    that many bytes; `input_tokens` is what an embeddings reply reports (None: no usage)."""

    provider: str
    chunk: int | None = None
    input_tokens: int | None = 3
    requests: list[HttpRequest] = field(default_factory=list)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        body = orjson.loads(request.body) if request.body else {}
        if self.provider == "gemini":
            return self._gemini(request, body)
        if self.provider == "anthropic":
            return self._anthropic(request, body)
        return self._openai(request, body)

    def _gemini(self, request: HttpRequest, body: Any) -> HttpResponse:
        path = urlsplit(request.url).path
        found = _GEMINI_ACTION.search(path)
        assert found, path
        model, action = unquote(found["model"]).split("/", 1)[1], found["action"]
        if action == "generateContent":
            return json_reply(gemini_upstream.build_generate_response(body, model))
        if action == "streamGenerateContent":
            return sse_reply(gemini_upstream.build_stream_chunks(body, model), self.chunk)
        if action == "countTokens":
            return json_reply(gemini_upstream.build_count_tokens_response(body))
        if action == "embedContent":
            return json_reply({"embedding": gemini_upstream._embedding(body)})
        assert action == "batchEmbedContents", action
        return json_reply({"embeddings": [gemini_upstream._embedding(r) for r in body["requests"]]})

    def _openai(self, request: HttpRequest, body: Any) -> HttpResponse:
        path = urlsplit(request.url).path
        if path.endswith("/embeddings"):
            dims = body.get("dimensions", 4)
            data = [
                {"object": "embedding", "index": i, "embedding": openai_upstream.embedding(t, dims)}
                for i, t in enumerate(body["input"])
            ]
            reply: dict[str, Any] = {"object": "list", "data": data, "model": body["model"]}
            if self.input_tokens is not None:
                reply["usage"] = {
                    "prompt_tokens": self.input_tokens,
                    "total_tokens": self.input_tokens,
                }
            return json_reply(reply)
        assert path.endswith("/chat/completions"), path
        reply_plan = openai_upstream.plan_reply(body, {})
        if body.get("stream"):
            events: list[Any] = openai_upstream.stream_chunks(body, reply_plan, "chatcmpl-mock")
            return sse_reply([*events, "[DONE]"], self.chunk)
        return json_reply(openai_upstream.completion(body, reply_plan, "chatcmpl-mock"))

    def _anthropic(self, request: HttpRequest, body: Any) -> HttpResponse:
        path = urlsplit(request.url).path
        if path.endswith("/count_tokens"):
            return json_reply({"input_tokens": anthropic_upstream.words(body)})
        assert path.endswith("/v1/messages"), path
        reply = anthropic_upstream.message(body, anthropic_upstream.default_content(body))
        if body.get("stream"):
            events = [{"type": "ping"}, *anthropic_upstream.stream_events(reply)]
            return sse_reply(events, self.chunk)
        return json_reply(reply)


@dataclass
class Observer:
    """An upstream observer (`Call.upstream`): records each request it wraps, how it ended,
    and adds a traceparent header."""

    headers: Mapping[str, str] = field(default_factory=lambda: {"traceparent": TRACEPARENT})
    entered: list[str] = field(default_factory=list)
    exited: list[tuple[str, BaseException | None]] = field(default_factory=list)

    @property
    def open(self) -> int:
        """Requests entered and not yet left."""
        return len(self.entered) - len(self.exited)

    @contextmanager
    def __call__(self, url: str) -> Iterator[Mapping[str, str]]:
        self.entered.append(url)
        try:
            yield self.headers
        except BaseException as exc:
            self.exited.append((url, exc))
            raise
        self.exited.append((url, None))
