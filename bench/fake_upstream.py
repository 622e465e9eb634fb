"""A fast fake Gemini upstream for the genroute benchmark.

A raw asyncio ``Protocol`` HTTP/1.1 server (on uvloop when available) with pre-rendered
responses, so that it is not the bottleneck of the benchmark:

* ``POST .../models/<m>:generateContent`` → a ~1 KB ``GenerateContentResponse``;
* ``POST .../models/<m>:streamGenerateContent?alt=sse`` → 5 SSE events
  (``data: {json}\\r\\n\\r\\n``, deltas, ``finishReason`` and ``usageMetadata`` on the last),
  sent with ``Transfer-Encoding: chunked``, one chunk per event; without ``alt=sse`` the
  same five objects as one JSON array;
* ``GET /__stats`` → ``{"paths": {"POST /path?alt": count, ...}}``, the request lines seen
  (query parameter names only), so the benchmark can show which upstream path each gateway calls;
* anything else → a Google-shaped 404, logged once per path on stderr.

A request without ``x-goog-api-key`` (or ``?key=``, which Google also accepts) gets Google's
403 ``PERMISSION_DENIED``. Request bodies are read by ``Content-Length`` or chunked framing
and ignored. Keep-alive is the default; ``Connection: close`` is honoured. ``--delay-ms``
holds each response back to simulate model latency (for a stream, before the first event).

Run: ``python bench/fake_upstream.py --port 18000 [--delay-ms 0]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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
            if self.delay > 0 and response is not R_403 and response is not R_400:
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
        del buf[:stop]
        conn = headers.get(b"connection", b"").lower()
        close = conn == b"close" or (version == b"HTTP/1.0" and conn != b"keep-alive")
        return self._route(method, target, headers), close

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

    def _route(self, method: bytes, target: bytes, headers: dict[bytes, bytes]) -> bytes:
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
        has_key = bool(headers.get(b"x-goog-api-key")) or b"key=" in query
        if path.endswith(b":generateContent"):
            return R_JSON if has_key else R_403
        if path.endswith(b":streamGenerateContent"):
            if not has_key:
                return R_403
            return R_SSE if b"alt=sse" in query else R_ARRAY
        return _http("404 Not Found", JSON, _dumps(_error(404, "NOT_FOUND", f"no route {key}")))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(host: str, port: int, delay_ms: float) -> None:
    """Serve until SIGTERM/SIGINT."""
    loop = asyncio.get_running_loop()
    stats = Stats()
    server = await loop.create_server(
        lambda: Upstream(stats, delay_ms / 1000.0), host, port, backlog=4096, reuse_address=True
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"fake_upstream: listening on http://{host}:{port} (pid {os.getpid()})", flush=True)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18000)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="simulated model latency")
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:  # plain asyncio still works, only slower
        print("fake_upstream: uvloop not found, using asyncio", file=sys.stderr)
        asyncio.run(serve(args.host, args.port, args.delay_ms))
    else:
        uvloop.run(serve(args.host, args.port, args.delay_ms))


if __name__ == "__main__":
    main()
