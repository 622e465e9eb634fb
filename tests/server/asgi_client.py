"""Calling the gateway's ASGI app in process (no socket): one request, its status, headers
and body, with a time limit; and the Google error shape every refusal must have."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

__all__ = ["Reply", "asgi_request", "google_error"]


class Reply:
    """What the app sent: status, headers (lower-case names; the last value wins), body."""

    def __init__(self, messages: list[dict[str, Any]]) -> None:
        assert messages, "the app sent nothing"
        start = messages[0]
        assert start["type"] == "http.response.start", start
        self.status: int = start["status"]
        self.raw_headers: list[tuple[bytes, bytes]] = list(start["headers"])
        self.headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in self.raw_headers}
        self.body = b"".join(m.get("body", b"") for m in messages[1:])

    def json(self) -> Any:
        return orjson.loads(self.body)

    def __repr__(self) -> str:
        return f"Reply({self.status}, {self.body[:300]!r})"


async def asgi_request(
    app: Any,
    method: str,
    path: str,
    body: bytes = b"",
    headers: list[tuple[bytes, bytes]] | dict[str, str] | None = None,
    query: bytes = b"",
    limit: float = 10.0,
) -> Reply:
    """One request straight into an ASGI app; fails if it takes over `limit` seconds.
    The client stays connected until the reply is complete."""
    if isinstance(headers, dict):
        headers = [(k.lower().encode(), v.encode("utf-8")) for k, v in headers.items()]
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode("utf-8", "surrogateescape"),
        "query_string": query,
        "headers": list(headers or []),
    }
    delivered = False
    done = asyncio.Event()
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            done.set()

    try:
        await asyncio.wait_for(app(scope, receive, send), limit)
    except TimeoutError:
        raise AssertionError(f"{method} {path} hung for over {limit}s") from None
    return Reply(messages)


def google_error(reply: Reply) -> dict[str, Any]:
    """The `error` object of a Google-shaped error reply (asserting the shape)."""
    assert reply.headers.get("content-type", "").startswith("application/json"), reply
    data = reply.json()
    assert isinstance(data, dict) and set(data) == {"error"}, reply
    error = data["error"]
    assert error["code"] == reply.status, reply
    assert isinstance(error["message"], str) and error["message"], reply
    assert isinstance(error["status"], str) and error["status"].isupper(), reply
    return dict(error)
