"""A fake OpenAI Chat Completions upstream (also Azure OpenAI and OpenAI-compatible servers).

``FakeOpenAI`` runs a real aiohttp server on 127.0.0.1 in a background thread, like
``FakeGemini``. It speaks the real wire format:

* ``POST {prefix}/chat/completions`` (any prefix: ``/v1``, ``/openai/v1``...) with
  ``Authorization: Bearer <key>``; JSON, or SSE ``data: {...}\\n\\n`` ending ``data: [DONE]``;
* ``POST /openai/deployments/{deployment}/chat/completions?api-version=...`` with an
  ``api-key`` header (Azure), and the same for ``/embeddings``;
* ``POST {prefix}/embeddings``.

Every body is validated against the official ``openai`` SDK request types (no unknown
keys, right shapes; ``validation_problems``) and against OpenAI's own rules on tool-call
order, ``tool_choice``, JSON mode and media data (standard base64), and against what each
OpenAI model refuses (``openai_models``: ``reasoning_effort`` to a model that does not
reason; sampling settings, ``max_tokens`` and unknown efforts to a reasoning model; an
Azure deployment is checked as the model ``azure_models`` names); problems are answered
as OpenAI does, with a 400 ``{"error": {"message", "type", "param", "code"}}``.

Default reply: "Echo: <last user text>" (media parts as ``[image_url]``...), or "Tool
results: <id>=<content>; ..." after tool messages, or JSON following a ``json_schema``, or,
when ``tool_choice`` forces a call, a call of that tool with arguments following its schema.
With ``reasoning_effort`` it also reasons (``reasoning_content``, vLLM/DeepSeek style).
Scripts (``fake.script(kind, times=1, **opts)``), consumed by the next request(s):
  reply         text, reasoning, tool_calls=[(name, args), ...], refusal, finish_reason,
                cached_tokens, interleave (stream tool-call fragments of several calls mixed)
  error         status=500, message, type, code, param, headers (e.g. retry-after-ms)
  stream_error  after=2 chunks, then ``data: {"error": ...}`` (message, type, code)
  raw_chunks    chunks=[dict | str] sent verbatim as SSE events, done=True adds [DONE]
Prompts of 1024 tokens or more are cached as OpenAI caches them (tests/fakes/prompt_caches.py):
a later request sharing a prefix reports it in ``prompt_tokens_details.cached_tokens``.
``fake.hold()`` makes every chat request wait (``fake.waiting`` counts them) until
``fake.release()``: a slow upstream whose pace the test sets.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import TypeAdapter, ValidationError

from tests.fakes.openai_models import model_refusal
from tests.fakes.prompt_caches import OpenAIPromptCache
from tests.fakes.sockets import tcp_listener

DEFAULT_KEY = "sk-upstream"
AZURE_KEY = "azure-upstream-key"
EXTENSION_KEYS = frozenset({"top_k"})  # what vLLM, Ollama, Together and OpenRouter also take
EMBED_DIM = 64
_SCRIPT_OPTS = {
    "reply": {"text", "reasoning", "tool_calls", "refusal", "finish_reason", "cached_tokens"}
    | {"interleave"},
    "error": {"status", "message", "type", "code", "param", "headers"},
    "stream_error": {"after", "message", "type", "code"},
    "raw_chunks": {"chunks", "done"},
}

# ------------------------------------------------------------------ validation


@functools.cache
def _adapters() -> dict[str, TypeAdapter[Any]]:
    """The openai SDK's request types, imported and built on first use (~0.7 s, which every
    pytest process would otherwise pay when it loads the conftest)."""
    import openai.types.chat.completion_create_params as chat_params
    import openai.types.embedding_create_params as embed_params

    return {
        "chat": TypeAdapter(chat_params.CompletionCreateParamsNonStreaming),
        "chat_stream": TypeAdapter(chat_params.CompletionCreateParamsStreaming),
        "embeddings": TypeAdapter(embed_params.EmbeddingCreateParams),
    }


def _materialise(value: Any) -> Any:
    """Validated data with pydantic's lazy iterators consumed (which validates them)."""
    if isinstance(value, dict):
        return {k: _materialise(v) for k, v in value.items()}
    if isinstance(value, str | bytes | int | float | bool) or value is None:
        return value
    return [_materialise(v) for v in value]


def _lost(sent: Any, kept: Any, path: str) -> Iterator[str]:
    if isinstance(sent, dict) and isinstance(kept, dict):
        for key, value in sent.items():
            where = f"{path}.{key}" if path else key
            if key not in kept:
                yield f"{where}: unknown field"
            else:
                yield from _lost(value, kept[key], where)
    elif isinstance(sent, list) and isinstance(kept, list):
        for i, (a, b) in enumerate(zip(sent, kept, strict=False)):
            yield from _lost(a, b, f"{path}[{i}]")


def validation_problems(
    kind: str, body: Any, extensions: frozenset[str] = EXTENSION_KEYS
) -> list[str]:
    """What the official SDK type for ``kind`` (chat, chat_stream, embeddings) rejects in ``body``."""
    if not isinstance(body, dict):
        return ["the body is not a JSON object"]
    body = {k: v for k, v in body.items() if k not in extensions}
    try:
        kept = _materialise(_adapters()[kind].validate_python(body))
    except ValidationError as exc:
        return [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()][:5]
    return list(_lost(body, kept, ""))


def _bad_base64(value: str) -> bool:
    try:
        base64.b64decode(value, validate=True)  # the standard alphabet, as OpenAI decodes it
    except (binascii.Error, ValueError):
        return True
    return False


def media_problem(i: int, message: dict[str, Any]) -> str | None:
    """An image data URL or audio part whose data is not standard base64."""
    content = message.get("content")
    for j, part in enumerate(content if isinstance(content, list) else []):
        where = f"messages[{i}].content[{j}]"
        url = (
            (part.get("image_url") or {}).get("url", "") if part.get("type") == "image_url" else ""
        )
        if url.startswith("data:") and _bad_base64(url.partition(",")[2]):
            return (
                f"Invalid '{where}.image_url.url'. Expected a base64-encoded data URL with an "
                "image MIME type, but got a value with an invalid base64 encoding."
            )
        if part.get("type") == "input_audio" and _bad_base64(part["input_audio"]["data"]):
            return f"Invalid '{where}.input_audio.data': not valid base64."
    return None


def openai_rules(body: dict[str, Any]) -> str | None:
    """The first of OpenAI's own request rules ``body`` breaks (tool-call order, JSON mode,
    media data...)."""
    pending: list[str] = []
    for i, message in enumerate(body.get("messages") or []):
        if problem := media_problem(i, message):
            return problem
        role = message.get("role")
        if role == "tool":
            if message.get("tool_call_id") not in pending:
                return (
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    f"preceeding message with 'tool_calls'. (messages[{i}])"
                )
            pending.remove(message["tool_call_id"])
            continue
        if pending:
            return (
                "An assistant message with 'tool_calls' must be followed by tool messages "
                "responding to each 'tool_call_id'. The following tool_call_ids did not have "
                f"response messages: {', '.join(pending)}"
            )
        if role == "assistant" and message.get("tool_calls"):
            ids = [c["id"] for c in message["tool_calls"]]
            if len(set(ids)) != len(ids):
                return f"Duplicate tool_call ids in messages[{i}].tool_calls: {ids}"
            pending = ids
    if pending:
        return f"tool_call_ids without response messages: {', '.join(pending)}"
    if "tool_choice" in body and not body.get("tools"):
        return "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified."
    if "stream_options" in body and not body.get("stream"):
        return "The 'stream_options' parameter is only allowed when 'stream' is enabled."
    if (body.get("response_format") or {}).get(
        "type"
    ) == "json_object" and "json" not in json.dumps(body.get("messages")).lower():
        return "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'."
    return None


# ------------------------------------------------------------------------ replies


class OpenAIError(Exception):
    """An error answered with OpenAI's body shape."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.headers = status, dict(headers or {})
        self.error = {"message": message, "type": type_, "param": param, "code": code}

    def body(self) -> dict[str, Any]:
        return {"error": self.error}


def _words(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False).split()) if value else 0


def message_text(message: dict[str, Any]) -> str:
    """The text of a message; media parts as ``[image_url]``, ``[input_audio]``, ``[file]``."""
    content = message.get("content")
    if isinstance(content, str) or content is None:
        return content or ""
    return " ".join(p["text"] if p["type"] == "text" else f"[{p['type']}]" for p in content)


def sample(schema: Any) -> Any:
    """A small instance of a JSON Schema (enough for structured-output tests)."""
    if not isinstance(schema, dict):
        return None
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    kind = next((k for k in kind if k != "null"), None) if isinstance(kind, list) else kind
    if kind == "object" or "properties" in schema:
        return {k: sample(v) for k, v in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [sample(schema.get("items") or {"type": "string"})]
    return {"string": "text", "integer": 1, "number": 1.5, "boolean": True}.get(str(kind))


@dataclass
class Reply:
    """One planned answer: what each choice says and the usage."""

    text: str
    reasoning: str
    tool_calls: list[tuple[str, str, str]]  # (id, name, arguments JSON)
    refusal: str
    finish_reason: str
    usage: dict[str, Any]
    interleave: bool = False


def forced_call(body: dict[str, Any]) -> tuple[str, Any] | None:
    """The call a ``tool_choice`` of ``required`` or one named function forces (the named
    tool, else the last one), with arguments following its parameters' schema."""
    choice, tools = body.get("tool_choice"), body.get("tools") or []
    if not tools or not (choice == "required" or isinstance(choice, dict)):
        return None
    named = (choice.get("function") or {}).get("name") if isinstance(choice, dict) else None
    tool = next((t for t in tools if t["function"]["name"] == named), tools[-1])
    return tool["function"]["name"], sample(tool["function"].get("parameters") or {})


def plan_reply(body: dict[str, Any], opts: dict[str, Any]) -> Reply:
    messages = body.get("messages") or []
    if "tool_calls" not in opts and (forced := forced_call(body)):
        opts = {**opts, "tool_calls": [forced]}
    tail = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        tail.insert(0, f"{message['tool_call_id']}={message_text(message)}")
    if tail:
        text = "Tool results: " + "; ".join(tail)
    else:
        user = next((m for m in reversed(messages) if m.get("role") == "user"), {})
        text = "Echo: " + message_text(user)
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        text = json.dumps(sample(fmt["json_schema"].get("schema")))
    elif fmt.get("type") == "json_object":
        text = json.dumps({"echo": text})
    effort = body.get("reasoning_effort")
    reasoning = opts.get("reasoning", f"Thinking ({effort}) about the reply." if effort else "")
    calls = [
        (f"call_{uuid.uuid4().hex[:24]}", name, json.dumps(args))
        for name, args in opts.get("tool_calls") or []
    ]
    text = opts.get("text", "" if calls else text)
    completion = len(text.split()) + len(reasoning.split()) + 5 * len(calls)
    prompt = max(1, sum(_words(m.get("content")) for m in messages))
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": opts.get("cached_tokens", 0), "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": len(reasoning.split()),
            "audio_tokens": 0,
        },
    }
    finish = opts.get("finish_reason", "tool_calls" if calls else "stop")
    return Reply(
        text, reasoning, calls, opts.get("refusal", ""), finish, usage, bool(opts.get("interleave"))
    )


def completion(body: dict[str, Any], reply: Reply, ident: str) -> dict[str, Any]:
    """The non-streamed chat.completion for ``reply``."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": reply.text or None,
        "refusal": reply.refusal or None,
    }
    if reply.reasoning:
        message["reasoning_content"] = reply.reasoning
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": i, "type": "function", "function": {"name": n, "arguments": a}}
            for i, n, a in reply.tool_calls
        ]
    choices = [
        {"index": k, "message": message, "logprobs": None, "finish_reason": reply.finish_reason}
        for k in range(int(body.get("n") or 1))
    ]
    return {
        "id": ident,
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": body["model"],
        "choices": choices,
        "usage": reply.usage,
        "system_fingerprint": "fp_fake",
    }


def _pieces(text: str, count: int = 3) -> list[str]:
    if not text:
        return []
    size = max(1, -(-len(text) // count))
    return [text[i : i + size] for i in range(0, len(text), size)]


def stream_chunks(body: dict[str, Any], reply: Reply, ident: str) -> list[dict[str, Any]]:
    """The chat.completion.chunk events for ``reply`` (without the final [DONE])."""

    def chunk(delta: dict[str, Any], finish: str | None = None, k: int = 0) -> dict[str, Any]:
        choice = {"index": k, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": body["model"],
            "system_fingerprint": "fp_fake",
            "choices": [choice],
        }

    out = []
    for k in range(int(body.get("n") or 1)):
        out.append(chunk({"role": "assistant", "content": "", "refusal": None}, k=k))
        out += [chunk({"reasoning_content": p}, k=k) for p in _pieces(reply.reasoning, 2)]
        out += [chunk({"content": p}, k=k) for p in _pieces(reply.text)]
        out += [chunk({"refusal": p}, k=k) for p in _pieces(reply.refusal)]
        starts, fragments = [], []
        for t, (call_id, name, args) in enumerate(reply.tool_calls):
            head = {
                "index": t,
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": ""},
            }
            starts.append([chunk({"tool_calls": [head]}, k=k)])
            fragments.append(
                [
                    chunk({"tool_calls": [{"index": t, "function": {"arguments": a}}]}, k=k)
                    for a in _pieces(args)
                ]
            )
        if reply.interleave:
            out += [c for group in starts for c in group]
            for row in zip(*fragments, strict=False):
                out += row
        else:
            for head_chunks, frag_chunks in zip(starts, fragments, strict=True):
                out += head_chunks + frag_chunks
        out.append(chunk({}, reply.finish_reason, k=k))
    if (body.get("stream_options") or {}).get("include_usage"):
        last = chunk({})
        last["choices"], last["usage"] = [], reply.usage
        out.append(last)
    return out


def embedding(text: str, dims: int) -> list[float]:
    raw = hashlib.shake_256(text.encode()).digest(2 * dims)
    return [
        round(int.from_bytes(raw[i : i + 2], "big") / 32767.5 - 1, 6) for i in range(0, 2 * dims, 2)
    ]


# ----------------------------------------------------------------------- the fake


@dataclass(frozen=True)
class RecordedRequest:
    """One request: lower-cased headers, parsed JSON body, and the Azure deployment if any."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    deployment: str | None


class FakeOpenAI:
    """Fake OpenAI-compatible upstream; see the module docstring."""

    def __init__(
        self,
        api_key: str = DEFAULT_KEY,
        azure_key: str = AZURE_KEY,
        *,
        anonymous_models: tuple[str, ...] = (),
        azure_models: dict[str, str] | None = None,
        pause: float = 0.01,
    ) -> None:
        self.api_key, self.azure_key = api_key, azure_key
        self.anonymous_models = anonymous_models
        # The model behind each Azure deployment (its rules apply); else the deployment name.
        self.azure_models = dict(azure_models or {})
        self.pause = pause
        self.port = 0
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._scripts: list[tuple[str, dict[str, Any], int | None]] = []
        self._held: threading.Event | None = None
        self.prompt_cache = OpenAIPromptCache()
        self.waiting = 0  # chat requests held by `hold()`
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.ServerRunner | None = None

    # -- lifecycle

    def __enter__(self) -> FakeOpenAI:
        sock = tcp_listener()
        self.port = sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="fake-openai", daemon=True
        )
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(sock), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(15)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(15)
        loop.close()
        self._loop = self._thread = None

    async def _serve(self, sock: socket.socket) -> None:
        server = web.Server(self._handle, access_log=None)
        self._runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        others = asyncio.all_tasks() - {asyncio.current_task()}
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- test-facing API

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def last_request(self) -> RecordedRequest:
        with self._lock:
            return self._requests[-1]

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._scripts.clear()
            self.prompt_cache = OpenAIPromptCache()

    def script(self, kind: str, *, times: int | None = 1, **opts: Any) -> None:
        """Queue a behaviour for the next ``times`` chat/embeddings requests (None: forever)."""
        if kind not in _SCRIPT_OPTS:
            raise ValueError(f"unknown script kind {kind!r}")
        if extra := set(opts) - _SCRIPT_OPTS[kind]:
            raise TypeError(f"script {kind!r} takes no option(s) {sorted(extra)}")
        with self._lock:
            self._scripts.append((kind, opts, times))

    def hold(self) -> None:
        """Make chat requests wait until `release()`."""
        with self._lock:
            self._held = threading.Event()

    def release(self) -> None:
        """Let held requests (and later ones) answer."""
        with self._lock:
            held, self._held = self._held, None
        if held is not None:
            held.set()

    async def _wait_if_held(self) -> None:
        with self._lock:
            held = self._held
            if held is None:
                return
            self.waiting += 1
        try:
            # `held` is set from the test's thread, not this loop's: polled.
            while not held.is_set():  # noqa: ASYNC110
                await asyncio.sleep(0.005)
        finally:
            with self._lock:
                self.waiting -= 1

    def _cache_prompt(
        self, reply: Reply, opts: dict[str, Any], who: str, body: dict[str, Any]
    ) -> None:
        """OpenAI's automatic prompt caching, unless the script says how much is cached."""
        if "cached_tokens" in opts:
            return
        with self._lock:
            cached = self.prompt_cache.cached_tokens(who, body)
        reply.usage["prompt_tokens_details"]["cached_tokens"] = cached

    def _take_script(self) -> tuple[str, dict[str, Any]] | None:
        with self._lock:
            if not self._scripts:
                return None
            kind, opts, times = self._scripts[0]
            if times is not None:
                if times <= 1:
                    self._scripts.pop(0)
                else:
                    self._scripts[0] = (kind, opts, times - 1)
            return kind, opts

    # -- HTTP

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        try:
            return await self._route(request)
        except OpenAIError as err:
            return web.json_response(err.body(), status=err.status, headers=err.headers)

    def _azure_deployment(self, request: web.BaseRequest) -> str | None:
        """The Azure deployment named by the path (checked like Azure does), else None."""
        parts = request.path.strip("/").split("/")
        if parts[:2] != ["openai", "deployments"] or len(parts) < 4:
            return None
        if "api-version" not in request.query:
            raise OpenAIError(404, "Resource not found", code="404")
        if request.headers.get("api-key") != self.azure_key:
            raise OpenAIError(
                401,
                "Access denied due to invalid subscription key or wrong API endpoint.",
                code="401",
            )
        return parts[2]

    async def _route(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        deployment = self._azure_deployment(request)
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            raise OpenAIError(400, "We could not parse the JSON body of your request.") from None
        record = RecordedRequest(
            request.method,
            path,
            dict(request.query),
            {k.lower(): v for k, v in request.headers.items()},
            body,
            deployment,
        )
        with self._lock:
            self._requests.append(record)
        if request.method != "POST" or not path.endswith(("/chat/completions", "/embeddings")):
            raise OpenAIError(404, f"Invalid URL ({request.method} {path})", code="unknown_url")
        model = body.get("model") if isinstance(body, dict) else None
        if deployment is None:
            auth = request.headers.get("authorization")
            if auth != f"Bearer {self.api_key}" and not (
                auth is None and model in self.anonymous_models
            ):
                shown = (auth or "").removeprefix("Bearer ")[:6]
                raise OpenAIError(
                    401, f"Incorrect API key provided: {shown}***.", code="invalid_api_key"
                )
        streaming = (
            path.endswith("/chat/completions")
            and isinstance(body, dict)
            and bool(body.get("stream"))
        )
        kind = (
            "embeddings"
            if path.endswith("/embeddings")
            else ("chat_stream" if streaming else "chat")
        )
        if problems := validation_problems(kind, body):
            raise OpenAIError(400, "Invalid request body: " + "; ".join(problems))
        assert isinstance(body, dict)
        if kind != "embeddings" and (rule := openai_rules(body)):
            raise OpenAIError(400, rule)
        model_name = self.azure_models.get(deployment, deployment) if deployment else model
        if kind != "embeddings" and (refused := model_refusal(str(model_name or ""), body)):
            raise OpenAIError(400, refused.message, code=refused.code, param=refused.param)
        if kind != "embeddings":
            await self._wait_if_held()
        script = self._take_script()
        name, opts = script if script else ("reply", {})
        if name == "error":
            status = int(opts.get("status", 500))
            kind_ = opts.get("type", "server_error" if status >= 500 else "invalid_request_error")
            message = opts.get("message", f"Fake upstream error {status}.")
            raise OpenAIError(
                status, message, kind_, opts.get("code"), opts.get("param"), opts.get("headers")
            )
        if kind == "embeddings":
            texts = [body["input"]] if isinstance(body["input"], str) else body["input"]
            dims = int(body.get("dimensions") or EMBED_DIM)
            data = [
                {"object": "embedding", "index": i, "embedding": embedding(t, dims)}
                for i, t in enumerate(texts)
            ]
            tokens = sum(len(t.split()) for t in texts)
            return web.json_response(
                {
                    "object": "list",
                    "data": data,
                    "model": body["model"],
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                }
            )
        ident = f"chatcmpl-{uuid.uuid4().hex[:20]}"
        reply = plan_reply(body, opts if name == "reply" else {})
        self._cache_prompt(
            reply, opts, f"{request.headers.get('authorization')}|{deployment}", body
        )
        if not streaming:
            return web.json_response(completion(body, reply, ident))
        chunks: list[Any] = stream_chunks(body, reply, ident)
        done = True
        if name == "stream_error":
            error = {
                "message": opts.get("message", "The server had an error."),
                "type": opts.get("type", "server_error"),
                "param": None,
                "code": opts.get("code"),
            }
            chunks, done = [*chunks[: int(opts.get("after", 2))], {"error": error}], False
        elif name == "raw_chunks":
            chunks, done = list(opts["chunks"]), bool(opts.get("done", True))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for event in [*chunks, "[DONE]"] if done else chunks:
            data = event if isinstance(event, str) else json.dumps(event, separators=(",", ":"))
            await response.write(f"data: {data}\n\n".encode())
            await asyncio.sleep(self.pause)
        return response
