"""Anthropic errors → Google error statuses that say whether a retry helps.

`{"type": "error", "error": {"type", "message"}}`, from an HTTP reply or a stream `error`
event, becomes an UpstreamError with Google's code and status, the upstream message, an
ErrorInfo detail (reason = the Anthropic type, request id) and Retry-After kept.

Its `FailureReason` comes from the Anthropic type (`overloaded_error` OVERLOADED,
`billing_error` AUTH: our account upstream cannot pay) or else the status, except that an
`invalid_request_error` saying "prompt is too long" (or that input and max_tokens exceed
the context limit) is CONTEXT_WINDOW, and "Output blocked by content filtering policy"
is CONTENT_POLICY.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from genroute.errors import (
    FailureReason,
    GenrouteError,
    UpstreamError,
    parse_retry_after,
    reason_for_code,
)
from genroute.errors import status_for as google_status

__all__ = ["ERRORS", "PROVIDER", "failure_reason", "map_error"]

PROVIDER = "anthropic"
# Anthropic error type → Google HTTP code and status (docs/translation-anthropic.md).
ERRORS: dict[str, tuple[int, str]] = {
    "invalid_request_error": (400, "INVALID_ARGUMENT"),
    "authentication_error": (401, "UNAUTHENTICATED"),
    "billing_error": (400, "FAILED_PRECONDITION"),
    "permission_error": (403, "PERMISSION_DENIED"),
    "not_found_error": (404, "NOT_FOUND"),
    "conflict_error": (409, "ABORTED"),
    "request_too_large": (413, "INVALID_ARGUMENT"),
    "rate_limit_error": (429, "RESOURCE_EXHAUSTED"),
    "api_error": (500, "INTERNAL"),
    "overloaded_error": (503, "UNAVAILABLE"),
    "timeout_error": (504, "DEADLINE_EXCEEDED"),
}
_REASONS = {"billing_error": FailureReason.AUTH, "overloaded_error": FailureReason.OVERLOADED}
_TOO_LONG = re.compile(r"prompt is too long|exceed(s|ed)? (the )?context (limit|window)", re.I)
_BLOCKED = re.compile(r"content filtering policy", re.I)


def failure_reason(kind: str, code: int, message: str) -> FailureReason:
    """Why an Anthropic call failed, from the error type, the code and (400s) the message."""
    if kind in _REASONS:
        return _REASONS[kind]
    if code == 400 and _TOO_LONG.search(message):
        return FailureReason.CONTEXT_WINDOW
    if code == 400 and _BLOCKED.search(message):
        return FailureReason.CONTENT_POLICY
    return reason_for_code(code)


def map_error(status: int, body: bytes, headers: Mapping[str, str]) -> GenrouteError:
    """An Anthropic error (HTTP reply or stream `error` event) with the Google code and
    status that say whether retrying helps; Retry-After is kept."""
    retry_after = parse_retry_after(headers.get("retry-after") or headers.get("Retry-After"))
    error: Any = None
    try:
        parsed = orjson.loads(body) if body else None
        error = parsed.get("error") if isinstance(parsed, dict) else None
    except orjson.JSONDecodeError:
        pass
    kind = str(error.get("type") or "") if isinstance(error, dict) else ""
    message = str(error.get("message") or "") if isinstance(error, dict) else ""
    if kind in ERRORS:
        code, status_name = ERRORS[kind]
    else:
        code = 503 if status == 529 else (status if 400 <= status < 600 else 502)
        status_name = google_status(code)
    if not message:
        text = body.decode("utf-8", "replace").strip()[:500] or "no body"
        message = f"anthropic upstream answered HTTP {status}: {text}"
    metadata = {"provider": PROVIDER, "httpStatus": str(status)}
    request_id = headers.get("request-id") or headers.get("Request-Id")
    if request_id:
        metadata["requestId"] = request_id
    info = {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": (kind or f"http_{status}").upper(),
        "domain": "anthropic.com",
        "metadata": metadata,
    }
    return UpstreamError(
        message,
        code=code,
        status=status_name,
        details=[info],
        retry_after=retry_after,
        provider=PROVIDER,
        reason=failure_reason(kind, code, message),
    )
