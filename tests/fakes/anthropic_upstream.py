"""A fake Anthropic Messages API (api.anthropic.com) upstream for the genroute tests.

``FakeAnthropic`` runs a real aiohttp server on 127.0.0.1 (free port) in a background thread
with its own loop. It speaks the real wire format: ``POST /v1/messages`` answers a Message as
JSON, or with ``"stream": true`` an SSE stream of ``event: <type>\\ndata: {...}\\n\\n`` events
(message_start, content_block_start, ping, deltas, content_block_stop, message_delta,
message_stop); ``POST /v1/messages/count_tokens`` answers ``{"input_tokens": n}``.

Like Anthropic it checks ``x-api-key`` and ``anthropic-version``, validates every body against
the official ``anthropic`` SDK's request types (unknown keys included), and enforces the
multi-turn rules: user first and roles alternating, every tool_use answered by a tool_result
at the head of the next user message, tool_result ids matching the tool_use just before,
unique tool_use ids, thinking signatures valid (they are HMACs made by this fake) and, with
thinking on, the assistant turn being answered starting with a thinking block; plus the
sampling rules of thinking and of temperature/top_p. Errors are Anthropic-shaped.

    with FakeAnthropic("key") as fake:
        fake.script("reply", content=[thinking("plan"), tool_use("f", {"x": 1})])
        fake.script("error", status=429, type="rate_limit_error", headers={"retry-after": "7"})
        fake.script("stream_error", after=4, type="overloaded_error")
        assert fake.last_request.body["messages"]

Prompt caching works as Anthropic's: at most 4 blocks may carry ``cache_control`` (tools,
system blocks, message blocks; a 1h breakpoint may not follow a 5m one), and the prefix up
to each breakpoint (tools, then system, then messages) is cached once it reaches the
model's minimum (1024 tokens, 2048 or 4096 for some models; tokens are whitespace words, 5
per tool): a later request with the same prefix reports it as ``cache_read_input_tokens``,
the first as ``cache_creation_input_tokens`` (``input_tokens`` is the rest).
``fake.prompt_cache`` holds the cached prefixes.

Without a script the reply is deterministic: a thinking block when thinking is on, then the
JSON of the schema (output_config.format), or a call of the forced tool, or a summary of the
tool results just received, or ``"Echo: <last user text>"``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
import hmac
import itertools
import json
import re
import socket
import threading
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from aiohttp import web
from pydantic import BaseModel, TypeAdapter, ValidationError
from typing_extensions import is_typeddict

from tests.fakes.prompt_caches import AnthropicPromptCache, cache_control_problems
from tests.fakes.sockets import tcp_listener

DEFAULT_API_KEY = "anthropic-upstream-key"
API_VERSION = "2023-06-01"
_COUNT_PATH = "/v1/messages/count_tokens"
_SECRET = b"fake-anthropic-signing-key"
_SAMPLING = ("temperature", "top_p", "top_k")
_NO_SAMPLING = re.compile(r"claude-[a-z]+-(?:[5-9]|4-[7-9])")
_STATUS = {"invalid_request_error": 400, "authentication_error": 401, "permission_error": 403,
           "not_found_error": 404, "request_too_large": 413, "rate_limit_error": 429,
           "api_error": 500, "overloaded_error": 529}  # fmt: skip

# ----------------------------------------------------------------- SDK-type validation


@functools.cache
def _sdk_types() -> dict[str, tuple[Any, TypeAdapter[Any]]]:
    """The anthropic SDK's request TypedDicts and their adapters, imported and built on
    first use (~3 s, which every pytest process would otherwise pay loading the conftest)."""
    from anthropic.types.message_count_tokens_params import MessageCountTokensParams
    from anthropic.types.message_create_params import (
        MessageCreateParamsNonStreaming,
        MessageCreateParamsStreaming,
    )

    kinds = {"create": MessageCreateParamsNonStreaming, "stream": MessageCreateParamsStreaming,
             "count": MessageCountTokensParams}  # fmt: skip
    return {kind: (tp, TypeAdapter(tp)) for kind, tp in kinds.items()}


def sdk_problems(body: Any, kind: str) -> list[str]:
    """What the anthropic SDK's TypedDicts reject in a body (`kind`: create, stream, count),
    including keys they do not declare, which pydantic alone would ignore.

    temperature, top_p and top_k left the SDK's signatures in 1.0 (SDK users now send them
    in `extra_body`) but the API still takes them with anthropic-version 2023-06-01 on models
    before 4.7; they are checked here as numbers, and per model in `rule_problems`."""
    sampling = {k: body.pop(k) for k in _SAMPLING if isinstance(body, dict) and k in body}
    try:
        params, adapter = _sdk_types()[kind]
        _force(adapter.validate_python(body))
        problems = _unknown_keys(body, params, "body")
    except ValidationError as exc:
        problems = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5]]
    finally:
        if sampling:
            body.update(sampling)
    for key, value in sampling.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            problems.append(f"body.{key}: Input should be a valid number")
    return problems


def _force(value: Any) -> None:
    """Run pydantic's lazy validators for Iterable fields."""
    if isinstance(value, dict):
        for item in value.values():
            _force(item)
    elif isinstance(value, list | tuple) or type(value).__name__ == "ValidatorIterator":
        for item in value:
            _force(item)


def _could_be(value: Any, tp: Any) -> bool:
    """Whether `value` has the outer shape of `tp` (so a union picks the right branch)."""
    origin = get_origin(tp)
    if origin is Annotated:
        return _could_be(value, get_args(tp)[0])
    if origin in (Union, UnionType):
        return any(_could_be(value, a) for a in get_args(tp))
    if origin is Literal:
        return value in get_args(tp)
    if is_typeddict(tp):
        if not isinstance(value, dict):
            return False
        hints = typing.get_type_hints(tp)
        return all(
            _could_be(value[k], h)
            for k, h in hints.items()
            if get_origin(h) is Literal and k in value
        )
    if origin in (dict, Mapping) or tp is dict:
        return isinstance(value, dict)
    if origin is not None:
        return isinstance(value, list)
    if isinstance(tp, type) and tp is not object:
        return isinstance(value, tp) and not issubclass(tp, BaseModel)
    return True


def _unknown_keys(value: Any, tp: Any, path: str) -> list[str]:
    origin = get_origin(tp)
    if origin is Annotated:
        return _unknown_keys(value, get_args(tp)[0], path)
    if origin in (Union, UnionType):
        problems: list[str] = []
        for option in (a for a in get_args(tp) if _could_be(value, a)):
            found = _unknown_keys(value, option, path)
            if not found:
                return []
            problems = problems or found
        return problems
    if is_typeddict(tp) and isinstance(value, dict):
        hints = typing.get_type_hints(tp)
        problems = [f"{path}.{k}: Extra inputs are not permitted" for k in value if k not in hints]
        for key, item in value.items():
            if key in hints:
                problems += _unknown_keys(item, hints[key], f"{path}.{key}")
        return problems
    if isinstance(value, list) and origin is not None and origin is not dict and get_args(tp):
        return [
            p
            for i, v in enumerate(value)
            for p in _unknown_keys(v, get_args(tp)[0], f"{path}[{i}]")
        ]
    return []


# ------------------------------------------------------------------- thinking signatures


def sign(thinking_text: str) -> str:
    """The signature this fake gives (and demands back for) a thinking text."""
    return base64.b64encode(hmac.new(_SECRET, thinking_text.encode(), "sha256").digest()).decode()


def thinking(text: str) -> dict[str, Any]:
    """A thinking block with a valid signature."""
    return {"type": "thinking", "thinking": text, "signature": sign(text)}


def redacted(seed: str = "r") -> dict[str, Any]:
    """A redacted_thinking block whose opaque data this fake accepts back."""
    nonce = hashlib.sha256(seed.encode()).digest()[:12]
    return {"type": "redacted_thinking", "data": base64.b64encode(nonce + _mac(nonce)).decode()}


def _mac(data: bytes) -> bytes:
    return hmac.new(_SECRET, data, "sha256").digest()[:16]


def _redacted_ok(data: str) -> bool:
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return False
    return len(raw) == 28 and hmac.compare_digest(raw[12:], _mac(raw[:12]))


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


_TOOL_IDS = itertools.count(1)


def tool_use(name: str, arguments: dict[str, Any], id: str | None = None) -> dict[str, Any]:
    return {
        "type": "tool_use",
        "id": id or f"toolu_{next(_TOOL_IDS):04d}",
        "name": name,
        "input": arguments,
    }


# ------------------------------------------------------------------ multi-turn rules


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message["content"]
    return [text(content)] if isinstance(content, str) else list(content)


def rule_problems(body: dict[str, Any]) -> list[str]:
    """The conversation and parameter rules Anthropic enforces that types cannot express."""
    messages = body.get("messages") or []
    return _turn_problems(messages) + _thinking_problems(body, messages)


def _turn_problems(messages: list[dict[str, Any]]) -> list[str]:
    """Roles, content and tool_use/tool_result pairing across the turns."""
    problems: list[str] = []
    if messages and messages[0]["role"] != "user":
        problems.append('messages: first message must use the "user" role')
    seen_ids: set[str] = set()
    for i, message in enumerate(messages):
        role, blocks = message["role"], _blocks(message)
        if i and role == messages[i - 1]["role"]:
            problems.append(f'messages: roles must alternate, but found two "{role}" in a row')
        if not blocks:
            problems.append(f"messages.{i}: all messages must have non-empty content")
        calls = [b["id"] for b in blocks if b["type"] == "tool_use"]
        for j, block in enumerate(blocks):
            problems += _block_problems(block, f"messages.{i}.content.{j}", role)
            if block["type"] == "tool_use" and block["id"] in seen_ids:
                problems.append(f"messages.{i}.content.{j}: `tool_use` ids must be unique")
            seen_ids.add(block.get("id", ""))
        results = [b for b in blocks if b["type"] == "tool_result"]
        leading = list(itertools.takewhile(lambda b: b["type"] == "tool_result", blocks))
        if len(leading) != len(results):
            problems.append(f"messages.{i}: tool_result blocks must come first in the content")
        previous = _blocks(messages[i - 1]) if i else []
        before = {b["id"] for b in previous if b["type"] == "tool_use"}
        for result in results:
            if result["tool_use_id"] not in before:
                problems.append(
                    f"messages.{i}: unexpected `tool_use_id` found in `tool_result` blocks: "
                    f"{result['tool_use_id']}. Each `tool_result` block must have a "
                    "corresponding `tool_use` block in the previous message."
                )
        if calls and i + 1 < len(messages):
            answered = {b.get("tool_use_id") for b in _blocks(messages[i + 1])}
            if missing := [c for c in calls if c not in answered]:
                problems.append(
                    f"messages.{i}: `tool_use` ids were found without `tool_result` blocks "
                    f"immediately after: {', '.join(missing)}"
                )
    return problems


def _thinking_problems(body: dict[str, Any], messages: list[dict[str, Any]]) -> list[str]:
    """Where thinking blocks may stand, and whether thinking must be on for them."""
    problems: list[str] = []
    thinking_on = (body.get("thinking") or {}).get("type") in ("enabled", "adaptive")
    for i, message in enumerate(messages):
        kinds = [b["type"] for b in _blocks(message)]
        if message["role"] == "assistant" and kinds and kinds[-1] == "thinking":
            problems.append(
                f"messages.{i}: The final block in an assistant message cannot be `thinking`"
            )
    final = _blocks(messages[-1]) if messages and messages[-1]["role"] == "assistant" else []
    if not thinking_on and any(b["type"] in ("thinking", "redacted_thinking") for b in final):
        problems.append(
            "When thinking is disabled, a final `assistant` message cannot contain `thinking`."
        )
    if final and final[-1]["type"] == "text" and final[-1]["text"] != final[-1]["text"].rstrip():
        problems.append("messages: final assistant content cannot end with trailing whitespace")
    return problems + _parameter_problems(body, messages)


def _block_problems(block: dict[str, Any], where: str, role: str) -> list[str]:
    kind = block["type"]
    if kind == "text" and not block["text"]:
        return [f"{where}.text: text content blocks must be non-empty"]
    if kind in ("thinking", "redacted_thinking", "tool_use") and role != "assistant":
        return [f"{where}: {kind} blocks are only allowed in assistant messages"]
    if kind == "tool_result" and role != "user":
        return [f"{where}: tool_result blocks are only allowed in user messages"]
    if kind == "thinking" and not hmac.compare_digest(block["signature"], sign(block["thinking"])):
        return [f"{where}: Invalid `signature` in `thinking` block"]
    if kind == "redacted_thinking" and not _redacted_ok(block["data"]):
        return [f"{where}: Invalid `data` in `redacted_thinking` block"]
    source = block.get("source") or {}
    if kind in ("image", "document") and source.get("type") == "base64":
        try:
            base64.b64decode(source["data"], validate=True)
        except (binascii.Error, ValueError):
            return [f"{where}.source.data: invalid base64 data"]
    if kind == "tool_result" and isinstance(block.get("content"), list):
        return [p for b in block["content"] for p in _block_problems(b, where, "user")]
    return []


def _parameter_problems(body: dict[str, Any], messages: list[dict[str, Any]]) -> list[str]:
    problems: list[str] = []
    for key in _SAMPLING:
        if key in body and _NO_SAMPLING.search(str(body.get("model"))):
            problems.append(f"`{key}` is deprecated for this model.")
    if "temperature" in body and "top_p" in body:
        problems.append("`temperature` and `top_p` cannot both be specified for this model.")
    config = body.get("thinking") or {}
    choice = body.get("tool_choice") or {}
    tools = {t["name"] for t in body.get("tools") or []}
    if choice.get("type") == "tool" and choice.get("name") not in tools:
        problems.append(f"tool_choice.name: tool {choice.get('name')!r} not found in tools")
    if config.get("type") not in ("enabled", "adaptive"):
        return problems
    if config["type"] == "enabled":
        budget = config["budget_tokens"]
        if budget < 1024 or budget >= body.get("max_tokens", 0):
            problems.append("thinking.budget_tokens: must be ≥ 1024 and less than max_tokens")
    if choice.get("type") in ("any", "tool"):
        problems.append("Thinking may not be enabled when tool_choice forces tool use.")
    if body.get("temperature", 1) != 1 or "top_k" in body or body.get("top_p", 1) < 0.95:
        problems.append("temperature, top_k and top_p may not be modified with thinking on")
    if len(messages) >= 2 and any(b["type"] == "tool_result" for b in _blocks(messages[-1])):
        first = _blocks(messages[-2])[0]["type"]
        if first not in ("thinking", "redacted_thinking"):
            problems.append(
                f"messages.{len(messages) - 2}.content.0.type: Expected `thinking` or "
                f"`redacted_thinking`, but found `{first}`. When `thinking` is enabled, a final "
                "`assistant` message must start with a thinking block."
            )
    return problems


# --------------------------------------------------------------------------- replies


def words(body: dict[str, Any]) -> int:
    """Deterministic input token count: words of every text, 5 per tool, at least 1."""
    count = 0
    system = body.get("system") or []
    for block in [text(system)] if isinstance(system, str) else system:
        count += len(block["text"].split())
    for message in body.get("messages") or []:
        for block in _blocks(message):
            count += len(block["text"].split()) if block["type"] == "text" else 1
    return max(1, count + 5 * len(body.get("tools") or []))


def example(schema: Any) -> Any:
    """A value that satisfies a simple JSON Schema."""
    if not isinstance(schema, dict):
        return None
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if options := schema.get("anyOf") or schema.get("oneOf"):
        return example(options[0])
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) else kind
    values = {"string": "example", "integer": 7, "number": 1.5, "boolean": True, "null": None}
    if kind == "array":
        return [example(schema.get("items"))]
    if kind == "object" or "properties" in schema:
        return {k: example(v) for k, v in (schema.get("properties") or {}).items()}
    return values.get(str(kind))


def _result_text(result: dict[str, Any]) -> str:
    content = result.get("content", "")
    if isinstance(content, list):
        return " ".join(b.get("text", f"[{b['type']}]") for b in content)
    return str(content)


def default_content(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The fake's own answer to a request (module docstring)."""
    last = _blocks(body["messages"][-1])
    blocks: list[dict[str, Any]] = []
    if (body.get("thinking") or {}).get("type") in ("enabled", "adaptive"):
        blocks.append(thinking(f"The last message has {len(last)} blocks; I answer it."))
    schema = ((body.get("output_config") or {}).get("format") or {}).get("schema")
    choice = body.get("tool_choice") or {}
    tools = body.get("tools") or []
    if schema is not None:
        blocks.append(text(json.dumps(example(schema))))
    elif choice.get("type") in ("tool", "any") and tools:
        tool = next((t for t in tools if t["name"] == choice.get("name")), tools[-1])
        blocks.append(tool_use(tool["name"], example(tool["input_schema"])))
    elif results := [b for b in last if b["type"] == "tool_result"]:
        blocks.append(text("Results: " + " | ".join(_result_text(r) for r in results)))
    else:
        said = " ".join(b["text"] for b in last if b["type"] == "text")
        kinds = sorted({b["type"] for b in last if b["type"] != "text"})
        blocks.append(text("Echo: " + (said or f"[{', '.join(kinds)}]")))
    return blocks


_MESSAGE_IDS = itertools.count(1)


def message(body: dict[str, Any], content: list[dict[str, Any]]) -> dict[str, Any]:
    """A Message as Anthropic returns it, with deterministic usage."""
    out_words = sum(
        len(str(b.get("text") or b.get("thinking") or json.dumps(b.get("input") or {})).split())
        for b in content
    )
    think = sum(len(b["thinking"].split()) for b in content if b["type"] == "thinking")
    usage: dict[str, Any] = {
        "input_tokens": words(body),
        "output_tokens": out_words,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    if think:
        usage["output_tokens_details"] = {"thinking_tokens": think}
    stop = "tool_use" if any(b["type"] == "tool_use" for b in content) else "end_turn"
    return {
        "id": f"msg_fake{next(_MESSAGE_IDS):06d}",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": usage,
    }


def _pieces(value: str, count: int = 3) -> list[str]:
    size = max(1, -(-len(value) // count))
    return [value[i : i + size] for i in range(0, len(value), size)] or [""]


def stream_events(reply: dict[str, Any]) -> list[dict[str, Any]]:
    """The SSE events Anthropic sends for a Message, deltas split like the real API."""
    usage = reply["usage"]
    start = {**reply, "content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = {**{k: v for k, v in usage.items() if k != "output_tokens_details"}}
    start["usage"]["output_tokens"] = 1
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    for index, block in enumerate(reply["content"]):
        kind = block["type"]
        skeleton = {"text": text(""), "thinking": {**thinking(""), "signature": ""}}.get(kind)
        if kind == "tool_use":
            skeleton = {**block, "input": {}}
        events.append(
            {"type": "content_block_start", "index": index, "content_block": skeleton or block}
        )
        if index == 0:
            events.append({"type": "ping"})
        deltas: list[dict[str, Any]] = []
        if kind == "text":
            deltas = [{"type": "text_delta", "text": p} for p in _pieces(block["text"])]
        elif kind == "thinking":
            deltas = [{"type": "thinking_delta", "thinking": p} for p in _pieces(block["thinking"])]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        elif kind == "tool_use":
            raw = json.dumps(block["input"])
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in _pieces(raw)]
        events += [{"type": "content_block_delta", "index": index, "delta": d} for d in deltas]
        events.append({"type": "content_block_stop", "index": index})
    final_usage = {"output_tokens": usage["output_tokens"]}
    if "output_tokens_details" in usage:
        final_usage["output_tokens_details"] = usage["output_tokens_details"]
    delta = {"stop_reason": reply["stop_reason"], "stop_sequence": reply["stop_sequence"]}
    events.append({"type": "message_delta", "delta": delta, "usage": final_usage})
    events.append({"type": "message_stop"})
    return events


# ---------------------------------------------------------------------------- server


class AnthropicError(Exception):
    """An error answered as ``{"type": "error", "error": {type, message}, "request_id"}``."""

    def __init__(self, type: str, message: str, status: int | None = None, headers: Any = None):
        super().__init__(message)
        self.type, self.message = type, message
        self.status = status or _STATUS.get(type, 500)
        self.headers: dict[str, str] = dict(headers or {})

    def body(self) -> dict[str, Any]:
        error = {"type": self.type, "message": self.message}
        return {"type": "error", "error": error, "request_id": "req_fake0001"}


@dataclass
class Recorded:
    """One request as the fake received it (headers lower-cased, body parsed)."""

    path: str
    headers: dict[str, str]
    body: Any


class FakeAnthropic:
    """Fake Anthropic upstream on 127.0.0.1; see the module docstring."""

    def __init__(self, api_key: str = DEFAULT_API_KEY, *, split: bool = False) -> None:
        self.api_key, self.split = api_key, split
        self.port = 0
        self._lock = threading.Lock()
        self._requests: list[Recorded] = []
        self._scripts: list[tuple[str, dict[str, Any]]] = []
        self.prompt_cache = AnthropicPromptCache()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    def __enter__(self) -> FakeAnthropic:
        sock = tcp_listener()
        self.port = sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._serve(sock), self._loop).result(10)
        except BaseException:
            sock.close()
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        self._loop = self._thread = self._runner = None

    async def _serve(self, sock: socket.socket) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._requests)

    @property
    def last_request(self) -> Recorded:
        with self._lock:
            return self._requests[-1]

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._scripts.clear()
            self.prompt_cache = AnthropicPromptCache()

    def script(self, kind: str, **opts: Any) -> None:
        """Queue `reply` (content, stop_reason, usage), `error` (status, type, message,
        headers) or `stream_error` (after, type, message) for the next messages request."""
        if kind not in ("reply", "error", "stream_error"):
            raise ValueError(f"unknown script kind {kind!r}")
        with self._lock:
            self._scripts.append((kind, opts))

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with self._lock:
            self._requests.append(Recorded(request.path, headers, body))
        try:
            return await self._dispatch(request, headers, body)
        except AnthropicError as err:
            hdrs = {"request-id": "req_fake0001", **err.headers}
            return web.json_response(err.body(), status=err.status, headers=hdrs)

    async def _dispatch(
        self, request: web.Request, headers: dict[str, str], body: Any
    ) -> web.StreamResponse:
        if request.method != "POST" or request.path not in ("/v1/messages", _COUNT_PATH):
            raise AnthropicError("not_found_error", f"Not found: {request.method} {request.path}")
        if "x-api-key" not in headers:
            raise AnthropicError("authentication_error", "x-api-key header is required")
        if headers["x-api-key"] != self.api_key:
            raise AnthropicError("authentication_error", "invalid x-api-key")
        if headers.get("anthropic-version") != API_VERSION:
            raise AnthropicError("invalid_request_error", "anthropic-version: header is required")
        if not isinstance(body, dict):
            raise AnthropicError("invalid_request_error", "the request body is not a JSON object")
        counting = request.path == _COUNT_PATH
        kind = "count" if counting else ("stream" if body.get("stream") else "create")
        problems = sdk_problems(body, kind) or rule_problems(body)
        if problems := problems or cache_control_problems(body):
            raise AnthropicError("invalid_request_error", "; ".join(problems))
        if counting:
            return web.json_response({"input_tokens": words(body)})
        with self._lock:
            script, opts = self._scripts.pop(0) if self._scripts else ("", {})
        if script == "error":
            err_type = opts.get("type", "api_error")
            message_text = opts.get("message", f"fake {err_type}")
            raise AnthropicError(err_type, message_text, opts.get("status"), opts.get("headers"))
        reply = message(body, opts["content"] if script == "reply" else default_content(body))
        with self._lock:
            reply["usage"].update(self.prompt_cache.usage(headers["x-api-key"], body))
        reply["stop_reason"] = opts.get("stop_reason", reply["stop_reason"])
        reply["usage"].update(opts.get("usage", {}))
        if kind != "stream":
            return web.json_response(reply, headers={"request-id": "req_fake0001"})
        events = stream_events(reply)
        if script == "stream_error":
            error = {"type": opts.get("type", "overloaded_error"), "message": "Overloaded"}
            error["message"] = opts.get("message", error["message"])
            events = [*events[: opts.get("after", 3)], {"type": "error", "error": error}]
        return await self._stream(request, events)

    async def _stream(
        self, request: web.Request, events: list[dict[str, Any]]
    ) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream; charset=utf-8"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for event in events:
            frame = f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()
            cuts = [frame[: len(frame) // 2], frame[len(frame) // 2 :]] if self.split else [frame]
            for piece in cuts:
                await resp.write(piece)
                await asyncio.sleep(0.002)
        await resp.write_eof()
        return resp
