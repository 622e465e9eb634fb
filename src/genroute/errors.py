"""genroute's exception tree, its failure reasons, and its mapping to Google's error JSON.

    GenrouteError                   code, status, message, details, retry_after, provider, reason
    ├── ConfigError                 the configuration is invalid (start-up; names the key)
    ├── InvalidRequest              400 INVALID_ARGUMENT   (names the bad field)
    │   └── PayloadTooLarge         413 INVALID_ARGUMENT
    ├── Unauthenticated             401 UNAUTHENTICATED
    ├── PermissionDenied            403 PERMISSION_DENIED
    ├── NotFound                    404 NOT_FOUND
    ├── StoreError                  a management request the store refuses (400, 404, 409)
    ├── RateLimited                 429 RESOURCE_EXHAUSTED (with RetryInfo)
    │   └── GroupRateLimited        every deployment of a group is at a cap or rate limited
    ├── GroupUnavailable            503 UNAVAILABLE: every deployment of a group cooling down
    ├── ServiceUnavailable          503 UNAVAILABLE: a store or cache genroute needs is down
    └── UpstreamError               an upstream's own code and status, passed on
        ├── UpstreamTimeout         504 DEADLINE_EXCEEDED
        ├── UpstreamUnavailable     503 UNAVAILABLE (connection refused, reset, ...)
        └── UpstreamMalformed       502 UNAVAILABLE (an answer that is not the API's shape)

Every error carries a `FailureReason`. Provider error mappers set it from what the upstream
said (its status, its error code, its message); retries, cooldowns and fallbacks switch on
it and never on message text. Inside genroute code raises these; only the HTTP edge turns
them into JSON bodies.
"""

from __future__ import annotations

import enum
import functools
import math
from typing import Any

__all__ = [
    "STATUS_BY_CODE",
    "ConfigError",
    "FailureReason",
    "GenrouteError",
    "GroupRateLimited",
    "GroupUnavailable",
    "InvalidRequest",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "RateLimited",
    "ServiceUnavailable",
    "StoreError",
    "Unauthenticated",
    "UpstreamError",
    "UpstreamMalformed",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "cancelled",
    "outcome",
    "parse_retry_after",
    "parse_retry_delay",
    "reason_for_code",
    "redis_errors",
    "retry_delay_text",
    "status_for",
]

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


class FailureReason(enum.Enum):
    """Why a call failed, as routing, logs and metrics tell failures apart.

    reason           retried  cools down  falls back through
    RATE_LIMIT       yes      yes         fallbacks / default_fallbacks
    OVERLOADED       yes      yes         fallbacks / default_fallbacks
    TIMEOUT          yes      yes         fallbacks / default_fallbacks
    UNREACHABLE      yes      yes         fallbacks / default_fallbacks
    UPSTREAM_5XX     yes      yes         fallbacks / default_fallbacks
    MALFORMED        yes      yes         fallbacks / default_fallbacks
    AUTH             no       yes         fallbacks / default_fallbacks  (our key upstream)
    NOT_FOUND        no       yes         fallbacks / default_fallbacks  (the upstream model)
    CONTEXT_WINDOW   no       no          context_window_fallbacks
    CONTENT_POLICY   no       no          content_policy_fallbacks
    NO_DEPLOYMENT    no       no          fallbacks / default_fallbacks  (all cooling/capped)
    BAD_REQUEST      no       no          (nothing: the request itself is wrong)
    DENIED           no       no          (nothing: genroute refused the caller's key)
    CANCELLED        no       no          (nothing: the client went away)
    INTERNAL         no       no          (nothing: a bug in genroute)
    """

    RATE_LIMIT = "rate_limit"
    OVERLOADED = "overloaded"
    TIMEOUT = "timeout"
    UNREACHABLE = "unreachable"
    UPSTREAM_5XX = "upstream_5xx"
    MALFORMED = "malformed"
    AUTH = "auth"
    NOT_FOUND = "not_found"
    CONTEXT_WINDOW = "context_window"
    CONTENT_POLICY = "content_policy"
    NO_DEPLOYMENT = "no_deployment"
    BAD_REQUEST = "bad_request"
    DENIED = "denied"
    CANCELLED = "cancelled"
    INTERNAL = "internal"

    @property
    def retryable(self) -> bool:
        """Worth another attempt in the same group."""
        return self in _RETRYABLE

    @property
    def cools_down(self) -> bool:
        """Counts towards the deployment's cooldown."""
        return self in _RETRYABLE or self in (FailureReason.AUTH, FailureReason.NOT_FOUND)

    @property
    def falls_back(self) -> bool:
        """Worth trying another group."""
        return self not in _FINAL


_RETRYABLE = frozenset(
    {
        FailureReason.RATE_LIMIT,
        FailureReason.OVERLOADED,
        FailureReason.TIMEOUT,
        FailureReason.UNREACHABLE,
        FailureReason.UPSTREAM_5XX,
        FailureReason.MALFORMED,
    }
)
_FINAL = frozenset(
    {
        FailureReason.BAD_REQUEST,
        FailureReason.DENIED,
        FailureReason.CANCELLED,
        FailureReason.INTERNAL,
    }
)


def status_for(code: int) -> str:
    """The google.rpc status name that fits an HTTP code."""
    if code in STATUS_BY_CODE:
        return STATUS_BY_CODE[code]
    if 400 <= code < 500:
        return "FAILED_PRECONDITION"
    return "UNKNOWN" if code < 500 else "INTERNAL"


def reason_for_code(code: int) -> FailureReason:
    """The failure reason an HTTP status means when nothing more specific is known."""
    if code == 429:
        return FailureReason.RATE_LIMIT
    if code in (408, 504):
        return FailureReason.TIMEOUT
    if code in (503, 529):
        return FailureReason.OVERLOADED
    if code in (401, 403):
        return FailureReason.AUTH
    if code == 404:
        return FailureReason.NOT_FOUND
    if code == 499:
        return FailureReason.CANCELLED
    if 400 <= code < 500:
        return FailureReason.BAD_REQUEST
    return FailureReason.UPSTREAM_5XX


def retry_delay_text(seconds: float) -> str:
    """A google.protobuf.Duration as JSON writes it, e.g. `7s` or `0.5s`."""
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{seconds:.3f}".rstrip("0") + "s"


class GenrouteError(Exception):
    """Base of every error genroute raises; carries what the HTTP edge needs."""

    code: int = 500
    status: str = "INTERNAL"
    default_reason: FailureReason = FailureReason.INTERNAL

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        status: str | None = None,
        details: list[dict[str, Any]] | None = None,
        retry_after: float | None = None,
        provider: str | None = None,
        reason: FailureReason | None = None,
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
        self.reason = reason or self._reason_from_code(code)

    def _reason_from_code(self, code: int | None) -> FailureReason:
        return self.default_reason if code is None else reason_for_code(code)

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


class ConfigError(GenrouteError):
    """The configuration is invalid; the message names the key and its place."""

    def __init__(self, message: str) -> None:
        super().__init__(
            message, code=500, status="FAILED_PRECONDITION", reason=FailureReason.INTERNAL
        )


class InvalidRequest(GenrouteError):
    """The request is malformed or a field has the wrong type or value."""

    code = 400
    status = "INVALID_ARGUMENT"
    default_reason = FailureReason.BAD_REQUEST


class PayloadTooLarge(InvalidRequest):
    """The request body is over the configured limit."""

    code = 413
    status = "INVALID_ARGUMENT"

    def _reason_from_code(self, code: int | None) -> FailureReason:
        return FailureReason.BAD_REQUEST


class Unauthenticated(GenrouteError):
    """The key is not valid."""

    code = 401
    status = "UNAUTHENTICATED"
    default_reason = FailureReason.DENIED


class PermissionDenied(GenrouteError):
    """No key was given, or the key may not do this."""

    code = 403
    status = "PERMISSION_DENIED"
    default_reason = FailureReason.DENIED


class NotFound(GenrouteError):
    """No such model or route."""

    code = 404
    status = "NOT_FOUND"
    default_reason = FailureReason.BAD_REQUEST


class StoreError(GenrouteError):
    """A management request the store refuses (unknown row, duplicate alias...)."""

    default_reason = FailureReason.BAD_REQUEST

    def __init__(self, message: str, code: int = 400) -> None:
        super().__init__(message, code=code, reason=FailureReason.BAD_REQUEST)


class RateLimited(GenrouteError):
    """A rate limit or quota was hit; `retry_after` says when to try again."""

    code = 429
    status = "RESOURCE_EXHAUSTED"
    default_reason = FailureReason.RATE_LIMIT


class GroupRateLimited(RateLimited):
    """Every deployment of a group is at its rpm/tpm cap or cooling after rate limits (429)."""

    default_reason = FailureReason.NO_DEPLOYMENT

    def _reason_from_code(self, code: int | None) -> FailureReason:
        return FailureReason.NO_DEPLOYMENT


class GroupUnavailable(GenrouteError):
    """Every deployment of a group is cooling down after failures (503 UNAVAILABLE)."""

    code = 503
    status = "UNAVAILABLE"
    default_reason = FailureReason.NO_DEPLOYMENT

    def _reason_from_code(self, code: int | None) -> FailureReason:
        return FailureReason.NO_DEPLOYMENT


class ServiceUnavailable(GenrouteError):
    """A store or cache genroute needs for this call cannot be reached (503, retry later)."""

    code = 503
    status = "UNAVAILABLE"
    default_reason = FailureReason.INTERNAL

    def _reason_from_code(self, code: int | None) -> FailureReason:
        return FailureReason.INTERNAL


class UpstreamError(GenrouteError):
    """An upstream provider answered with an error, passed on with its own code."""

    code = 502
    status = "UNAVAILABLE"
    default_reason = FailureReason.UPSTREAM_5XX


class UpstreamTimeout(UpstreamError):
    """The upstream did not answer in time."""

    code = 504
    status = "DEADLINE_EXCEEDED"
    default_reason = FailureReason.TIMEOUT

    def _reason_from_code(self, code: int | None) -> FailureReason:
        return FailureReason.TIMEOUT


class UpstreamUnavailable(UpstreamError):
    """The upstream could not be reached, or dropped the connection."""

    code = 503
    status = "UNAVAILABLE"
    default_reason = FailureReason.UNREACHABLE

    def _reason_from_code(self, code: int | None) -> FailureReason:
        return FailureReason.UNREACHABLE


class UpstreamMalformed(UpstreamError):
    """The upstream answered 200 with something that is not its API's shape."""

    code = 502
    status = "UNAVAILABLE"
    default_reason = FailureReason.MALFORMED

    def _reason_from_code(self, code: int | None) -> FailureReason:
        return FailureReason.MALFORMED


@functools.cache
def redis_errors() -> tuple[type[BaseException], ...]:
    """What a call to Redis raises when Redis is down, slow or failing: redis-py's
    `RedisError`, and the `OSError` and `TimeoutError` beneath it. redis-py is imported on
    the first call (an `except redis_errors()` clause runs it only when something was
    raised), so a gateway that uses no Redis never loads it (~0.2 s of its start-up)."""
    from redis.exceptions import RedisError

    return (RedisError, OSError, TimeoutError)


def cancelled(message: str = "the client went away before the call ended") -> GenrouteError:
    """What a call the client abandoned is recorded as (499 CANCELLED)."""
    return GenrouteError(message, code=499, reason=FailureReason.CANCELLED)


def outcome(error: BaseException | None) -> tuple[int, str | None, str | None]:
    """(HTTP status, google.rpc status, message) a call that ended with `error` is recorded
    with: 200 for none, the error's own for a GenrouteError, 499 for a client that went
    away (cancellation, a closed stream, a dropped connection), else 500."""
    if error is None:
        return 200, None, None
    if isinstance(error, GenrouteError):
        return error.code, error.status, error.message
    if isinstance(error, ConnectionError | GeneratorExit) or not isinstance(error, Exception):
        return 499, status_for(499), "the client went away"
    return 500, status_for(500), f"internal error: {type(error).__name__}"


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds form only), else None."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 and math.isfinite(seconds) else None


def parse_retry_delay(details: list[dict[str, Any]]) -> float | None:
    """Seconds from a google.rpc.RetryInfo detail such as `{"retryDelay": "47s"}`."""
    for detail in details:
        if not isinstance(detail, dict):
            continue
        if str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            delay = detail.get("retryDelay")
            if isinstance(delay, str) and delay.endswith("s"):
                try:
                    seconds = float(delay[:-1])
                except ValueError:
                    return None
                return seconds if seconds >= 0 and math.isfinite(seconds) else None
    return None
