"""genroute's exception tree, and its mapping to Google's error JSON.

    GenrouteError                 code, status, message, details, retry_after, provider
    ├── InvalidRequest            400 INVALID_ARGUMENT   (names the bad field)
    ├── Unauthenticated           401 UNAUTHENTICATED
    ├── PermissionDenied          403 PERMISSION_DENIED
    ├── NotFound                  404 NOT_FOUND
    ├── PayloadTooLarge           413 INVALID_ARGUMENT
    ├── RateLimited               429 RESOURCE_EXHAUSTED (with RetryInfo)
    └── UpstreamError             an upstream's own code and status, passed on
        ├── UpstreamTimeout       504 DEADLINE_EXCEEDED
        └── UpstreamUnavailable   503 UNAVAILABLE (connection refused, reset, ...)

Inside genroute code raises these; only the HTTP edge turns them into JSON bodies.
"""

from __future__ import annotations

import math
from typing import Any

STATUS_BY_CODE: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    412: "FAILED_PRECONDITION",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def status_for(code: int) -> str:
    """The google.rpc status name that fits an HTTP code."""
    if code in STATUS_BY_CODE:
        return STATUS_BY_CODE[code]
    if 400 <= code < 500:
        return "FAILED_PRECONDITION"
    return "UNKNOWN" if code < 500 else "INTERNAL"


def retry_delay_text(seconds: float) -> str:
    """A google.protobuf.Duration as JSON writes it, e.g. `7s` or `0.5s`."""
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{seconds:.3f}".rstrip("0") + "s"


class GenrouteError(Exception):
    """Base of every error genroute raises; carries what the HTTP edge needs."""

    code: int = 500
    status: str = "INTERNAL"

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        status: str | None = None,
        details: list[dict[str, Any]] | None = None,
        retry_after: float | None = None,
        provider: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        elif code is not None:
            self.status = status_for(code)
        self.details = list(details) if details else []
        self.retry_after = retry_after
        self.provider = provider

    def to_body(self) -> dict[str, Any]:
        """Google's error JSON: `{"error": {"code", "message", "status", "details"?}}`."""
        error: dict[str, Any] = {"code": self.code, "message": self.message, "status": self.status}
        details = list(self.details)
        if self.retry_after is not None and not any(
            str(d.get("@type", "")).endswith("google.rpc.RetryInfo") for d in details
        ):
            details.append(
                {
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": retry_delay_text(self.retry_after),
                }
            )
        if details:
            error["details"] = details
        return {"error": error}

    def headers(self) -> dict[str, str]:
        """Extra HTTP headers for this error (Retry-After for rate limits)."""
        if self.retry_after is None:
            return {}
        return {"retry-after": str(max(0, math.ceil(self.retry_after)))}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code} {self.status}: {self.message!r})"


class InvalidRequest(GenrouteError):
    """The request is malformed or a field has the wrong type or value."""

    code = 400
    status = "INVALID_ARGUMENT"


class Unauthenticated(GenrouteError):
    """The key is not valid."""

    code = 401
    status = "UNAUTHENTICATED"


class PermissionDenied(GenrouteError):
    """No key was given, or the key may not do this."""

    code = 403
    status = "PERMISSION_DENIED"


class NotFound(GenrouteError):
    """No such model or route."""

    code = 404
    status = "NOT_FOUND"


class PayloadTooLarge(GenrouteError):
    """The request body is over the configured limit."""

    code = 413
    status = "INVALID_ARGUMENT"


class RateLimited(GenrouteError):
    """A rate limit or quota was hit; `retry_after` says when to try again."""

    code = 429
    status = "RESOURCE_EXHAUSTED"


class UpstreamError(GenrouteError):
    """An upstream provider answered with an error, passed on with its own code."""

    code = 502
    status = "UNAVAILABLE"


class UpstreamTimeout(UpstreamError):
    """The upstream did not answer in time."""

    code = 504
    status = "DEADLINE_EXCEEDED"


class UpstreamUnavailable(UpstreamError):
    """The upstream could not be reached, or dropped the connection."""

    code = 503
    status = "UNAVAILABLE"


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds form only), else None."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def parse_retry_delay(details: list[dict[str, Any]]) -> float | None:
    """Seconds from a google.rpc.RetryInfo detail such as `{"retryDelay": "47s"}`."""
    for detail in details:
        if not isinstance(detail, dict):
            continue
        if str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            delay = detail.get("retryDelay")
            if isinstance(delay, str) and delay.endswith("s"):
                try:
                    return float(delay[:-1])
                except ValueError:
                    return None
    return None
