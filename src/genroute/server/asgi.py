"""Minimal ASGI plumbing: reading bounded bodies and sending JSON or Google-style errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from genroute.errors import GenrouteError, PayloadTooLarge

__all__ = [
    "JSON_TYPE",
    "NO_CACHE",
    "SSE_TYPE",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "header",
    "read_body",
    "send_bytes",
    "send_error",
    "send_json",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON_TYPE = (b"content-type", b"application/json; charset=utf-8")
SSE_TYPE = (b"content-type", b"text/event-stream")
NO_CACHE = (b"cache-control", b"no-cache")


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of a request header (name in lower case), or None."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole request body; PayloadTooLarge as soon as it is over `limit` bytes."""
    declared = header(scope, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            f"request body is {int(declared)} bytes, over the limit of {limit} bytes "
            "(general_settings.max_request_size_mb)"
        )
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
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
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
