"""uvicorn's httptools protocol, with the limits on slow and idle clients it lacks.

uvicorn closes a kept-alive connection that stays idle after a response
(`timeout_keep_alive`), but it has no deadline for a request's headers: a client that
connects and sends nothing, or sends half its headers, holds the connection for ever. This
protocol adds one:

- the request line and headers must arrive within `request_header_timeout` seconds of the
  connection opening (or, on a kept-alive connection, of the request's first byte): past
  it, a partial request gets a 408 and the connection is closed, a connection that sent
  nothing is closed;
- they must fit in MAX_HEADER_BYTES (431 and closed otherwise), since httptools buffers a
  header however long it grows;
- over `max_connections` open connections (or requests in flight), a request gets
  Google's 503 JSON and the connection is closed (uvicorn's own limit answers in plain
  text).

Writes are coalesced (`CoalescingTransport`): what the app sends in one step of the event
loop (a response's headers and body; the stream events relayed from one upstream read)
goes to the socket in one write at the end of that step, instead of one system call each.

The body's deadline (`request_body_timeout`) is the ASGI app's, in `asgi.read_body`. The
values come from the app (`GatewayApp.header_timeout`, `.max_connections`), so the
protocol can be named by its import path and serve uvicorn's worker processes too:
`uvicorn.run(..., http=GuardedHttpToolsProtocol)`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from genroute.errors import GenrouteError
from genroute.server.asgi import JSON_TYPE, Receive, Scope, Send

__all__ = [
    "DEFAULT_HEADER_TIMEOUT",
    "MAX_HEADER_BYTES",
    "CoalescingTransport",
    "GuardedHttpToolsProtocol",
    "busy",
    "settings_of",
]

DEFAULT_HEADER_TIMEOUT = 10.0
MAX_HEADER_BYTES = 64 * 1024


def _reply(status: int, message: str) -> bytes:
    body = orjson.dumps(GenrouteError(message, code=status).to_body())
    reason = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}[status]
    return b"".join(
        [
            b"HTTP/1.1 %d %s\r\n" % (status, reason),
            b"content-type: application/json; charset=utf-8\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            body,
        ]
    )


async def busy(scope: Scope, receive: Receive, send: Send) -> None:
    """The answer over the connection limit: Google's 503 JSON, and the connection closed."""
    error = GenrouteError(
        "the gateway has as many connections as it takes (general_settings.max_connections); "
        "retry shortly",
        code=503,
        retry_after=1,
    )
    body = orjson.dumps(error.to_body())
    headers = [
        JSON_TYPE,
        (b"retry-after", b"1"),
        (b"connection", b"close"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def settings_of(app: Any) -> tuple[float, int | None]:
    """(header timeout, connection limit) of the genroute app inside uvicorn's wrappers."""
    for _ in range(8):
        timeout = getattr(app, "header_timeout", None)
        if timeout is not None:
            return float(timeout), getattr(app, "max_connections", None)
        app = getattr(app, "app", None)
        if app is None:
            break
    return DEFAULT_HEADER_TIMEOUT, None


class CoalescingTransport:
    """A transport whose writes made in one step of the event loop reach the socket as one
    write, when the step ends (`loop.call_soon`): no later than the next thing the loop
    does, so nothing waits on it. Closing writes what is pending first; everything else
    is the wrapped transport's."""

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None

    def write(self, data: bytes) -> None:
        pending = self._pending
        if pending is None:
            self._pending = [data]
            self._loop.call_soon(self.flush)
        else:
            pending.append(data)

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def flush(self) -> None:
        """Write what is pending now."""
        pending, self._pending = self._pending, None
        if pending and not self._transport.is_closing():  # a client gone: nothing to write
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def get_write_buffer_size(self) -> int:
        pending = sum(map(len, self._pending)) if self._pending else 0
        return self._transport.get_write_buffer_size() + pending

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._pending = None
        self._transport.abort()

    # What uvicorn calls on every request, forwarded without `__getattr__`'s failed lookup.
    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with a header deadline, a header size limit and a Google-shaped
    connection limit (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout, limit = settings_of(self.app)
        # The limit is checked here (a JSON 503), not by uvicorn (plain text).
        self.max_connections = limit if limit is not None else self.limit_concurrency
        self.limit_concurrency = None
        self._header_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0

    # -- the header deadline ---------------------------------------------------------------

    def _arm(self) -> None:
        if self._header_timer is None:
            self._head_bytes = 0
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self._arm()  # a request is still being answered; the next one waits its turn
            return
        if self._head_bytes:
            message = (
                f"the request's headers did not arrive within {self.header_timeout:g} s "
                "(general_settings.request_header_timeout)"
            )
            self.transport.write(_reply(408, message))
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._header_timer is None or self.transport.is_closing():
            return
        self._head_bytes += len(data)
        if self._head_bytes > MAX_HEADER_BYTES:
            self._disarm()
            message = f"the request line and headers are over {MAX_HEADER_BYTES} bytes"
            self.transport.write(_reply(431, message))
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        limit = self.max_connections
        if limit is not None and (len(self.connections) > limit or len(self.tasks) >= limit):
            app, self.app = self.app, busy
            try:
                super().on_headers_complete()
            finally:
                self.app = app
            return
        super().on_headers_complete()
