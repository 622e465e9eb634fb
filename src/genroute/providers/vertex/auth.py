"""Vertex AI credentials and OAuth2 access tokens, cached and refreshed off the event loop.

    CredentialsRef.parse(params.vertex_credentials)   where the credentials come from
    token_source(ref)                                  the TokenSource shared by every
                                                       deployment with those credentials
    await source.token()                               a token valid for a while yet

`vertex_credentials` is a service-account JSON file's path, or that JSON itself (a string
or a mapping); without it, application default credentials: the file named by
$GOOGLE_APPLICATION_CREDENTIALS, else google-auth's `default()` (gcloud's login, the
metadata server). A service account gets its token by google-auth's JWT-bearer flow: an
RS256 assertion (iss = the account, aud = the JSON's `token_uri`, the cloud-platform scope)
posted to `token_uri`.

google-auth is synchronous, so loading and refreshing run in a worker thread: one refresh
at a time per credentials (a thread lock, whatever the event loop), and the callers of one
loop that find the token stale wait on the same refresh. A token is refreshed once fewer
than `REFRESH_MARGIN` seconds of it are left (google-auth's own threshold). Tokens are
never logged; errors name what failed, never a secret: credentials that cannot be loaded
or that the token endpoint refuses are 401 with reason AUTH (the deployment cools down,
others are tried), a token endpoint that cannot be reached is UNREACHABLE.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from genroute.errors import FailureReason, GenrouteError, UpstreamError, UpstreamUnavailable

__all__ = [
    "CLOUD_PLATFORM",
    "PROVIDER",
    "REFRESH_MARGIN",
    "TOKEN_TIMEOUT",
    "CredentialsRef",
    "TokenSource",
    "forget_token_sources",
    "load_credentials",
    "token_source",
]

log = logging.getLogger("genroute.providers.vertex")

PROVIDER = "vertex_ai"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
REFRESH_MARGIN = 225.0  # seconds: google-auth's REFRESH_THRESHOLD (3 min 45 s)
TOKEN_TIMEOUT = 30.0  # seconds allowed for one token request
_ADC_FILE = "GOOGLE_APPLICATION_CREDENTIALS"

#: Builds the google-auth transport a refresh goes through (tests give an in-memory one).
RequestFactory = Callable[[], Any]


@dataclass(frozen=True, slots=True)
class CredentialsRef:
    """Where one deployment's credentials come from: inline JSON, a file, or application
    default credentials. `value` (the JSON, or the path) is never printed."""

    kind: Literal["json", "file", "adc"]
    value: str = field(default="", repr=False)

    @classmethod
    def parse(cls, given: str | Mapping[str, Any] | None) -> CredentialsRef:
        """`vertex_credentials` as configured: a mapping or a string that is JSON (inline),
        another non-blank string (a path), or nothing (application defaults)."""
        if isinstance(given, Mapping):
            return cls("json", json.dumps(dict(given), sort_keys=True))
        text = (given or "").strip()
        if not text:
            return cls("adc")
        if text.startswith(("{", "[")):
            try:  # one spelling per JSON, so that equal credentials share their token
                return cls("json", json.dumps(json.loads(text), sort_keys=True))
            except ValueError:
                return cls("json", text)  # refused when first used, saying so
        return cls("file", os.path.expanduser(text))

    @property
    def key(self) -> tuple[str, str]:
        """What identifies these credentials: one TokenSource per key."""
        if self.kind == "json":
            return "json", hashlib.sha256(self.value.encode()).hexdigest()
        if self.kind == "file":
            return "file", os.path.realpath(self.value)
        return "adc", ""

    def describe(self) -> str:
        """For error messages: never the JSON, at most the path."""
        if self.kind == "json":
            return "the vertex_credentials JSON"
        if self.kind == "file" and len(self.value) <= 300 and self.value.isprintable():
            return f"the vertex_credentials file {self.value!r}"
        if self.kind == "file":  # something pasted that is not a path: never echo it
            return "the vertex_credentials file"
        return "application default credentials"


def _auth_error(message: str, code: int = 401) -> GenrouteError:
    return UpstreamError(message, code=code, provider=PROVIDER, reason=FailureReason.AUTH)


def _read_json(ref: CredentialsRef, text: str) -> dict[str, Any]:
    try:
        info = json.loads(text)
    except ValueError as exc:  # the message says where, not what was there
        raise _auth_error(f"{ref.describe()} is not JSON: {exc}") from None
    if not isinstance(info, dict):
        raise _auth_error(f"{ref.describe()} is not a JSON object")
    return info


def _from_info(ref: CredentialsRef, info: dict[str, Any]) -> tuple[Any, str | None]:
    """Credentials of the JSON's `type`, scoped for Vertex AI, and the project it names."""
    kind = info.get("type")
    scopes = [CLOUD_PLATFORM]
    try:
        if kind == "service_account":
            from google.oauth2 import service_account

            account: Any = service_account.Credentials
            return account.from_service_account_info(info, scopes=scopes), info.get("project_id")
        if kind == "authorized_user":
            from google.oauth2 import credentials as user

            owner: Any = user.Credentials
            return owner.from_authorized_user_info(info, scopes=scopes), info.get(
                "quota_project_id"
            )
        import google.auth

        loader: Any = google.auth.load_credentials_from_dict
        with warnings.catch_warnings():  # its warning is about untrusted configurations
            warnings.simplefilter("ignore", DeprecationWarning)
            found: tuple[Any, str | None] = loader(info, scopes=scopes)
        return found
    except (ValueError, KeyError) as exc:
        raise _auth_error(f"{ref.describe()} are not usable credentials: {exc}") from None
    except Exception as exc:  # google.auth.exceptions.DefaultCredentialsError
        raise _auth_error(f"{ref.describe()} could not be loaded: {exc}") from None


def load_credentials(ref: CredentialsRef) -> tuple[Any, str | None]:
    """(google-auth credentials, their project) for `ref`; blocking, run it in a thread."""
    if ref.kind == "json":
        return _from_info(ref, _read_json(ref, ref.value))
    path = ref.value if ref.kind == "file" else os.environ.get(_ADC_FILE, "").strip()
    if path:
        where = ref if ref.kind == "file" else CredentialsRef("file", path)
        try:
            with open(path, encoding="utf-8") as source:
                text = source.read()
        except OSError as exc:
            raise _auth_error(f"{where.describe()} cannot be read: {exc.strerror}") from None
        return _from_info(where, _read_json(where, text))
    import google.auth

    default: Any = google.auth.default
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            found: tuple[Any, str | None] = default(scopes=[CLOUD_PLATFORM])
    except Exception as exc:  # DefaultCredentialsError: none found
        raise _auth_error(f"no Vertex AI credentials: {exc}") from None
    return found


def _requests_transport() -> Any:
    from google.auth.transport.requests import Request

    return _TimedRequest(Request(), TOKEN_TIMEOUT)


class _TimedRequest:
    """A google-auth transport whose requests time out (google-auth's token requests
    give none)."""

    def __init__(self, inner: Any, timeout: float) -> None:
        self._inner = inner
        self._timeout = timeout

    def __call__(self, url: str, method: str = "GET", body: Any = None, headers: Any = None,
                 timeout: float | None = None, **kwargs: Any) -> Any:  # fmt: skip
        return self._inner(url, method, body, headers, timeout or self._timeout, **kwargs)


def _epoch(expiry: datetime | None) -> float | None:
    """google-auth's expiry (naive UTC) as seconds since the epoch."""
    if expiry is None:
        return None
    if expiry.tzinfo is None:
        expiry = expiry.replace(tzinfo=UTC)
    return expiry.timestamp()


class TokenSource:
    """The access token of one set of credentials: cached, refreshed before it expires, one
    refresh at a time; see the module docstring."""

    def __init__(
        self,
        ref: CredentialsRef,
        *,
        clock: Callable[[], float] = time.time,
        request: RequestFactory = _requests_transport,
    ) -> None:
        self.ref = ref
        self.clock = clock
        self._make_request = request
        self._lock = threading.Lock()  # held by the thread that refreshes
        self._guard = threading.Lock()  # guards `_pending`
        self._pending: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Future[str]]
        self._pending = weakref.WeakKeyDictionary()
        self._credentials: Any = None
        self._request: Any = None
        self._token: str | None = None
        self._expiry: float | None = None
        self.project_id: str | None = None  # the project the credentials name, once loaded
        self.quota_project: str | None = None  # sent as x-goog-user-project when set
        self.refreshes = 0  # tokens obtained so far

    def fresh(self) -> str | None:
        """The cached token if it has more than REFRESH_MARGIN seconds left, else None."""
        token, expiry = self._token, self._expiry
        if token is None:
            return None
        if expiry is not None and expiry - self.clock() <= REFRESH_MARGIN:
            return None
        return token

    def invalidate(self, token: str) -> None:
        """The upstream refused `token` (revoked, or expired early): the next call refreshes."""
        with self._guard:
            if self._token == token:
                self._token = None

    async def token(self) -> str:
        """A valid access token: the cached one, or a new one from a refresh in a thread."""
        if (token := self.fresh()) is not None:
            return token
        loop = asyncio.get_running_loop()
        with self._guard:
            pending = self._pending.get(loop)
            if pending is None:
                pending = loop.run_in_executor(None, self._refresh_blocking)
                self._pending[loop] = pending
                pending.add_done_callback(lambda done: self._forget(loop, done))
        # A caller that gives up (a client that left) does not cancel the shared refresh.
        return await asyncio.shield(pending)

    def _forget(self, loop: asyncio.AbstractEventLoop, done: asyncio.Future[str]) -> None:
        with self._guard:
            if self._pending.get(loop) is done:
                del self._pending[loop]
        if not done.cancelled():
            done.exception()  # retrieved: an error no caller awaited is not logged as lost

    def _refresh_blocking(self) -> str:
        with self._lock:
            if (token := self.fresh()) is not None:  # refreshed while we waited for the lock
                return token
            if self._credentials is None:
                credentials, project = load_credentials(self.ref)
                self._credentials, self.project_id = credentials, project
                self.quota_project = getattr(credentials, "quota_project_id", None)
            if self._request is None:
                self._request = self._make_request()
            self._refresh(self._credentials)
            token = str(self._credentials.token or "")
            if not token:
                raise _auth_error(f"{self.ref.describe()}: the token endpoint gave no token")
            self._token, self._expiry = token, _epoch(self._credentials.expiry)
            self.refreshes += 1
            left = "" if self._expiry is None else f" for {self._expiry - time.time():.0f}s"
            who = getattr(self._credentials, "service_account_email", None) or self.ref.kind
            log.debug("vertex_ai: new access token for %s, valid%s", who, left)
            return token

    def _refresh(self, credentials: Any) -> None:
        from google.auth import exceptions

        try:
            credentials.refresh(self._request)
        except exceptions.RefreshError as exc:
            if exc.retryable:
                raise UpstreamError(
                    f"vertex_ai token endpoint failed: {exc}",
                    code=503,
                    provider=PROVIDER,
                    reason=FailureReason.UPSTREAM_5XX,
                ) from None
            raise _auth_error(f"{self.ref.describe()} were refused: {exc}") from None
        except exceptions.TransportError as exc:
            raise UpstreamUnavailable(
                f"vertex_ai token endpoint unreachable: {exc}", provider=PROVIDER
            ) from None


_SOURCES: dict[tuple[str, str], TokenSource] = {}
_SOURCES_LOCK = threading.Lock()


def token_source(ref: CredentialsRef) -> TokenSource:
    """The TokenSource of `ref`, made on first use and shared by every deployment that uses
    the same credentials (the same JSON, the same file, or application defaults)."""
    with _SOURCES_LOCK:
        found = _SOURCES.get(ref.key)
        if found is None:
            found = _SOURCES[ref.key] = TokenSource(ref)
        return found


def forget_token_sources() -> None:
    """Drop every cached TokenSource (and its token): the next call loads credentials anew."""
    with _SOURCES_LOCK:
        _SOURCES.clear()
