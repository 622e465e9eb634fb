"""Anthropic errors → Google error statuses that say whether a retry helps.

`{"type": "error", "error": {"type", "message"}}`, from an HTTP reply or a stream `error`
event, becomes an UpstreamError with Google's code and status, the upstream message, an
ErrorInfo detail (reason = the Anthropic type, request id) and Retry-After kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from genroute.errors import GenrouteError, UpstreamError, parse_retry_after
from genroute.errors import status_for as google_status

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
    )
