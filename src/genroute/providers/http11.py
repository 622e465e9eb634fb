"""`Http11Transport`: genroute's own pooled HTTP/1.1 client, the network behind every
provider.

Upstream calls are one shape: a request of known length (a JSON body), a reply read whole
or relayed chunk by chunk (SSE, AWS event streams), on keep-alive connections to a handful
of origins. A general client (aiohttp's: sessions, connectors, trace hooks, cookie jars,
redirects, a stream reader with its own buffers) spent about a quarter of a passthrough's
CPU on it; this one is an asyncio `Protocol` around httptools' parser (the one uvicorn's
server side uses), kept to what that shape needs:

* a pool of idle connections per scheme://host:port (newest reused first; one idle for
  longer than `keepalive_timeout`, or closed by the server, is dropped, never reused);
* the request written in one `write`; `Host`, `User-Agent` (unless given) and
  `Content-Length` added; a header name or value with CR or LF is refused (`ValueError`);
* the body handed over as the socket delivers it (chunked transfer decoded, gzip or
  deflate content decoded if a server sends it unasked), reading paused while more than
  1 MiB waits for the caller;
* `Timeout.total` for the whole exchange, `connect`, and `read` between two arrivals (not
  counted while data waits for a slow caller), each one timer handle, not a task;
* `TimeoutError` when one elapses, `ConnectionError` when a connection cannot be made,
  breaks, or the reply is not HTTP; a request on a reused connection that the server had
  already closed, before any byte of the reply, is sent once more on a new connection.

A response is closed by its caller: read to its end on a connection the server keeps, the
connection goes back to the pool; otherwise it is closed. No redirects are followed and no
proxy is used (the upstream APIs neither redirect nor need one).
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from collections import deque
from urllib.parse import urlsplit

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

from genroute.providers.transport import USER_AGENT, HttpRequest, HttpResponse, Timeout

__all__ = ["Http11Transport"]

_PAUSE_AT = 1 << 20  # body bytes waiting for the caller before the socket is paused
_JOIN_UNDER = 1 << 16  # bodies up to this size are sent in the same buffer as the head
_MAX_IDLE = 256  # idle connections kept per origin
_MAX_TARGETS = 1024  # parsed URLs remembered
_DECODED = ("gzip", "x-gzip", "deflate")
_SENDS_BODY = frozenset(("POST", "PUT", "PATCH"))


class _Target:
    """A URL as the client needs it: its pool's key, where to connect, what to send."""

    __slots__ = ("host", "host_header", "key", "port", "request_target", "tls")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConnectionError(f"not an http(s) URL: {url!r}")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        try:
            port = parts.port
        except ValueError as exc:
            raise ConnectionError(f"bad port in {url!r}: {exc}") from None
        self.port = port or (443 if self.tls else 80)
        self.key = (self.tls, self.host, self.port)
        netloc = parts.netloc.rpartition("@")[2]
        self.host_header = netloc
        target = parts.path or "/"
        if parts.query:
            target = f"{target}?{parts.query}"
        self.request_target = target


class _Connection(asyncio.Protocol):
    """One keep-alive connection, and the state of the exchange on it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.lost = False
        self.idle_since = 0.0
        self._reset()

    def _reset(self) -> None:
        self.active = False
        self.status = 0
        self.raw_headers: list[tuple[str, str]] = []
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.got_bytes = False
        self.error: BaseException | None = None
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.paused = False
        self.waiter: asyncio.Future[None] | None = None
        self.last_read = 0.0
        self.read_timeout: float | None = None
        self.timers: list[asyncio.TimerHandle] = []

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if not self.active:  # bytes nobody asked for: the connection is not reusable
            self.lost = True
            if self.transport is not None:
                self.transport.close()
            return
        self.got_bytes = True
        if self.read_timeout is not None:
            self.last_read = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.fail(ConnectionError(f"malformed reply from upstream: {exc}"))

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.active and not self.complete and self.error is None:
            if self.headers_done and self._ends_with_connection():
                self.complete = True
            else:
                detail = f": {exc}" if exc else ""
                self.error = ConnectionError(f"upstream closed the connection{detail}")
        self._wake()

    def _ends_with_connection(self) -> bool:
        """Whether the reply has neither a length nor chunks: its body runs to the close."""
        for name, value in self.raw_headers:
            lowered = name.lower()
            if lowered == "content-length":
                return False
            if lowered == "transfer-encoding" and "chunked" in value.lower():
                return False
        return True

    # -- httptools callbacks ------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.raw_headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.headers_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > _PAUSE_AT and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()
        self._wake()

    # -- the exchange -------------------------------------------------------------------

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def fail(self, error: BaseException) -> None:
        """End the exchange with `error` and drop the connection."""
        if self.error is None:
            self.error = error
        self.lost = True
        if self.transport is not None:
            self.transport.abort()
        self._wake()

    async def wait(self) -> None:
        """Until something happens: headers, a chunk, the end, or an error."""
        if self.error is not None:
            raise self.error
        self.waiter = self.loop.create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None
        if self.error is not None:
            raise self.error

    def start(self, head: bytes, body: bytes, timeout: Timeout) -> None:
        """Send a request and arm its timers."""
        self.active = True
        now = self.loop.time()
        if timeout.total is not None:
            self.timers.append(self.loop.call_at(now + timeout.total, self._expired, "total"))
        if timeout.read is not None:
            self.read_timeout = timeout.read
            self.last_read = now
            self.timers.append(self.loop.call_at(now + timeout.read, self._check_read))
        assert self.transport is not None
        if len(body) > _JOIN_UNDER:
            self.transport.writelines((head, body))
        else:  # one buffer, one send: a copy of a small body costs less than a second send
            self.transport.write(head + body)

    def _expired(self, which: str) -> None:
        self.fail(TimeoutError(f"the {which} timeout elapsed"))

    def _check_read(self) -> None:
        if self.complete or self.error is not None or self.read_timeout is None:
            return
        now = self.loop.time()
        if self.chunks or self.paused:  # data is waiting for the caller, not the upstream
            self.last_read = now
        due = self.last_read + self.read_timeout
        if now >= due:
            self.fail(TimeoutError("the read timeout elapsed"))
        else:
            self.timers.append(self.loop.call_at(due, self._check_read))

    def take(self) -> bytes | None:
        """The next body chunk if one is waiting (None if not)."""
        if not self.chunks:
            return None
        chunk = self.chunks.popleft()
        self.buffered -= len(chunk)
        if self.read_timeout is not None and not self.chunks:
            self.last_read = self.loop.time()  # the upstream's silence counts from now
        if self.paused and self.buffered <= _PAUSE_AT // 4 and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return chunk

    def finish(self) -> bool:
        """Disarm the timers; whether the connection can serve another request."""
        for timer in self.timers:
            timer.cancel()
        reusable = (
            self.complete
            and self.keep_alive
            and self.error is None
            and not self.chunks
            and not self.lost
            and not self.paused
        )
        if reusable:
            self._reset()
        return reusable

    def close(self) -> None:
        self.lost = True
        if self.transport is not None:
            self.transport.close()


class _Body:
    """A response body, chunk by chunk as it arrives (an async iterator, no generator)."""

    __slots__ = ("_conn", "_inflate")

    def __init__(self, conn: _Connection, inflate: zlib._Decompress | None) -> None:
        self._conn = conn
        self._inflate = inflate

    def __aiter__(self) -> _Body:
        return self

    async def __anext__(self) -> bytes:
        conn = self._conn
        while True:
            chunk = conn.take()
            if chunk is not None:
                if self._inflate is None:
                    return chunk
                chunk = self._decode(chunk)
                if chunk:
                    return chunk
                continue
            if conn.complete:
                if self._inflate is not None:
                    rest, self._inflate = self._inflate.flush(), None
                    if rest:
                        return rest
                raise StopAsyncIteration
            await conn.wait()

    def _decode(self, chunk: bytes) -> bytes:
        assert self._inflate is not None
        try:
            return self._inflate.decompress(chunk)
        except zlib.error as exc:
            self._conn.fail(ConnectionError(f"upstream body does not decompress: {exc}"))
            raise self._conn.error from None  # type: ignore[misc]

    async def read_all(self) -> bytes:
        parts = [chunk async for chunk in self]
        return parts[0] if len(parts) == 1 else b"".join(parts)


class Http11Transport:
    """Pooled HTTP/1.1 connections per origin, shared by every deployment on it."""

    def __init__(
        self, *, keepalive_timeout: float = 60.0, tls: ssl.SSLContext | None = None
    ) -> None:
        """`tls`: the context https connections verify with (the system's CAs if None)."""
        self._keepalive_timeout = keepalive_timeout
        self._idle: dict[tuple[bool, str, int], deque[_Connection]] = {}
        self._open: set[_Connection] = set()
        self._targets: dict[str, _Target] = {}
        self._tls = tls
        self._closed = False

    def _target(self, url: str) -> _Target:
        target = self._targets.get(url)
        if target is None:
            target = _Target(url)
            if len(self._targets) >= _MAX_TARGETS:
                self._targets.clear()
            self._targets[url] = target
        return target

    def _pooled(self, target: _Target, now: float) -> _Connection | None:
        idle = self._idle.get(target.key)
        while idle:
            conn = idle.pop()
            transport = conn.transport
            if conn.lost or transport is None or transport.is_closing():
                self._open.discard(conn)
                continue
            if now - conn.idle_since > self._keepalive_timeout:
                self._drop(conn)
                continue
            return conn
        return None

    async def _connect(self, target: _Target, limits: Timeout) -> _Connection:
        loop = asyncio.get_running_loop()
        tls: ssl.SSLContext | None = None
        if target.tls:
            if self._tls is None:
                self._tls = ssl.create_default_context()
            tls = self._tls
        limit = [t for t in (limits.connect, limits.total) if t is not None]
        try:
            async with asyncio.timeout(min(limit) if limit else None):
                _, conn = await loop.create_connection(
                    lambda: _Connection(loop),
                    target.host,
                    target.port,
                    ssl=tls,
                    server_hostname=target.host if tls else None,
                )
        except TimeoutError:
            raise TimeoutError(f"connecting to {target.host}:{target.port} timed out") from None
        except (OSError, ssl.SSLError) as exc:
            raise ConnectionError(f"cannot connect to {target.host}:{target.port}: {exc}") from None
        self._open.add(conn)
        return conn

    def _head(self, request: HttpRequest, target: _Target) -> bytes:
        lines = [f"{request.method} {target.request_target} HTTP/1.1\r\n"]
        given = set()
        for name, value in request.headers.items():
            given.add(name.lower())
            lines.append(f"{name}: {value}\r\n")
        if "host" not in given:
            lines.append(f"host: {target.host_header}\r\n")
        if "user-agent" not in given:
            lines.append(f"user-agent: {USER_AGENT}\r\n")
        if "content-length" not in given and (request.body or request.method in _SENDS_BODY):
            lines.append(f"content-length: {len(request.body)}\r\n")
        head = "".join(lines)
        header_part = head[len(lines[0]) :]
        # Each given header adds exactly one CR and one LF; more is an injected line.
        if header_part.count("\n") != len(lines) - 1 or header_part.count("\r") != len(lines) - 1:
            raise ValueError("a header name or value holds a newline or carriage return")
        return (head + "\r\n").encode("utf-8")

    async def send(self, request: HttpRequest) -> HttpResponse:
        if self._closed:
            raise ConnectionError("the transport is closed")
        target = self._target(request.url)
        head = self._head(request, target)
        loop = asyncio.get_running_loop()
        conn = self._pooled(target, loop.time())
        if conn is not None:
            try:
                return await self._exchange(conn, target, head, request)
            except ConnectionError:
                if conn.got_bytes:  # the server had begun to answer: not sent again
                    raise
        conn = await self._connect(target, request.timeout)
        return await self._exchange(conn, target, head, request)

    async def _exchange(
        self, conn: _Connection, target: _Target, head: bytes, request: HttpRequest
    ) -> HttpResponse:
        try:
            conn.start(head, request.body, request.timeout)
            while not conn.headers_done:
                await conn.wait()
        except BaseException:
            conn.finish()
            self._drop(conn)
            raise
        headers = CIMultiDict(conn.raw_headers)
        inflate = None
        encoding = headers.get("content-encoding", "").strip().lower()
        if encoding in _DECODED:
            inflate = zlib.decompressobj(47 if encoding != "deflate" else 15)
        body = _Body(conn, inflate)

        def release() -> None:
            if conn.finish() and not self._closed:
                conn.idle_since = conn.loop.time()
                idle = self._idle.setdefault(target.key, deque())
                if len(idle) < _MAX_IDLE:
                    idle.append(conn)
                    return
            self._drop(conn)

        return HttpResponse(
            conn.status,
            CIMultiDictProxy(headers),
            body,
            on_close=release,
            read_all=body.read_all,
        )

    def _drop(self, conn: _Connection) -> None:
        self._open.discard(conn)
        conn.close()

    async def aclose(self) -> None:
        self._closed = True
        self._idle.clear()
        conns, self._open = list(self._open), set()
        for conn in conns:
            conn.close()
