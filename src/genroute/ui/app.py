"""`AdminUI`: the admin web UI the gateway serves at /ui.

    GET  /ui                 the sign-in form ("Master key", "Sign in"), or on to Keys
    POST /ui/login           sign in: a session cookie, never the key itself
    POST /ui/logout          sign out
    GET  /ui/keys            keys, teams and end users (create, edit, block, delete)
    GET  /ui/spend           spend over time (chart and table), /ui/spend.csv
    GET  /ui/logs            the latest calls, live; /ui/logs/rows, /ui/logs/detail
    GET  /ui/models          each model group's deployments and their health
    GET  /ui/static/<file>   the UI's own CSS and scripts (htmx, vendored)

Every page but the sign-in form needs a session; every POST needs the session's CSRF
token and must come from the gateway's own origin. Pages read and write only through the
management API (`Management`), as the master key would over HTTP.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Awaitable, Callable

from genroute.errors import GenrouteError
from genroute.ui import entities, logs, models, spend
from genroute.ui.context import HERE, Management, Page, Templates
from genroute.ui.http import Receive, Request, Response, Scope, Send, html, redirect
from genroute.ui.security import (
    LOGIN_COOKIE,
    LOGIN_COOKIE_TTL,
    SESSION_COOKIE,
    SessionSigner,
    SignInLimiter,
    cookie,
    expired_cookie,
)

__all__ = ["DEFAULT_SESSION_TTL", "PREFIX", "AdminUI"]

log = logging.getLogger("genroute.ui")

PREFIX = "/ui"
DEFAULT_SESSION_TTL = 8 * 3600.0
Handler = Callable[[Page], Awaitable[Response]]
STATIC = {
    "htmx.min.js": b"text/javascript; charset=utf-8",
    "app.js": b"text/javascript; charset=utf-8",
    "app.css": b"text/css; charset=utf-8",
}


class AdminUI:
    """The admin UI: routes, sessions and security around the page handlers."""

    def __init__(
        self,
        management: Management | None,
        master_key: str | None,
        *,
        session_ttl: float = DEFAULT_SESSION_TTL,
    ) -> None:
        self.management = management
        self.signer = SessionSigner(master_key, session_ttl) if master_key else None
        self.limiter = SignInLimiter()
        # Read once: a handful of small files, named in pages with a hash of their content,
        # so that browsers may keep them (a new version has a new URL).
        self.static = {name: (HERE / "static" / name).read_bytes() for name in STATIC}
        self.templates = Templates(
            {name: hashlib.sha256(body).hexdigest()[:12] for name, body in self.static.items()}
        )
        self.routes: dict[tuple[str, str], Handler] = {
            ("GET", "/ui/spend"): spend.page,
            ("GET", "/ui/spend.csv"): spend.csv_download,
            ("GET", "/ui/logs"): logs.page,
            ("GET", "/ui/logs/rows"): logs.rows,
            ("GET", "/ui/logs/detail"): logs.detail,
            ("GET", "/ui/models"): models.page,
            **entities.routes(),
        }

    @staticmethod
    def handles(path: str) -> bool:
        """Whether a path is the UI's."""
        return path == PREFIX or path.startswith(PREFIX + "/")

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send, headers: list[tuple[bytes, bytes]]
    ) -> None:
        request = Request(scope, receive)
        try:
            response = await self._respond(request)
        except GenrouteError as exc:
            if exc.code >= 500:
                log.warning("admin UI: %s %s", exc.code, exc.message)
            response = self._message("Something went wrong", exc.message, exc.code)
        except ConnectionAbortedError:
            return
        except Exception:
            log.exception("admin UI: %s %s failed", request.method, request.path)
            response = self._message("Something went wrong", "An internal error: see the log.", 500)
        await response.send(send, headers)

    def _message(self, title: str, text: str, status: int) -> Response:
        page = self.templates.render("message.html", title=title, text=text, signed_in=False)
        return html(page, status)

    async def _respond(self, request: Request) -> Response:
        path, method = request.path, request.method
        if path.startswith("/ui/static/"):
            return self._static(path.removeprefix("/ui/static/"), method)
        if self.signer is None or self.management is None:
            return self._message(
                "The admin UI needs a master key",
                "Set general_settings.master_key (or GENROUTE_MASTER_KEY for the embedded "
                "default) and restart the gateway to sign in here.",
                503,
            )
        if path == PREFIX and method in ("GET", "HEAD"):
            return self._sign_in_page(request)
        if path == "/ui/login" and method == "POST":
            return await self._sign_in(request)
        session = self.signer.check(request.cookie(SESSION_COOKIE))
        handler = self.routes.get((method, path))
        if path == "/ui/logout" and method == "POST":
            handler = self._sign_out
        if handler is None:
            known = any(p == path for _, p in self.routes)
            return self._message("Not found", f"No page {path}", 405 if known else 404)
        if session is None:
            if request.header("hx-request"):  # a live fragment: send the whole page to sign-in
                return Response(401, b"", [(b"hx-redirect", PREFIX.encode())])
            if method == "GET":
                return redirect(PREFIX)
            return self._message("Signed out", "Your session has ended: sign in again.", 401)
        page = Page(request, session, self.signer, self.management, self.templates)
        if method == "POST":
            await request.read_form()
            if not request.same_origin() or not self.signer.csrf_ok(
                session.sid, request.form.get("csrf_token")
            ):
                return self._message(
                    "Refused",
                    "This form did not come from this page or has expired (CSRF check). "
                    "Reload the page and try again.",
                    403,
                )
        return await handler(page)

    def _static(self, name: str, method: str) -> Response:
        body = self.static.get(name)
        if body is None or method not in ("GET", "HEAD"):
            return self._message("Not found", "No such file", 404)
        return Response(
            200,
            body,
            content_type=(b"content-type", STATIC[name]),
            cache=b"public, max-age=31536000, immutable",
        )

    def _sign_in_page(
        self, request: Request, error: str | None = None, status: int = 200
    ) -> Response:
        """The sign-in form, with a fresh pre-session nonce its CSRF token is bound to."""
        assert self.signer is not None
        if error is None and self.signer.check(request.cookie(SESSION_COOKIE)) is not None:
            return redirect("/ui/keys")
        nonce = request.cookie(LOGIN_COOKIE) or ""
        if not re.fullmatch(r"[0-9a-f]{32}", nonce):  # keep it: a second tab's form still works
            nonce = self.signer.issue()[0].sid
        text = self.templates.render(
            "login.html", csrf=self.signer.csrf(f"login.{nonce}"), error=error, signed_in=False
        )
        response = html(text, status)
        response.headers.append(cookie(LOGIN_COOKIE, nonce, LOGIN_COOKIE_TTL, request.secure))
        return response

    async def _sign_in(self, request: Request) -> Response:
        assert self.signer is not None
        form = await request.read_form()
        nonce = request.cookie(LOGIN_COOKIE)
        if not request.same_origin() or not self.signer.csrf_ok(
            f"login.{nonce}" if nonce else None, form.get("csrf_token")
        ):
            return self._sign_in_page(
                request, "The sign-in form expired or did not come from this page.", 403
            )
        wait = self.limiter.retry_after(request.client)
        if wait is not None:
            response = self._sign_in_page(
                request, f"Too many sign-in attempts: try again in {wait} s.", 429
            )
            response.headers.append((b"retry-after", str(wait).encode()))
            return response
        if not self.signer.is_master(form.get("master_key", "")):
            self.limiter.failed(request.client)
            log.warning("admin UI: a failed sign-in from %s", request.client)
            return self._sign_in_page(request, "That is not the master key.", 401)
        self.limiter.succeeded(request.client)
        _, token = self.signer.issue()
        return redirect(
            "/ui/keys",
            cookie(SESSION_COOKIE, token, self.signer.ttl, request.secure),
            expired_cookie(LOGIN_COOKIE, request.secure),
        )

    async def _sign_out(self, page: Page) -> Response:
        if page.session is not None:
            page.signer.revoke(page.session)
        return redirect(PREFIX, expired_cookie(SESSION_COOKIE, page.request.secure))
