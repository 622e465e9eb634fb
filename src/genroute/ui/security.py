"""The admin UI's sessions, CSRF tokens, sign-in rate limit and security headers.

Sessions are signed tokens, not server state, so that every instance (and every worker)
of a gateway accepts a session signed by any other: `sid.expiry.signature`, with an
HMAC-SHA256 key derived from the master key. The master key itself is never put in a
cookie, a page or a URL; changing it ends every session. Signing out deletes the cookie
and revokes the session in this process (a token copied before then stays valid on other
instances until it expires, `general_settings.ui_session_ttl`).

CSRF: every form carries a token bound to the session (or, for the sign-in form, to a
random pre-session cookie), an HMAC only the gateway can compute; a POST without the
right one, or from another origin, is refused with 403. Cookies are HttpOnly,
SameSite=Strict, limited to `/ui`, Secure over HTTPS, and expire.

Sign-in is rate limited per client address and in total (`SignInLimiter`): past the
limit even the right key is refused until the window has passed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "CSP",
    "LOGIN_COOKIE",
    "SESSION_COOKIE",
    "Session",
    "SessionSigner",
    "SignInLimiter",
    "cookie",
    "expired_cookie",
    "security_headers",
]

SESSION_COOKIE = "genroute_ui_session"
LOGIN_COOKIE = "genroute_ui_login"
LOGIN_COOKIE_TTL = 3600
COOKIE_PATH = "/ui"

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def security_headers() -> list[tuple[bytes, bytes]]:
    """The headers on every UI response: a strict CSP (scripts and styles from the gateway
    only, no inline script), no framing, no sniffing, no referrer to other sites (a form needs its
    Origin header)."""
    return [
        (b"content-security-policy", CSP.encode()),
        (b"x-frame-options", b"DENY"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
        (b"cross-origin-opener-policy", b"same-origin"),
        (b"cross-origin-resource-policy", b"same-origin"),
    ]


def cookie(name: str, value: str, max_age: int, secure: bool) -> tuple[bytes, bytes]:
    """A Set-Cookie header: HttpOnly, SameSite=Strict, Path=/ui, expiring."""
    expires = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + max_age))
    parts = [
        f"{name}={value}",
        f"Path={COOKIE_PATH}",
        f"Max-Age={max_age}",
        f"Expires={expires}",
        "HttpOnly",
        "SameSite=Strict",
    ]
    if secure:
        parts.append("Secure")
    return b"set-cookie", "; ".join(parts).encode("latin-1")


def expired_cookie(name: str, secure: bool) -> tuple[bytes, bytes]:
    """A Set-Cookie header that deletes the cookie."""
    parts = [f"{name}=", f"Path={COOKIE_PATH}", "Max-Age=0", "HttpOnly", "SameSite=Strict"]
    if secure:
        parts.append("Secure")
    return b"set-cookie", "; ".join(parts).encode("latin-1")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser: its id and when it expires (epoch seconds)."""

    sid: str
    expires: int


class SessionSigner:
    """Issues and checks session tokens and CSRF tokens with a key derived from the
    master key (every instance derives the same one)."""

    def __init__(self, master_key: str, ttl: float, clock: Callable[[], float] = time.time) -> None:
        self._key = hmac.new(master_key.encode(), b"genroute admin ui v1", hashlib.sha256).digest()
        self._master = hashlib.sha256(master_key.encode()).digest()
        self.master_hash = self._master.hex()  # how the ledger names the master key's calls
        self.ttl = int(ttl)
        self.clock = clock
        self._revoked: OrderedDict[str, int] = OrderedDict()

    def _mac(self, text: str) -> str:
        return _b64(hmac.new(self._key, text.encode(), hashlib.sha256).digest())

    def is_master(self, key: str) -> bool:
        """Whether `key` is the master key (compared as SHA-256 digests, in constant time)."""
        return hmac.compare_digest(hashlib.sha256(key.encode()).digest(), self._master)

    def issue(self) -> tuple[Session, str]:
        """A new session and its token."""
        session = Session(secrets.token_hex(16), int(self.clock()) + self.ttl)
        body = f"{session.sid}.{session.expires}"
        return session, f"{body}.{self._mac(body)}"

    def check(self, token: str | None) -> Session | None:
        """The session a token stands for, or None (forged, expired or signed out)."""
        if not token or len(token) > 200:
            return None
        parts = token.split(".")
        if len(parts) != 3 or not parts[1].isdigit():
            return None
        sid, expires, mac = parts
        if not hmac.compare_digest(mac, self._mac(f"{sid}.{expires}")):
            return None
        if int(expires) <= self.clock() or sid in self._revoked:
            return None
        return Session(sid, int(expires))

    def revoke(self, session: Session) -> None:
        """Sign a session out in this process (bounded: expired revocations are dropped)."""
        now = self.clock()
        while self._revoked and (next(iter(self._revoked.values())) <= now):
            self._revoked.popitem(last=False)
        if len(self._revoked) >= 100_000:
            self._revoked.popitem(last=False)
        self._revoked[session.sid] = session.expires

    def csrf(self, bound_to: str) -> str:
        """The CSRF token of a session id (or of a sign-in form's nonce)."""
        return self._mac(f"csrf.{bound_to}")

    def csrf_ok(self, bound_to: str | None, token: str | None) -> bool:
        """Whether a submitted CSRF token is the one for `bound_to`."""
        if not bound_to or not token:
            return False
        return hmac.compare_digest(token, self.csrf(bound_to))


class SignInLimiter:
    """Failed sign-ins allowed per client address (`per_client` in `window` seconds) and
    in total (`overall`); past either, sign-in is refused until the window has passed."""

    def __init__(
        self,
        per_client: int = 5,
        overall: int = 100,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_client = per_client
        self.overall = overall
        self.window = window
        self.clock = clock
        self._clients: OrderedDict[str, deque[float]] = OrderedDict()
        self._all: deque[float] = deque()

    def _trim(self, times: deque[float], now: float) -> None:
        while times and times[0] <= now - self.window:
            times.popleft()

    def retry_after(self, client: str) -> int | None:
        """Seconds until `client` may try again, or None when it may now."""
        now = self.clock()
        self._trim(self._all, now)
        times = self._clients.get(client)
        if times is not None:
            self._trim(times, now)
            if len(times) >= self.per_client:
                return max(1, int(times[0] + self.window - now + 0.999))
        if len(self._all) >= self.overall:
            return max(1, int(self._all[0] + self.window - now + 0.999))
        return None

    def failed(self, client: str) -> None:
        """Count a failed sign-in."""
        now = self.clock()
        times = self._clients.pop(client, None) or deque()
        times.append(now)
        self._clients[client] = times
        self._all.append(now)
        while len(self._clients) > 10_000:  # bounded: forget the least recent clients
            self._clients.popitem(last=False)

    def succeeded(self, client: str) -> None:
        """Forget a client's failures once it has signed in."""
        self._clients.pop(client, None)
