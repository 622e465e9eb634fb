"""Minimal ASGI plumbing: reading bounded bodies, sending JSON or Google-style errors with
header values made safe, and cancelling work when the client disconnects."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from typing import Any, TypeVar

import orjson

from genroute.errors import GenrouteError, PayloadTooLarge

__all__ = [
    "JSON_TYPE",
    "NO_CACHE",
    "SSE_TYPE",
    "WATCH_AFTER",
    "DisconnectWatch",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "cancel_on_disconnect",
    "header",
    "read_body",
    "safe_headers",
    "send_bytes",
    "send_error",
    "send_json",
    "wait_for_disconnect",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON_TYPE = (b"content-type", b"application/json; charset=utf-8")
SSE_TYPE = (b"content-type", b"text/event-stream")
NO_CACHE = (b"cache-control", b"no-cache")
# What HTTP/1.1 servers refuse in a header value (uvicorn drops the connection instead of
# answering): control characters other than tab, and DEL.
_UNSAFE_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
T = TypeVar("T")


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of a request header (name in lower case), or None."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


async def read_body(
    scope: Scope, receive: Receive, limit: int, within: float | None = None
) -> bytes:
    """The whole request body; PayloadTooLarge as soon as it is over `limit` bytes, a 408
    when it has not all arrived `within` seconds (a client trickling it in)."""
    declared = header(scope, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            f"request body is {int(declared)} bytes, over the limit of {limit} bytes "
            "(general_settings.max_request_size_mb)"
        )
    try:
        async with asyncio.timeout(within):
            return await _read(receive, limit)
    except TimeoutError:
        raise GenrouteError(
            f"the request body did not arrive within {within:g} s "
            "(general_settings.request_body_timeout)",
            code=408,
        ) from None


async def _read(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionAbortedError("client went away while sending the body")
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(
                    f"request body is over the limit of {limit} bytes "
                    "(general_settings.max_request_size_mb)"
                )
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def safe_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """`headers` with control characters in their values replaced by `?`: a header built
    from client input (a model name, an id) must never cost the client its reply."""
    if not any(_UNSAFE_VALUE.search(value) for _, value in headers):
        return headers
    return [(name, _UNSAFE_VALUE.sub(b"?", value)) for name, value in headers]


async def wait_for_disconnect(receive: Receive) -> None:
    """Return when the client disconnects (the request body must have been read)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


# Most calls end within a few milliseconds of their last byte arriving (a cached answer, a
# countTokens, a fast upstream): a call is watched for a disconnect only once it has run
# this long, so that those never start a watcher task. A client that leaves earlier is
# still noticed, this much later at most (uvicorn keeps the disconnect for `receive`).
WATCH_AFTER = 0.02


class DisconnectWatch:
    """Cancels the current task when the client disconnects: a watcher task reads
    `receive` (once the task has run `after` seconds); `stop` ends the watch and tells
    whether the client left (the task's cancellation was then ours, and is taken back)."""

    __slots__ = ("_handle", "_watcher", "fired", "receive", "task")

    def __init__(self, receive: Receive, after: float = WATCH_AFTER) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.task = task
        self.receive = receive
        self.fired = False
        self._watcher: asyncio.Task[None] | None = None
        self._handle: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(
            after, self._start
        )

    def _start(self) -> None:
        self._handle = None
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        await wait_for_disconnect(self.receive)
        self.fired = True
        self.task.cancel()

    def stop(self) -> bool:
        """Stop watching (idempotent); whether the client disconnected."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None
            if self.fired:
                self.task.uncancel()
        return self.fired


async def cancel_on_disconnect(work: Coroutine[Any, Any, T], receive: Receive) -> T:
    """Run `work` to its result, unless the client disconnects first: then `work` is
    cancelled (its layers release what they took and record the call as 499) and
    ConnectionAbortedError is raised. `work` runs in the calling task (no task of its own);
    see `DisconnectWatch`."""
    watch = DisconnectWatch(receive)
    try:
        return await work
    except asyncio.CancelledError:
        if watch.stop():
            raise ConnectionAbortedError("the client went away before the answer") from None
        raise
    finally:
        watch.stop()


async def send_bytes(
    send: Send,
    status: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]],
) -> None:
    """A complete response with a body."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*safe_headers(headers), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_json(send: Send, status: int, data: Any, headers: list[tuple[bytes, bytes]]) -> None:
    """A JSON response from plain data."""
    await send_bytes(send, status, orjson.dumps(data), [JSON_TYPE, *headers])


async def send_error(send: Send, error: GenrouteError, headers: list[tuple[bytes, bytes]]) -> None:
    """Google's error JSON with the error's HTTP code (and Retry-After where it has one)."""
    extra = [(k.encode(), v.encode()) for k, v in error.headers().items()]
    await send_json(send, error.code, error.to_body(), [*headers, *extra])
