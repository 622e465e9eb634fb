"""The HTTP plumbing of the admin UI: one request's path, query, cookies and form, and
the responses it sends (HTML, redirects, CSV, static files), all with the UI's security
headers. Plain ASGI, like the rest of the gateway."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode

from genroute.errors import InvalidRequest, PayloadTooLarge
from genroute.ui.security import security_headers

__all__ = [
    "FORM_LIMIT",
    "Receive",
    "Request",
    "Response",
    "Scope",
    "Send",
    "html",
    "redirect",
    "with_query",
]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

FORM_LIMIT = 64 * 1024
FORM_TIMEOUT = 30.0
HTML_TYPE = (b"content-type", b"text/html; charset=utf-8")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


@dataclass(slots=True)
class Request:
    """One request to the UI."""

    scope: Scope
    receive: Receive
    form: dict[str, str] = field(default_factory=dict)

    @property
    def method(self) -> str:
        return str(self.scope["method"])

    @property
    def path(self) -> str:
        return str(self.scope["path"]).rstrip("/") or "/"

    @property
    def query(self) -> dict[str, str]:
        raw = self.scope.get("query_string") or b""
        return dict(parse_qsl(raw.decode("latin-1"))) if raw else {}

    @property
    def secure(self) -> bool:
        """Whether the browser reached us over HTTPS, directly or through a proxy that says
        so (`X-Forwarded-Proto: https`): cookies are then Secure. Trusting the header is
        safe here: a client that sends it over plain HTTP only keeps its own cookie from
        coming back."""
        forwarded = (self.header("x-forwarded-proto") or "").split(",")[0].strip().lower()
        return self.scope.get("scheme") == "https" or forwarded == "https"

    @property
    def client(self) -> str:
        """The client's address, for the sign-in rate limit."""
        client = self.scope.get("client")
        return str(client[0]) if client else "unknown"

    def header(self, name: str) -> str | None:
        return _header(self.scope, name.lower().encode("latin-1"))

    def cookie(self, name: str) -> str | None:
        raw = self.header("cookie")
        if not raw:
            return None
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(raw)
        except CookieError:
            return None
        morsel = jar.get(name)
        return morsel.value if morsel is not None else None

    def same_origin(self) -> bool:
        """False when the browser says the request comes from another origin (the Origin
        header, sent with every POST by current browsers); True when it matches or is
        absent. The gateway's origin is its Host, or the X-Forwarded-Host a proxy in front
        of it sets (a form on another site cannot set that header)."""
        origin = self.header("origin")
        if origin is None:
            return True
        hosts = [self.header("host") or "", *(self.header("x-forwarded-host") or "").split(",")]
        return any(origin in (f"http://{h.strip()}", f"https://{h.strip()}") for h in hosts if h)

    async def read_form(self) -> dict[str, str]:
        """The url-encoded form body (at most FORM_LIMIT bytes); the last value of a name
        wins."""
        chunks: list[bytes] = []
        size = 0
        async with asyncio.timeout(FORM_TIMEOUT):
            while True:
                message = await self.receive()
                if message["type"] == "http.disconnect":
                    raise ConnectionAbortedError("client went away while sending the form")
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > FORM_LIMIT:
                    raise PayloadTooLarge(f"a form over {FORM_LIMIT} bytes")
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
        try:
            text = b"".join(chunks).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRequest("the form is not UTF-8") from None
        self.form = dict(parse_qsl(text, keep_blank_values=True))
        return self.form


@dataclass(slots=True)
class Response:
    """What a UI route answers."""

    status: int = 200
    body: bytes = b""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    content_type: tuple[bytes, bytes] = HTML_TYPE
    cache: bytes = b"no-store"

    async def send(self, send: Send, extra: list[tuple[bytes, bytes]]) -> None:
        headers = [
            self.content_type,
            (b"cache-control", self.cache),
            (b"content-length", str(len(self.body)).encode()),
            *security_headers(),
            *self.headers,
            *extra,
        ]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


def html(text: str, status: int = 200) -> Response:
    """An HTML page."""
    return Response(status, text.encode("utf-8"))


def redirect(location: str, *headers: tuple[bytes, bytes]) -> Response:
    """A 303 See Other (after a form: the browser GETs `location`)."""
    return Response(303, b"", [(b"location", location.encode("latin-1")), *headers])


def with_query(path: str, params: dict[str, Any]) -> str:
    """`path` with the non-empty `params` as its query string."""
    kept = {k: v for k, v in params.items() if v not in (None, "")}
    return f"{path}?{urlencode(kept)}" if kept else path
