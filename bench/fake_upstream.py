"""A fast fake Gemini (and OpenAI Chat Completions) upstream for the genroute benchmark.

A raw asyncio ``Protocol`` HTTP/1.1 server (on uvloop when available) with pre-rendered
responses, so that it is not the bottleneck of the benchmark:

* ``POST .../models/<m>:generateContent`` → a ~1 KB ``GenerateContentResponse``;
* ``POST .../models/<m>:streamGenerateContent?alt=sse`` → 5 SSE events
  (``data: {json}\\r\\n\\r\\n``, deltas, ``finishReason`` and ``usageMetadata`` on the last),
  sent with ``Transfer-Encoding: chunked``, one chunk per event; without ``alt=sse`` the
  same five objects as one JSON array;
* ``POST .../chat/completions`` → an OpenAI ``chat.completion`` (~0.9 KB, with ``usage``), or
  with ``"stream": true`` in the body 7 ``chat.completion.chunk`` SSE events
  (``data: {json}\\n\\n``: the role, 5 content deltas, ``finish_reason: stop``), an 8th with
  ``usage`` and ``choices: []`` when ``stream_options.include_usage`` is true, then
  ``data: [DONE]``; it needs ``Authorization: Bearer …`` (else OpenAI's 401);
* ``POST .../v1/messages`` → an Anthropic Messages ``message`` (the same text, with
  ``usage``), or with ``"stream": true`` in the body its SSE events (``event: <type>`` and
  ``data: {json}``: ``message_start``, ``content_block_start``, ``ping``, 5
  ``content_block_delta``, ``content_block_stop``, ``message_delta`` with ``end_turn`` and
  the output tokens, ``message_stop``); it needs ``x-api-key`` (else Anthropic's 401);
* a Gemini model whose name ends in ``-chunks-N`` (``gemini-chunks-50``) streams N events
  instead of 5 (the text pieces repeated; ``finishReason`` and usage on the last), so that
  the cost of one more chunk can be measured;
* ``POST /v1/traces`` → 200 with an empty OTLP/HTTP response, a sink for genroute's spans;
* ``GET /__stats`` → ``{"paths": {"POST /path?alt": count, ...}}``, the request lines seen
  (query parameter names only), so the benchmark can show which upstream path each gateway calls;
* anything else → a Google-shaped 404, logged once per path on stderr.

A request without ``x-goog-api-key`` (or ``?key=``, which Google also accepts) gets Google's
403 ``PERMISSION_DENIED``. Request bodies are read by ``Content-Length`` or chunked framing
and ignored, except that a Chat Completions body is searched for ``"stream": true`` and
``"include_usage": true``. Keep-alive is the default; ``Connection: close`` is honoured. ``--delay-ms``
holds each response back to simulate model latency (for a stream, before the first event).

Run: ``python bench/fake_upstream.py --port 18000 [--port 18001 ...] [--delay-ms 0]``: every
``--port`` is served by the same process, with shared counts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import sys
from typing import Any, cast

STREAM_PIECES = [
    "Benchmarks measure what they measure. ",
    "A fake upstream answers at once, so whatever time remains between the client ",
    "and the upstream belongs to the gateway in between: parsing, routing, ",
    "re-encoding and the event loop that carries every byte across. ",
    "Real models take hundreds of milliseconds, which hides most of this.",
]
EXPECTED_TEXT = "".join(STREAM_PIECES)

_SAFETY = [
    {"category": c, "probability": "NEGLIGIBLE"}
    for c in (
        "HARM_CATEGORY_HATE_SPEECH",
        "HARM_CATEGORY_DANGEROUS_CONTENT",
        "HARM_CATEGORY_HARASSMENT",
        "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    )
]
MAX_HEADER = 64 * 1024


def _usage(candidates: int) -> dict[str, Any]:
    return {
        "promptTokenCount": 61,
        "candidatesTokenCount": candidates,
        "totalTokenCount": 61 + candidates + 48,
        "thoughtsTokenCount": 48,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 61}],
        "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": candidates}],
    }


def _response(text: str, *, last: bool, usage: int, with_safety: bool) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": text}]}}
    if last:
        candidate["finishReason"] = "STOP"
    candidate["index"] = 0
    if with_safety:
        candidate["safetyRatings"] = _SAFETY
    out: dict[str, Any] = {"candidates": [candidate], "usageMetadata": _usage(usage)}
    out["modelVersion"] = "gemini-2.5-flash"
    out["responseId"] = "fAkEaJ2bOqGz1MkP0p7b-Ac"
    return out


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _http(status: str, ctype: bytes, body: bytes) -> bytes:
    head = b"HTTP/1.1 " + status.encode() + b"\r\nContent-Type: " + ctype
    head += b"\r\nServer: fake-gemini\r\nContent-Length: " + str(len(body)).encode()
    return head + b"\r\n\r\n" + body


def _chunked_head(ctype: bytes) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: "
        + ctype
        + b"\r\nServer: fake-gemini\r\nTransfer-Encoding: chunked\r\n\r\n"
    )


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _error(code: int, status: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status}}


NON_STREAM_BODY = _dumps(_response(EXPECTED_TEXT, last=True, usage=61, with_safety=True))
_EVENTS = [
    _response(p, last=i == len(STREAM_PIECES) - 1, usage=12 * (i + 1), with_safety=i == 4)
    for i, p in enumerate(STREAM_PIECES)
]
SSE_BODY = b"".join(_chunk(b"data: " + _dumps(e) + b"\r\n\r\n") for e in _EVENTS) + b"0\r\n\r\n"
ARRAY_BODY = b"[" + b",\r\n".join(_dumps(e) for e in _EVENTS) + b"]"
JSON = b"application/json; charset=UTF-8"
SSE = b"text/event-stream"

R_JSON = _http("200 OK", JSON, NON_STREAM_BODY)
R_SSE = _chunked_head(SSE) + SSE_BODY
R_ARRAY = _http("200 OK", JSON, ARRAY_BODY)
R_403 = _http(
    "403 Forbidden",
    JSON,
    _dumps(
        _error(
            403,
            "PERMISSION_DENIED",
            "Method doesn't allow unregistered callers (callers without established identity)."
            " Please use API Key or other form of API consumer identity to call this API.",
        )
    ),
)
R_400 = _http("400 Bad Request", JSON, _dumps(_error(400, "INVALID_ARGUMENT", "bad request")))

# ---- OpenAI Chat Completions
OPENAI_MODEL = "gpt-4o-mini-2024-07-18"
_OAI_ID = "chatcmpl-BeNcHfAkE0000000000000000000"
_OAI_HEAD = {"id": _OAI_ID, "created": 1764440000, "model": OPENAI_MODEL}


def _openai_usage(completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": 61,
        "completion_tokens": completion,
        "total_tokens": 61 + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _openai_completion() -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": EXPECTED_TEXT,
        "refusal": None,
        "annotations": [],
    }
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
    out: dict[str, Any] = {**_OAI_HEAD, "object": "chat.completion", "choices": [choice]}
    out |= {"usage": _openai_usage(61), "service_tier": "default"}
    out["system_fingerprint"] = "fp_bench0001"
    return out


def _openai_chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    out: dict[str, Any] = {**_OAI_HEAD, "object": "chat.completion.chunk"}
    out |= {"service_tier": "default", "system_fingerprint": "fp_bench0001", "choices": [choice]}
    return out


def _sse(events: list[dict[str, Any]]) -> bytes:
    data = [_chunk(b"data: " + _dumps(e) + b"\n\n") for e in events]
    return b"".join(data) + _chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"


_OAI_CHUNKS = [_openai_chunk({"role": "assistant", "content": "", "refusal": None}, None)]
_OAI_CHUNKS += [_openai_chunk({"content": piece}, None) for piece in STREAM_PIECES]
_OAI_CHUNKS.append(_openai_chunk({}, "stop"))
_OAI_USAGE_CHUNK = {**_OAI_HEAD, "object": "chat.completion.chunk", "service_tier": "default"}
_OAI_USAGE_CHUNK |= {"system_fingerprint": "fp_bench0001", "choices": []}
_OAI_USAGE_CHUNK["usage"] = _openai_usage(61)

R_OAI_JSON = _http("200 OK", b"application/json", _dumps(_openai_completion()))
R_OAI_SSE = _chunked_head(SSE) + _sse(_OAI_CHUNKS)
R_OAI_SSE_USAGE = _chunked_head(SSE) + _sse([*_OAI_CHUNKS, _OAI_USAGE_CHUNK])
_OAI_401 = {
    "error": {
        "message": "You didn't provide an API key. You need to provide your API key in an "
        "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
}
R_OAI_401 = _http("401 Unauthorized", b"application/json", _dumps(_OAI_401))
R_TRACES = _http("200 OK", b"application/x-protobuf", b"")
# ---- Anthropic Messages
ANTHROPIC_MODEL = "claude-sonnet-4-5-20250929"
_ANT_USAGE = {"input_tokens": 61, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
_ANT_MESSAGE = {
    "id": "msg_bench000000000000000001",
    "type": "message",
    "role": "assistant",
    "model": ANTHROPIC_MODEL,
    "content": [{"type": "text", "text": EXPECTED_TEXT}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {**_ANT_USAGE, "output_tokens": 61},
}


def _anthropic_events() -> list[dict[str, Any]]:
    start = {k: v for k, v in _ANT_MESSAGE.items() if k not in ("content", "stop_reason")}
    start |= {"content": [], "stop_reason": None, "usage": {**_ANT_USAGE, "output_tokens": 1}}
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    events.append(
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    )
    events.append({"type": "ping"})
    for piece in STREAM_PIECES:
        delta = {"type": "text_delta", "text": piece}
        events.append({"type": "content_block_delta", "index": 0, "delta": delta})
    events.append({"type": "content_block_stop", "index": 0})
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 61},
        }
    )
    events.append({"type": "message_stop"})
    return events


def _anthropic_sse() -> bytes:
    body = b"".join(
        _chunk(b"event: " + e["type"].encode() + b"\ndata: " + _dumps(e) + b"\n\n")
        for e in _anthropic_events()
    )
    return _chunked_head(SSE) + body + b"0\r\n\r\n"


R_ANT_JSON = _http("200 OK", b"application/json", _dumps(_ANT_MESSAGE))
R_ANT_SSE = _anthropic_sse()
R_ANT_401 = _http(
    "401 Unauthorized",
    b"application/json",
    _dumps(
        {
            "type": "error",
            "error": {"type": "authentication_error", "message": "x-api-key header is required"},
        }
    ),
)

# ---- Gemini streams of N events (`...-chunks-N` models)
_CHUNKS = re.compile(rb"-chunks-(\d{1,4}):")
_SSE_BY_COUNT: dict[int, bytes] = {}


def sse_of(count: int) -> bytes:
    """A Gemini SSE reply of `count` events (cached)."""
    found = _SSE_BY_COUNT.get(count)
    if found is None:
        events = [
            _response(
                STREAM_PIECES[i % len(STREAM_PIECES)],
                last=i == count - 1,
                usage=12 * (i + 1),
                with_safety=i == count - 1,
            )
            for i in range(count)
        ]
        body = b"".join(_chunk(b"data: " + _dumps(e) + b"\r\n\r\n") for e in events)
        found = _SSE_BY_COUNT[count] = _chunked_head(SSE) + body + b"0\r\n\r\n"
    return found


_STREAM_TRUE = re.compile(rb'"stream"\s*:\s*true')
_INCLUDE_USAGE = re.compile(rb'"include_usage"\s*:\s*true')
_NO_DELAY = (R_403, R_400, R_OAI_401, R_ANT_401, R_TRACES)


class Stats:
    """Request counts per method and path, shared by every connection."""

    def __init__(self) -> None:
        self.paths: dict[str, int] = {}

    def seen(self, key: str) -> bool:
        new = key not in self.paths
        self.paths[key] = self.paths.get(key, 0) + 1
        return new


class Upstream(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; requests are answered in order."""

    def __init__(self, stats: Stats, delay: float) -> None:
        self.stats = stats
        self.delay = delay
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy = False  # a delayed response is pending; later requests wait in buf

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy:
            self._drain()

    def _drain(self) -> None:
        while self.transport is not None and not self.busy:
            parsed = self._parse_one()
            if parsed is None:
                return
            response, close = parsed
            if self.delay > 0 and response not in _NO_DELAY:
                self.busy = True
                loop = asyncio.get_running_loop()
                loop.call_later(self.delay, self._send_delayed, response, close)
                return
            self._send(response, close)

    def _send_delayed(self, response: bytes, close: bool) -> None:
        self.busy = False
        self._send(response, close)
        self._drain()

    def _send(self, response: bytes, close: bool) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(response)
        if close:
            self.transport.close()
            self.transport = None

    def _parse_one(self) -> tuple[bytes, bool] | None:
        """Consume one complete request from the buffer; None if it is not all here yet."""
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEADER:
                self._send(R_400, True)
            return None
        lines = bytes(buf[:end]).split(b"\r\n")
        try:
            method, target, version = lines[0].split(b" ", 2)
        except ValueError:
            self._send(R_400, True)
            return None
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        start = end + 4
        if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
            stop = self._chunked_end(start)
            if stop is None:
                return None
        else:
            stop = start + int(headers.get(b"content-length", b"0") or 0)
            if len(buf) < stop:
                return None
        body = bytes(buf[start:stop])  # for a chunked body, with its framing: only searched
        del buf[:stop]
        conn = headers.get(b"connection", b"").lower()
        close = conn == b"close" or (version == b"HTTP/1.0" and conn != b"keep-alive")
        return self._route(method, target, headers, body), close

    def _chunked_end(self, pos: int) -> int | None:
        buf = self.buf
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                return None
            size = int(bytes(buf[pos:eol]).split(b";")[0] or b"0", 16)
            if size == 0:
                trailer_end = buf.find(b"\r\n\r\n", eol)
                if buf[eol : eol + 4] == b"\r\n\r\n":
                    return eol + 4
                return None if trailer_end < 0 else trailer_end + 4
            pos = eol + 2 + size + 2
            if len(buf) < pos:
                return None

    def _route(
        self, method: bytes, target: bytes, headers: dict[bytes, bytes], body: bytes
    ) -> bytes:
        path, _, query = target.partition(b"?")
        key = f"{method.decode(errors='replace')} {path.decode(errors='replace')}"
        if query:  # parameter names only: a `key=` value is a secret
            key += "?" + "&".join(
                p.partition(b"=")[0].decode(errors="replace") for p in query.split(b"&")
            )
        if path == b"/__stats":
            return _http("200 OK", JSON, _dumps({"paths": self.stats.paths}))
        if self.stats.seen(key):
            print(f"fake_upstream: first request to {key}", file=sys.stderr, flush=True)
        if method != b"POST":
            return _http("404 Not Found", JSON, _dumps(_error(404, "NOT_FOUND", key)))
        if path.endswith(b"/chat/completions"):
            if not headers.get(b"authorization", b"").startswith(b"Bearer "):
                return R_OAI_401
            if not _STREAM_TRUE.search(body):
                return R_OAI_JSON
            return R_OAI_SSE_USAGE if _INCLUDE_USAGE.search(body) else R_OAI_SSE
        if path == b"/v1/traces":
            return R_TRACES
        if path.endswith(b"/v1/messages"):
            if not headers.get(b"x-api-key"):
                return R_ANT_401
            return R_ANT_SSE if _STREAM_TRUE.search(body) else R_ANT_JSON
        has_key = bool(headers.get(b"x-goog-api-key")) or b"key=" in query
        if path.endswith(b":generateContent"):
            return R_JSON if has_key else R_403
        if path.endswith(b":streamGenerateContent"):
            if not has_key:
                return R_403
            if b"alt=sse" not in query:
                return R_ARRAY
            count = _CHUNKS.search(path + b":")
            return sse_of(int(count.group(1))) if count else R_SSE
        return _http("404 Not Found", JSON, _dumps(_error(404, "NOT_FOUND", f"no route {key}")))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(host: str, ports: list[int], delay_ms: float) -> None:
    """Serve every port until SIGTERM/SIGINT."""
    loop = asyncio.get_running_loop()
    stats = Stats()
    servers = [
        await loop.create_server(
            lambda: Upstream(stats, delay_ms / 1000.0), host, port, backlog=4096, reuse_address=True
        )
        for port in ports
    ]
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    where = ", ".join(f"http://{host}:{port}" for port in ports)
    print(f"fake_upstream: listening on {where} (pid {os.getpid()})", flush=True)
    await stop.wait()
    for server in servers:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, action="append", help="repeatable; default 18000")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="simulated model latency")
    args = parser.parse_args()
    ports = args.port or [18000]
    try:
        import uvloop
    except ImportError:  # plain asyncio still works, only slower
        print("fake_upstream: uvloop not found, using asyncio", file=sys.stderr)
        asyncio.run(serve(args.host, ports, args.delay_ms))
    else:
        uvloop.run(serve(args.host, ports, args.delay_ms))


if __name__ == "__main__":
    main()
