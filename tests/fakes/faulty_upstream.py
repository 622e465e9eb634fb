"""A Gemini API upstream that misbehaves on purpose, down to the bytes on the socket.

``FaultyUpstream`` serves ``/v1beta/models/{model}:generateContent`` and
``:streamGenerateContent?alt=sse`` on 127.0.0.1 from a thread of its own, with a raw asyncio
server (not an HTTP framework, so that it can break HTTP). Each request takes the next
scripted fault, else is answered normally:

    with FaultyUpstream() as upstream:
        upstream.script("hang")                  # the next request; times=None: every one
        ...
        upstream.requests[-1].path               # the raw request path, as sent

Faults (``upstream.script(kind, times=1, **opts)``):
  ok             a valid reply: Gemini JSON, or SSE events for a stream
  reset          the connection is reset (RST) as soon as the request is read
  hang           nothing is ever sent; the connection stays open until the client closes it
  garbage        bytes that are not HTTP, then the connection is closed
  big            a valid 200 of ``size`` bytes (default 10 MB), with Content-Length, or
                 chunked with ``chunked=True``; written 64 KiB at a time
  trickle        a 200 whose body comes one byte every ``interval`` s (default 0.005); for a
                 stream, after ``events`` whole events (default 0)
  html           a 200 with an HTML page (a captive portal, a proxy's login page)
  malformed      a 200 application/json whose body is ``body`` (default: JSON cut short)
  truncated_sse  a stream: ``events`` good events (default 1), half of one, then the
                 connection is closed without ending the chunked body

``active`` counts the requests still being answered (or hung on): a client that gives up
on a request must close its connection, which ends the answer (``open_connections`` also
counts idle keep-alive connections).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.gemini_upstream import build_generate_response, build_stream_chunks
from tests.fakes.sockets import tcp_listener

KINDS = ("ok", "reset", "hang", "garbage", "big", "trickle", "html", "malformed", "truncated_sse")
BLOCK = b"x" * 65536


@dataclass
class Request:
    """One request as received."""

    method: str
    path: str  # raw, as on the request line (query included)
    headers: dict[str, str]
    body: bytes

    @property
    def stream(self) -> bool:
        return ":streamGenerateContent" in self.path

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Script:
    kind: str
    times: int | None
    opts: dict[str, Any] = field(default_factory=dict)


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _head(status: str, content_type: str, length: int | None) -> bytes:
    lines = [f"HTTP/1.1 {status}", f"Content-Type: {content_type}"]
    lines.append(
        f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    )
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class _Closed(Exception):
    """The connection is done with (closed by either side)."""


class FaultyUpstream:
    """The fake; see the module docstring."""

    def __init__(self) -> None:
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._lock = threading.Lock()
        self._scripts: list[Script] = []
        self._requests: list[Request] = []
        self._writers: set[asyncio.StreamWriter] = set()
        self._active = 0

    # -- control, from the test's thread

    def start(self) -> FaultyUpstream:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def __enter__(self) -> FaultyUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._writers)

    @property
    def active(self) -> int:
        with self._lock:
            return self._active

    def script(self, kind: str, *, times: int | None = 1, **opts: Any) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {KINDS}")
        with self._lock:
            self._scripts.append(Script(kind, times, opts))

    def reset(self) -> None:
        """Forget scripts and requests; close every open connection."""
        with self._lock:
            self._scripts.clear()
            self._requests.clear()
        asyncio.run_coroutine_threadsafe(self._close_all(), self._loop).result(10)

    def _take(self) -> Script:
        with self._lock:
            if not self._scripts:
                return Script("ok", None)
            script = self._scripts[0]
            if script.times is not None:
                script.times -= 1
                if script.times <= 0:
                    self._scripts.pop(0)
            return script

    # -- the server, in its own thread

    async def _start(self) -> None:
        sock = tcp_listener()
        self.port = sock.getsockname()[1]
        self._server = await asyncio.start_server(self._handle, sock=sock)

    async def _close_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._close_all()

    async def _read_request(self, reader: asyncio.StreamReader) -> Request:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            raise _Closed from None
        line, *rest = head.decode("latin-1").split("\r\n")
        method, path, _ = line.split(" ", 2)
        headers = {}
        for item in rest:
            name, sep, value = item.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        return Request(method, path, headers, body)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self._lock:
            self._writers.add(writer)
        try:
            while True:
                request = await self._read_request(reader)
                with self._lock:
                    self._requests.append(request)
                    self._active += 1
                script = self._take()
                try:
                    await getattr(self, f"_{script.kind}")(request, reader, writer, **script.opts)
                finally:
                    with self._lock:
                        self._active -= 1
        except (_Closed, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            with self._lock:
                self._writers.discard(writer)
            writer.transport.abort()

    @staticmethod
    def _model(request: Request) -> str:
        return request.path.split("?")[0].rsplit("/", 1)[-1].split(":")[0]

    # -- answers and faults

    async def _ok(self, request: Request, reader: Any, writer: asyncio.StreamWriter) -> None:
        if not request.stream:
            body = json.dumps(build_generate_response(request.json, self._model(request)))
            writer.write(_head("200 OK", "application/json", len(body)) + body.encode())
            await writer.drain()
            return
        writer.write(_head("200 OK", "text/event-stream", None))
        for event in build_stream_chunks(request.json, self._model(request)):
            writer.write(_chunk(b"data: " + json.dumps(event).encode() + b"\r\n\r\n"))
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def _reset(self, request: Request, reader: Any, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        raise _Closed

    async def _hang(self, request: Request, reader: Any, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client closes the connection
        raise _Closed

    async def _garbage(self, request: Request, reader: Any, writer: asyncio.StreamWriter) -> None:
        writer.write(b"\x00\xff\xfeSSH-2.0-not-http\r\n\x1b[31m" + bytes(range(256)) * 4)
        await writer.drain()
        raise _Closed

    async def _big(
        self,
        request: Request,
        reader: Any,
        writer: asyncio.StreamWriter,
        size: int = 10 * 1024 * 1024,
        chunked: bool = False,
    ) -> None:
        reply = build_generate_response(request.json, self._model(request))
        reply["candidates"][0]["content"]["parts"] = [{"text": "@@"}]
        before, after = json.dumps(reply).encode().split(b"@@")
        text = max(0, size - len(before) - len(after))
        writer.write(_head("200 OK", "application/json", None if chunked else size))
        pieces = [before, *[BLOCK] * (text // len(BLOCK)), BLOCK[: text % len(BLOCK)], after]
        for piece in pieces:
            writer.write(_chunk(piece) if chunked else piece)
            await writer.drain()
        if chunked:
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    async def _trickle(
        self,
        request: Request,
        reader: Any,
        writer: asyncio.StreamWriter,
        interval: float = 0.005,
        events: int = 0,
    ) -> None:
        model = self._model(request)
        if request.stream:
            chunks = build_stream_chunks(request.json, model)
            writer.write(_head("200 OK", "text/event-stream", None))
            for event in chunks[:events]:
                writer.write(_chunk(b"data: " + json.dumps(event).encode() + b"\r\n\r\n"))
            body = b"data: " + json.dumps(chunks[events]).encode() + b"\r\n\r\n"
        else:
            body = json.dumps(build_generate_response(request.json, model)).encode()
            writer.write(_head("200 OK", "application/json", len(body)))
        for byte in body:
            writer.write(_chunk(bytes([byte])) if request.stream else bytes([byte]))
            await writer.drain()
            await asyncio.sleep(interval)
        raise _Closed

    async def _html(self, request: Request, reader: Any, writer: asyncio.StreamWriter) -> None:
        page = b"<!DOCTYPE html><html><body><h1>Please sign in</h1></body></html>"
        writer.write(_head("200 OK", "text/html; charset=utf-8", len(page)) + page)
        await writer.drain()

    async def _malformed(
        self,
        request: Request,
        reader: Any,
        writer: asyncio.StreamWriter,
        body: bytes = b'{"candidates": [{"content": {"parts": [{"text": "cut sho',
    ) -> None:
        if request.stream:
            writer.write(_head("200 OK", "text/event-stream", None))
            writer.write(_chunk(b"data: " + body + b"\r\n\r\n") + b"0\r\n\r\n")
        else:
            writer.write(_head("200 OK", "application/json", len(body)) + body)
        await writer.drain()

    async def _truncated_sse(
        self, request: Request, reader: Any, writer: asyncio.StreamWriter, events: int = 1
    ) -> None:
        chunks = build_stream_chunks(request.json, self._model(request))
        writer.write(_head("200 OK", "text/event-stream", None))
        for event in chunks[:events]:
            writer.write(_chunk(b"data: " + json.dumps(event).encode() + b"\r\n\r\n"))
        half = b"data: " + json.dumps(chunks[events]).encode()
        writer.write(_chunk(half[: len(half) // 2]))
        await writer.drain()
        with contextlib.suppress(ConnectionError):
            await asyncio.sleep(0.01)  # let it reach the client before the cut
        raise _Closed
