"""A fake Gemini API (generativelanguage.googleapis.com) upstream for the genroute tests.

``FakeGemini`` runs a real aiohttp HTTP/1.1 server on 127.0.0.1 (free port) in a background
thread with its own event loop, so sync tests, async tests and tests that start the gateway
as a subprocess can all use it. It follows ``/work/shared/reference/gemini-wire.md``: it
checks the API key, the JSON body, ``contents``/parts and the model like Google does,
answers with Google-shaped errors, and gives deterministic, rich replies. The reply builders
(``build_generate_response``, ``build_stream_chunks``, ...) are public so tests can compare
what the gateway returned with what the upstream sent.

    with FakeGemini() as fake:
        client = genai.Client(api_key="upstream-key", http_options={"base_url": fake.base_url})
        fake.framing = "split"                 # normal | split | merged | lf
        fake.script("error", code=429)         # consumed by the next request
        ...
        assert fake.requests[-1].body["contents"]

Script kinds (``fake.script(kind, times=1, match=None, **opts)``; ``times=None`` = until reset,
``match`` = substring the request path must contain; every kind but "delay" takes ``delay=s``):
  error         code=500, status, message, details, retry_delay="7s" (429), headers
  delay         seconds, then the normal answer
  stream_error  after=1 chunks, then a ``data: {"error": ...}`` event (code, status, message, ...)
  drop          after=1 chunks, then the connection is closed (non-stream: closed, no answer)
  slow_stream   interval=0.05, max_chunks=200 ("tick i" chunks); disconnects set ``cancelled``
  reply         body (JSON reply) and/or chunks (stream events), status=200, headers
  raw           status=502, body (bytes/str), content_type="text/html; charset=UTF-8", headers
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import math
import re
import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes.gemini_files import FakeFilesAPI
from tests.fakes.sockets import tcp_listener

DEFAULT_API_KEY = "upstream-key"
DEFAULT_MODELS: tuple[str, ...] = ("gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.5-flash-lite")
DEFAULT_MODELS += ("gemini-2.0-flash", "gemini-embedding-001", "text-embedding-004")
FRAMINGS = ("normal", "split", "merged", "lf")
EMBED_DIM = 768
STATUS_BY_CODE = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_MESSAGES = {
    "INTERNAL": "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    "UNAVAILABLE": "The model is overloaded. Please try again later.",
    "DEADLINE_EXCEEDED": "Deadline expired before operation could complete.",
    "RESOURCE_EXHAUSTED": "You exceeded your current quota, please check your plan and billing.",
    "PERMISSION_DENIED": "Method doesn't allow unregistered callers (callers without established "
    "identity). Please use API Key or other form of API consumer identity to call this API.",
    "UNAUTHENTICATED": "Request had invalid authentication credentials. Expected OAuth 2 access "
    "token, login cookie or other valid authentication credential.",
}
_RPC = "type.googleapis.com/google.rpc."
_PATH_RE = re.compile(r"^(?P<prefix>.*?)/(?P<version>v1|v1beta|v1alpha)/(?P<rest>.+)$")


def _names(words: str) -> frozenset[str]:
    return frozenset(words.split())


_DATA_FIELDS = _names("text inlineData fileData functionCall functionResponse executableCode")
_DATA_FIELDS |= _names("codeExecutionResult toolCall toolResponse")
_PART_FIELDS = _DATA_FIELDS | _names(
    "thought thoughtSignature videoMetadata mediaResolution partMetadata"
)
_GENERATE_FIELDS = _names("model contents tools toolConfig safetySettings systemInstruction")
_GENERATE_FIELDS |= _names("generationConfig cachedContent serviceTier store")
_REQUEST_FIELDS = {
    "generateContent": _GENERATE_FIELDS,
    "streamGenerateContent": _GENERATE_FIELDS,
    "countTokens": _names("contents generateContentRequest"),
    "embedContent": _names("model content taskType title outputDimensionality"),
    "batchEmbedContents": _names("requests"),
}
_SCRIPT_OPTS = {
    "error": _names("code status message details retry_delay headers delay"),
    "delay": _names("seconds"),
    "stream_error": _names("after code status message details retry_delay delay"),
    "drop": _names("after delay"),
    "slow_stream": _names("interval max_chunks delay"),
    "reply": _names("body chunks status headers delay"),
    "raw": _names("status body content_type headers delay"),
}

# ------------------------------------------------------------------------------ errors


class GoogleError(Exception):
    """An error answered as ``{"error": {code, message, status, details?}}``; see ``body()``."""

    def __init__(self, code: int, message: str | None = None, status: str | None = None) -> None:
        self.code = code
        self.status = status or STATUS_BY_CODE.get(code, "UNKNOWN")
        self.message = message or _MESSAGES.get(self.status, f"Fake upstream error {code}.")
        self.details: list[dict[str, Any]] = []
        self.headers: dict[str, str] = {}
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        err = {"code": self.code, "message": self.message, "status": self.status}
        return {"error": {**err, "details": self.details} if self.details else err}


def quota_error(retry_delay: str = "7s", message: str | None = None) -> GoogleError:
    """429 RESOURCE_EXHAUSTED with QuotaFailure, Help and RetryInfo details and Retry-After."""
    msg = message or f"{_MESSAGES['RESOURCE_EXHAUSTED']} Please retry in {retry_delay}."
    err = GoogleError(429, msg)
    metric = "generativelanguage.googleapis.com/generate_content_free_tier_requests"
    quota_id = "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"
    violation = {"quotaMetric": metric, "quotaId": quota_id, "quotaValue": "10"}
    link = {
        "description": "Rate limits",
        "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
    }
    err.details = [
        {"@type": _RPC + "QuotaFailure", "violations": [violation]},
        {"@type": _RPC + "Help", "links": [link]},
        {"@type": _RPC + "RetryInfo", "retryDelay": retry_delay},
    ]
    err.headers = {"Retry-After": str(math.ceil(float(retry_delay.rstrip("s") or 0)))}
    return err


def _bad(message: str, field_path: str | None = None) -> GoogleError:
    err = GoogleError(400, message)
    if field_path:
        violation = {"field": field_path, "description": message}
        err.details = [{"@type": _RPC + "BadRequest", "fieldViolations": [violation]}]
    return err


def _key_invalid() -> GoogleError:
    err = GoogleError(400, "API key not valid. Please pass a valid API key.")
    meta = {"service": "generativelanguage.googleapis.com"}
    info = {"reason": "API_KEY_INVALID", "domain": "googleapis.com", "metadata": meta}
    err.details = [
        {"@type": _RPC + "ErrorInfo", **info},
        {"@type": _RPC + "LocalizedMessage", "locale": "en-US", "message": err.message},
    ]
    return err


def _scripted_error(opts: dict[str, Any]) -> GoogleError:
    code = int(opts.get("code", 500))
    if code == 429 and "details" not in opts:
        err = quota_error(str(opts.get("retry_delay", "7s")), opts.get("message"))
    else:
        err = GoogleError(code, opts.get("message"), opts.get("status"))
        err.details = list(opts.get("details") or [])
    err.status = opts.get("status") or err.status
    err.headers.update(opts.get("headers") or {})
    return err


# --------------------------------------------------------------------- request helpers


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(w[:1].upper() + w[1:] for w in rest)


def field_of(obj: Any, name: str, default: Any = None) -> Any:
    """Read a lowerCamel field or its snake_case twin, as Google's JSON parser does."""
    if not isinstance(obj, dict):
        return default
    if name in obj:
        return obj[name]
    return obj.get(re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower(), default)


def _parts(content: Any) -> list[dict[str, Any]]:
    parts = field_of(content, "parts")
    return [p for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []


def _text_of(content: Any) -> str:
    texts = (p.get("text") for p in _parts(content) if not p.get("thought"))
    return " ".join(t for t in texts if isinstance(t, str) and t)


def prompt_tokens(body: Any) -> int:
    """Deterministic token count: whitespace words of text parts, 1 per other part."""
    contents = list(field_of(body, "contents") or [])
    contents.append(field_of(body, "systemInstruction"))
    texts = [p.get("text") for content in contents for p in _parts(content)]
    return max(1, sum(len(t.split()) if isinstance(t, str) else 1 for t in texts))


def reply_text(body: Any) -> str:
    """``"Echo: "`` + the text of the last user turn (or the kinds of its parts)."""
    for content in reversed(list(field_of(body, "contents") or [])):
        if isinstance(content, dict) and (content.get("role") or "user") == "user":
            if text := _text_of(content):
                return "Echo: " + text
            kinds = {_camel(k) for p in _parts(content) for k in p} & _DATA_FIELDS
            return "Echo: [" + ", ".join(sorted(kinds)) + "]"
    return "Echo: [empty]"


def split_text(text: str, pieces: int = 3) -> list[str]:
    """Split at word boundaries into at most ``pieces`` deltas whose concatenation is ``text``."""
    words = re.findall(r"\s*\S+\s*", text) or [text]
    size = math.ceil(len(words) / min(pieces, len(words)))
    return ["".join(words[i : i + size]) for i in range(0, len(words), size)]


# ---------------------------------------------------------------------- reply builders


@dataclass(frozen=True)
class _Plan:
    model: str
    text: str
    thought: str
    signature: str
    response_id: str
    prompt: int
    cached: int
    avg_logprobs: float


def _plan(body: Any, model: str) -> _Plan:
    canon = json.dumps([model, body], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(canon.encode()).digest()
    text, prompt = reply_text(body), prompt_tokens(body)
    words = len(text.split()) - 1
    return _Plan(
        model=model,
        text=text,
        thought=f"**Planning a reply** The user sent {words} words; I will echo them.",
        signature=base64.b64encode(b"fake-thought-signature/" + digest[:12]).decode(),
        response_id=base64.urlsafe_b64encode(digest[12:24]).decode(),
        prompt=prompt,
        cached=prompt // 2 if field_of(body, "cachedContent") else 0,
        avg_logprobs=-round(0.05 + digest[0] / 1000, 6),
    )


def _usage(plan: _Plan, candidates: int, thoughts: int) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "promptTokenCount": plan.prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": plan.prompt + candidates + thoughts,
        "thoughtsTokenCount": thoughts,
        "cachedContentTokenCount": plan.cached,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": plan.prompt}],
        "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": candidates}],
    }
    if plan.cached:
        usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": plan.cached}]
    return usage


def _final_fields(plan: _Plan) -> dict[str, Any]:
    uri, end = "https://example.com/fake-source", len(plan.text)
    categories = ("HARASSMENT", "HATE_SPEECH", "SEXUALLY_EXPLICIT", "DANGEROUS_CONTENT")
    support = {
        "segment": {"startIndex": 0, "endIndex": end, "text": plan.text},
        "groundingChunkIndices": [0],
        "confidenceScores": [0.9],
    }
    return {
        "finishReason": "STOP",
        "safetyRatings": [
            {"category": f"HARM_CATEGORY_{c}", "probability": "NEGLIGIBLE"} for c in categories
        ],
        "citationMetadata": {"citationSources": [{"startIndex": 0, "endIndex": end, "uri": uri}]},
        "groundingMetadata": {
            "webSearchQueries": [plan.text[:40]],
            "groundingChunks": [{"web": {"uri": uri, "title": "example.com"}}],
            "groundingSupports": [support],
        },
        "avgLogprobs": plan.avg_logprobs,
        "futureCandidateField": {"note": "unknown to current SDKs"},
    }


def _response(
    plan: _Plan, parts: list[dict[str, Any]], usage: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    return {
        "candidates": [{"content": {"role": "model", "parts": parts}, "index": 0, **extra}],
        "usageMetadata": usage,
        "modelVersion": plan.model,
        "responseId": plan.response_id,
        "futureField": {"note": "unknown to current SDKs", "values": [1, 2, 3]},
    }


def build_generate_response(body: Any, model: str) -> dict[str, Any]:
    """The fake's default ``generateContent`` reply for ``body`` sent to ``model`` (bare id)."""
    plan = _plan(body, model)
    parts: list[dict[str, Any]] = [
        {"text": plan.thought, "thought": True},
        {"text": plan.text, "thoughtSignature": plan.signature},
    ]
    usage = _usage(plan, len(plan.text.split()), len(plan.thought.split()))
    return _response(plan, parts, usage, **_final_fields(plan))


def build_stream_chunks(body: Any, model: str) -> list[dict[str, Any]]:
    """Default stream: a thought chunk, up to 3 text deltas, then a final chunk with an empty
    text part carrying the thoughtSignature, finishReason and the candidate metadata."""
    plan = _plan(body, model)
    thoughts = len(plan.thought.split())
    chunks = [_response(plan, [{"text": plan.thought, "thought": True}], _usage(plan, 0, thoughts))]
    done = 0
    for piece in split_text(plan.text):
        done += len(piece.split())
        chunks.append(_response(plan, [{"text": piece}], _usage(plan, done, thoughts)))
    final = [{"text": "", "thoughtSignature": plan.signature}]
    return [*chunks, _response(plan, final, _usage(plan, done, thoughts), **_final_fields(plan))]


def build_slow_chunks(body: Any, model: str, count: int) -> list[dict[str, Any]]:
    """``count`` chunks ``"tick i "`` and a final STOP chunk (the ``slow_stream`` script)."""
    plan = _plan(body, model)
    ticks = [
        _response(plan, [{"text": f"tick {i} "}], _usage(plan, 2 * i + 2, 0)) for i in range(count)
    ]
    return [
        *ticks,
        _response(plan, [{"text": "done"}], _usage(plan, 2 * count + 1, 0), finishReason="STOP"),
    ]


def build_count_tokens_response(body: Any) -> dict[str, Any]:
    inner = field_of(body, "generateContentRequest")
    total = prompt_tokens(inner if isinstance(inner, dict) else body)
    return {
        "totalTokens": total,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": total}],
    }


def embedding_values(text: str, dim: int = EMBED_DIM) -> list[float]:
    """Deterministic pseudo-embedding of ``text``: ``dim`` values in [-1, 1]."""
    raw = hashlib.shake_256(text.encode()).digest(2 * dim)
    return [
        round(int.from_bytes(raw[i : i + 2], "big") / 32767.5 - 1, 6) for i in range(0, 2 * dim, 2)
    ]


def _embedding(request: Any) -> dict[str, Any]:
    dim = int(field_of(request, "outputDimensionality") or EMBED_DIM)
    return {"values": embedding_values(_text_of(field_of(request, "content")), dim)}


def build_model(model_id: str) -> dict[str, Any]:
    """Google's Model resource for ``model_id``."""
    model: dict[str, Any] = {"name": f"models/{model_id}", "version": "001"}
    model["displayName"], model["description"] = model_id, f"Fake {model_id} (genroute tests)."
    if "embedding" in model_id:
        methods = ["embedContent", "countTextTokens", "countTokens"]
        return {
            **model,
            "inputTokenLimit": 2048,
            "outputTokenLimit": 1,
            "supportedGenerationMethods": methods,
        }
    methods = ["generateContent", "countTokens", "createCachedContent"]
    model.update(
        inputTokenLimit=1048576, outputTokenLimit=65536, supportedGenerationMethods=methods
    )
    return {
        **model,
        "temperature": 1.0,
        "maxTemperature": 2.0,
        "topP": 0.95,
        "topK": 64,
        "thinking": True,
    }


# -------------------------------------------------------------------------- validation


def _check_content(content: Any, where: str, strict: bool, check_role: bool = True) -> None:
    if not isinstance(content, dict):
        raise _bad(f"Invalid JSON payload received. {where}: expected an object.", where)
    if check_role and content.get("role") not in (None, "", "user", "model"):
        raise _bad("Please use a valid role: user, model.", f"{where}.role")
    parts = field_of(content, "parts")
    if not isinstance(parts, list) or not parts:
        raise _bad(f"* {where}.parts: contents.parts must not be empty.\n", f"{where}.parts")
    for j, part in enumerate(parts):
        keys = {_camel(k) for k in part} if isinstance(part, dict) else set()
        if strict and (unknown := sorted(keys - _PART_FIELDS)):
            raise _bad(
                f"Invalid JSON payload received. Unknown name \"{unknown[0]}\" at '{where}.parts[{j}]'."
            )
        path = f"{where}.parts[{j}].data"
        if len(data := sorted(keys & _DATA_FIELDS)) > 1:
            msg = f"Invalid value at '{path}' (oneof), oneof field 'data' is already set. "
            raise _bad(msg + f"Cannot set '{data[1]}'", path)
        if not data:
            raise _bad(
                f"* {path}: required oneof field 'data' must have one initialized field\n", path
            )


def _check_contents(body: dict[str, Any], name: str, strict: bool) -> None:
    contents = field_of(body, "contents")
    if not isinstance(contents, list) or not contents:
        raise _bad(f"* {name}.contents: contents is not specified\n", "contents")
    for i, content in enumerate(contents):
        _check_content(content, f"{name}.contents[{i}]", strict)
    if (system := field_of(body, "systemInstruction")) is not None:
        _check_content(system, f"{name}.system_instruction", strict, check_role=False)


def check_request(action: str, model: str, body: Any, strict: bool = True) -> None:
    """Raise GoogleError for a body Google would refuse for ``models/{model}:{action}``."""
    body = {} if body is None else body
    if not isinstance(body, dict):
        raise _bad("Invalid JSON payload received. Expected an object.")
    for key in body if strict else ():
        if _camel(key) not in _REQUEST_FIELDS[action]:
            raise _bad(
                f'Invalid JSON payload received. Unknown name "{key}": Cannot find field.', key
            )
    inner = field_of(body, "generateContentRequest")
    if action == "countTokens" and isinstance(inner, dict):
        _check_contents(inner, "CountTokensRequest.generate_content_request", False)
    elif action in ("generateContent", "streamGenerateContent", "countTokens"):
        _check_contents(body, "GenerateContentRequest", strict)
    elif action == "embedContent":
        _check_content(field_of(body, "content"), "EmbedContentRequest.content", strict, False)
    else:
        requests = field_of(body, "requests")
        if not isinstance(requests, list) or not requests:
            raise _bad(
                "* BatchEmbedContentsRequest.requests: requests is not specified\n", "requests"
            )
        for i, req in enumerate(requests):
            where = f"BatchEmbedContentsRequest.requests[{i}]"
            if field_of(req, "model") not in (None, f"models/{model}", model):
                raise _bad(f"* {where}.model: must match the model in the URL.\n", f"{where}.model")
            _check_content(field_of(req, "content"), f"{where}.content", strict, False)


# ----------------------------------------------------------------------------- the fake


@dataclass(frozen=True)
class RecordedRequest:
    """One request as received: lower-cased headers, ``body`` parsed JSON (None if empty/bad)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    raw_body: bytes
    json_error: str | None
    version: str | None  # "v1beta", ... ; None when the path is not a Gemini API path
    model: str | None  # bare model id ("" for the models collection)
    action: str | None  # "generateContent", ...; None for GET models[/{id}]

    @property
    def api_key(self) -> str | None:
        return self.headers.get("x-goog-api-key") or self.query.get("key")


@dataclass
class Script:
    """A behaviour consumed by the next ``times`` requests (None: forever) whose path contains ``match``."""

    kind: str
    opts: dict[str, Any]
    times: int | None = 1
    match: str | None = None


def _parse_path(path: str) -> tuple[str | None, str | None, str | None]:
    if not (found := _PATH_RE.match(path)):
        return None, None, None
    rest, action = found["rest"], None
    if ":" in rest.rsplit("/", 1)[-1]:
        rest, action = rest.rsplit(":", 1)
    return found["version"], "" if rest == "models" else rest.removeprefix("models/"), action


def _json_response(
    obj: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    data = json.dumps(obj, indent=2, ensure_ascii=False).encode()
    hdrs = {"Content-Type": "application/json; charset=UTF-8", **(headers or {})}
    return web.Response(status=status, body=data, headers=hdrs)


def _drop(request: web.BaseRequest) -> None:
    if request.transport is not None:
        request.transport.close()


class FakeGemini:
    """Fake Gemini upstream on 127.0.0.1; see the module docstring."""

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        *,
        models: Iterable[str] | None = None,
        framing: str = "normal",
        strict_fields: bool = True,
        pause: float = 0.01,
    ) -> None:
        if framing not in FRAMINGS:
            raise ValueError(f"framing must be one of {FRAMINGS}")
        self.api_key = api_key
        self.models = tuple(models) if models is not None else None
        self.framing = self._default_framing = framing
        self.strict_fields = strict_fields
        self.pause = pause
        self.cancelled = threading.Event()
        self.events_sent = 0
        self.port = 0
        self._lock = threading.Condition()
        self._requests: list[RecordedRequest] = []
        self._scripts: list[Script] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.ServerRunner | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self.files_api = FakeFilesAPI()  # the Files API (tests/fakes/gemini_files.py)

    # -- lifecycle

    def start(self) -> FakeGemini:
        if self._thread is not None:
            raise RuntimeError("FakeGemini already started")
        sock = tcp_listener()
        self.port, self._stopping = sock.getsockname()[1], False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"fake-gemini-{self.port}", daemon=True
        )
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._serve(sock), self._loop).result(10)
        except BaseException:
            sock.close()
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Cancel in-flight responses, close every connection, stop and join the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self._stopping = True
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(15)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(15)
            loop.close()
            self._loop = self._thread = self._runner = None

    def __enter__(self) -> FakeGemini:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if not self.port:
            raise RuntimeError("FakeGemini is not started")
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self, sock: socket.socket) -> None:
        server = web.Server(self._handle, handler_cancellation=True, access_log=None)
        self._runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    async def _shutdown(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
        others = asyncio.all_tasks() - {asyncio.current_task()}
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        await asyncio.get_running_loop().shutdown_asyncgens()

    # -- test-facing API

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the recorded requests, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def last_request(self) -> RecordedRequest:
        with self._lock:
            return self._requests[-1]

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        with self._lock:
            if not self._lock.wait_for(lambda: len(self._requests) >= count, timeout):
                raise TimeoutError(f"fake Gemini got {len(self._requests)} requests, not {count}")
            return list(self._requests)

    def reset(self) -> None:
        """Forget requests and scripts, clear ``cancelled``/``events_sent``, restore the framing."""
        with self._lock:
            self._requests.clear()
            self._scripts.clear()
            self.events_sent = 0
        self.cancelled.clear()
        self.framing = self._default_framing

    def script(
        self, kind: str, *, times: int | None = 1, match: str | None = None, **opts: Any
    ) -> Script:
        """Queue a behaviour for the next request(s); kinds and options: module docstring."""
        if kind not in _SCRIPT_OPTS:
            raise ValueError(
                f"unknown script kind {kind!r}; expected one of {sorted(_SCRIPT_OPTS)}"
            )
        if extra := set(opts) - _SCRIPT_OPTS[kind]:
            raise TypeError(f"script {kind!r} takes no option(s) {sorted(extra)}")
        if kind == "reply" and "body" not in opts and "chunks" not in opts:
            raise TypeError("script 'reply' needs body= and/or chunks=")
        entry = Script(kind, dict(opts), times, match)
        with self._lock:
            self._scripts.append(entry)
        return entry

    def is_known_model(self, model: str) -> bool:
        if self.models is not None:
            return model in self.models
        return model.rsplit("/", 1)[-1].startswith(("gemini", "text-embedding"))

    def _take_script(self, path: str) -> Script | None:
        with self._lock:
            for entry in self._scripts:
                if entry.match is None or entry.match in path:
                    if entry.times is not None:
                        entry.times -= 1
                        if entry.times <= 0:
                            self._scripts.remove(entry)
                    return entry
        return None

    # -- serving

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            raw = await request.content.read()  # unlike request.read(), no 1 MiB cap
            body, json_error = None, None
            try:
                body = json.loads(raw) if raw else None
            except ValueError as exc:
                json_error = str(exc)
            headers: dict[str, str] = {}
            for name, value in request.headers.items():
                key = name.lower()
                headers[key] = f"{headers[key]}, {value}" if key in headers else value
            query, where = dict(request.query), _parse_path(request.path)
            rec = RecordedRequest(
                request.method, request.path, query, headers, body, raw, json_error, *where
            )
            with self._lock:
                self._requests.append(rec)
                self._lock.notify_all()
            try:
                return await self._dispatch(request, rec)
            except GoogleError as err:
                return _json_response(err.body(), err.code, err.headers)
        except asyncio.CancelledError:
            if not self._stopping:  # the client went away while we were answering
                self.cancelled.set()
            raise
        finally:
            self._tasks.discard(task)

    def _check_key(self, rec: RecordedRequest) -> None:
        if rec.api_key is None:
            raise GoogleError(401 if "authorization" in rec.headers else 403)
        if rec.api_key.strip() != self.api_key:
            raise _key_invalid()

    async def _dispatch(self, request: web.BaseRequest, rec: RecordedRequest) -> web.StreamResponse:
        if rec.version is None or rec.model is None:
            raise GoogleError(404, f"The requested URL {rec.path} was not found on this server.")
        self._check_key(rec)
        if rec.model.startswith(("files", "cachedContents")):
            return self._resources(rec)
        if rec.json_error is not None:
            raise _bad(f"Invalid JSON payload received. {rec.json_error}")
        get = rec.method == "GET" and rec.action is None
        if not get and (rec.method != "POST" or rec.action not in _REQUEST_FIELDS):
            raise GoogleError(404, f"Method not found: {rec.method} {rec.path}")
        if rec.model and not self.is_known_model(rec.model):
            raise GoogleError(
                404,
                f"models/{rec.model} is not found for API version {rec.version}, or is not supported for "
                f"{rec.action or 'get'}. Call ListModels to see the list of available models and their "
                "supported methods.",
            )
        if not get:
            check_request(str(rec.action), rec.model, rec.body, self.strict_fields)
            if refused := self.files_api.refusal(rec.api_key, rec.model, rec.body):
                return _json_response(refused[1], refused[0])
        script = self._take_script(rec.path)
        kind, opts = (script.kind, script.opts) if script else ("", {})
        if delay := float(opts.get("seconds" if kind == "delay" else "delay", 0)):
            await asyncio.sleep(delay)
        streaming = rec.action == "streamGenerateContent"
        if kind == "error" or (kind == "stream_error" and not streaming):
            raise _scripted_error(opts)
        if kind == "raw":
            data = opts.get("body", b"")
            hdrs = {
                "Content-Type": opts.get("content_type", "text/html; charset=UTF-8"),
                **opts.get("headers", {}),
            }
            data = data.encode() if isinstance(data, str) else data
            return web.Response(status=int(opts.get("status", 502)), body=data, headers=hdrs)
        if kind == "drop" and not streaming:
            _drop(request)
            return web.Response()
        if kind == "slow_stream" and not streaming:
            await asyncio.sleep(
                float(opts.get("interval", 0.05)) * int(opts.get("max_chunks", 200))
            )
        if kind == "reply" and not streaming:
            reply = opts["body"] if "body" in opts else opts["chunks"][-1]
            return _json_response(reply, int(opts.get("status", 200)), opts.get("headers"))
        if streaming:
            return await self._stream(request, rec, kind, opts)
        return _json_response(self._answer(rec))

    def _resources(self, rec: RecordedRequest) -> web.Response:
        key = str(rec.api_key)
        if rec.model == "cachedContents" and rec.method == "POST":
            status, reply = self.files_api.create_cache(key, rec.body, prompt_tokens(rec.body))
            return _json_response(reply, status)
        if rec.path.startswith("/upload/") and rec.method == "POST":
            if "upload_id" in rec.query:
                status, headers, body = self.files_api.upload(
                    key, rec.query, rec.headers, rec.raw_body
                )
            else:
                status, headers, body = self.files_api.start(
                    key, rec.headers, rec.body, self.base_url
                )
        elif rec.method == "GET" and str(rec.model).startswith("files/"):
            status, headers, body = self.files_api.get(key, str(rec.model)[len("files/") :])
        else:
            raise GoogleError(404, f"Method not found: {rec.method} {rec.path}")
        if body is None:
            return web.Response(status=status, headers=headers)
        return _json_response(body, status, headers)

    def _answer(self, rec: RecordedRequest) -> Any:
        model, action = str(rec.model), rec.action
        if action == "generateContent":
            return build_generate_response(rec.body, model)
        if action == "countTokens":
            return build_count_tokens_response(rec.body)
        if action == "embedContent":
            return {"embedding": _embedding(rec.body)}
        if action == "batchEmbedContents":
            return {"embeddings": [_embedding(r) for r in field_of(rec.body, "requests")]}
        if model:
            return build_model(model)
        ids = list(self.models if self.models is not None else DEFAULT_MODELS)
        try:
            size, start = int(rec.query.get("pageSize") or 50), int(rec.query.get("pageToken") or 0)
        except ValueError:
            raise _bad("Invalid pageSize or pageToken.") from None
        page: dict[str, Any] = {"models": [build_model(m) for m in ids[start : start + size]]}
        if start + size < len(ids):
            page["nextPageToken"] = str(start + size)
        return page

    async def _stream(
        self, request: web.BaseRequest, rec: RecordedRequest, kind: str, opts: dict[str, Any]
    ) -> web.StreamResponse:
        framing, pause = rec.headers.get("x-fake-framing", self.framing), self.pause
        if framing not in FRAMINGS:
            raise _bad(f"x-fake-framing must be one of {FRAMINGS}")
        if kind == "slow_stream":
            chunks = build_slow_chunks(rec.body, str(rec.model), int(opts.get("max_chunks", 200)))
            framing, pause = "normal", float(opts.get("interval", 0.05))
        elif kind == "reply":
            chunks = list(opts.get("chunks") or [opts["body"]])
        else:
            chunks = build_stream_chunks(rec.body, str(rec.model))
        if kind in ("stream_error", "drop"):
            chunks = chunks[: int(opts.get("after", 1))]
        if kind == "stream_error":
            chunks.append(_scripted_error(opts).body())
        sse = rec.query.get("alt") == "sse"
        ctype = "text/event-stream" if sse else "application/json; charset=UTF-8"
        resp = web.StreamResponse(headers={"Content-Type": ctype})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        writes = self._writes(
            [self._frame(i, c, sse, framing) for i, c in enumerate(chunks)], framing
        )
        if not sse and kind != "drop":
            writes.append((b"]" if chunks else b"[]", 0))
        try:
            for i, (data, events) in enumerate(writes):
                if i:
                    await asyncio.sleep(pause)  # lets each write reach the client as its own read
                await resp.write(data)
                with self._lock:
                    self.events_sent += events
        except ConnectionError:
            if not self._stopping:
                self.cancelled.set()
            return resp
        if kind == "drop":
            await asyncio.sleep(pause)
            _drop(request)
        return resp

    @staticmethod
    def _frame(index: int, event: Any, sse: bool, framing: str) -> bytes:
        data = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
        if sse:
            return b"data: " + data + (b"\n\n" if framing == "lf" else b"\r\n\r\n")
        return (b"[" if index == 0 else b",\r\n") + data

    @staticmethod
    def _writes(frames: list[bytes], framing: str) -> list[tuple[bytes, int]]:
        """Group frames into TCP writes, each paired with the number of events it completes."""
        if framing == "merged":
            return [
                (b"".join(frames[i : i + 3]), len(frames[i : i + 3]))
                for i in range(0, len(frames), 3)
            ]
        if framing != "split":
            return [(f, 1) for f in frames]
        writes: list[tuple[bytes, int]] = []
        for f in frames:  # cut inside "data: ", inside the JSON and inside the separator
            cuts = sorted(
                {0, 3, 9, len(f) // 2, len(f) - 3, len(f) - 1, len(f)} & set(range(len(f) + 1))
            )
            pieces = [f[a:b] for a, b in itertools.pairwise(cuts) if b > a]
            writes += [(p, 0) for p in pieces[:-1]] + [(pieces[-1], 1)]
        return writes
