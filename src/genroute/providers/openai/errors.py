"""OpenAI-style error bodies → genroute errors carrying Google statuses (pure).

The HTTP status decides whether a retry can help, as Google's clients read it:

    400, 422, 413        → 400 INVALID_ARGUMENT       (context_length_exceeded and
                                                        content-policy codes get a clear message)
    401 / 403 / 404      → UNAUTHENTICATED / PERMISSION_DENIED / NOT_FOUND
    408, 504             → 504 DEADLINE_EXCEEDED
    409                  → 409 ABORTED
    429                  → 429 RESOURCE_EXHAUSTED, `retry-after-ms` / `retry-after` (or the
                           message's "try again in 6s") kept as retry_after → RetryInfo
    500 / 502, 503, 529  → 500 INTERNAL / 503 UNAVAILABLE

Each error carries a `FailureReason`: from the status (429 RATE_LIMIT, quota included;
503/529 OVERLOADED; 408/504 TIMEOUT; other 5xx UPSTREAM_5XX; 401/403 AUTH; 404 NOT_FOUND;
other 4xx BAD_REQUEST), except CONTEXT_WINDOW for `context_length_exceeded` /
`string_above_max_length` (or a 400 whose message says the context length was exceeded,
as vLLM, Mistral and llama.cpp word it) and CONTENT_POLICY for the content-filter codes
(Azure `content_filter` / `ResponsibleAIPolicyViolation`, `content_policy_violation`,
`invalid_prompt`) or a 400 whose message names the content or usage policy.

Bodies seen in the wild: `{"error": {"message", "type", "code", "param"}}` (OpenAI, Azure,
Groq, ...), `{"error": "text"}` (Ollama), `{"object": "error", "message", "code"}` (vLLM),
`{"detail": ...}` (FastAPI servers) and plain text. A mid-stream `{"error": ...}` event has
no HTTP status: its `code` (when numeric) or `type` decides.
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
    status_for,
)

__all__ = ["error_from_object", "google_code", "map_error", "retry_after"]

_CODES = {408: 504, 413: 400, 422: 400, 529: 503}
_TYPE_CODES = {
    "invalid_request_error": 400,
    "badrequesterror": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "rate_limit_error": 429,
    "rate_limit_exceeded": 429,
    "tokens": 429,
    "requests": 429,
    "server_error": 500,
    "overloaded_error": 503,
    "timeout": 504,
}
_CONTEXT_CODES = {"context_length_exceeded", "string_above_max_length"}
_POLICY_CODES = {
    "content_policy_violation",
    "content_filter",
    "invalid_prompt",
    "responsibleaipolicyviolation",
}
# How OpenAI-compatible servers word a prompt over the context window when no code says it.
_TOO_LONG = re.compile(
    r"maximum context length|context[ _]length[ _]exceeded|exceeds? the (available )?context",
    re.IGNORECASE,
)
_POLICY = re.compile(
    r"content (management|filtering) policy|violating our usage polic", re.IGNORECASE
)
_TRY_AGAIN = re.compile(r"try again in (\d+(?:\.\d+)?)\s*(ms|s)\b", re.IGNORECASE)
_INFO = "type.googleapis.com/google.rpc.ErrorInfo"


def google_code(status: int) -> int:
    """The HTTP code genroute answers with for an upstream status."""
    code = _CODES.get(status, status)
    if 400 <= code < 600:
        return code
    return 502


def retry_after(headers: Mapping[str, str], message: str = "") -> float | None:
    """Seconds to wait: `retry-after-ms`, `retry-after`, else "try again in 6s" in the text."""
    lower = {k.lower(): v for k, v in headers.items()}
    ms = parse_retry_after(lower.get("retry-after-ms"))
    if ms is not None:
        return ms / 1000
    seconds = parse_retry_after(lower.get("retry-after"))
    if seconds is not None:
        return seconds
    found = _TRY_AGAIN.search(message)
    if found:
        value = float(found.group(1))
        return value / 1000 if found.group(2).lower() == "ms" else value
    return None


def _code_from(error: Mapping[str, Any], default: int) -> int:
    code = error.get("code")
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    if isinstance(code, int) and 400 <= code < 600:
        return code
    kind = str(error.get("type") or "").lower()
    return _TYPE_CODES.get(kind, _TYPE_CODES.get(str(code or "").lower(), default))


def error_from_object(
    obj: Mapping[str, Any], status: int, headers: Mapping[str, str], provider: str
) -> GenrouteError:
    """The error for a parsed body; `status` is the HTTP status (0 for a mid-stream event)."""
    raw = obj.get("error")
    error: Mapping[str, Any]
    if isinstance(raw, Mapping):
        error = raw
    elif isinstance(raw, str):
        error = {"message": raw}
    elif obj.get("object") == "error" or "message" in obj:
        error = obj
    else:
        detail = obj.get("detail")
        text = detail if isinstance(detail, str) else orjson.dumps(detail or obj).decode()
        error = {"message": text}
    upstream = status if status >= 400 else _code_from(error, 500)
    raw_message = error.get("message")
    if raw_message is not None and not isinstance(raw_message, str):
        raw_message = orjson.dumps(raw_message).decode()
    message = raw_message or f"HTTP {upstream}"
    code = google_code(upstream)
    google_status = status_for(code)
    names = [str(error[k]) for k in ("code", "type") if error.get(k) is not None]
    names = [n for n in names if not n.isdigit()]
    kind = names[0].lower() if names else ""
    inner = error.get("innererror")
    inner_kind = str(inner.get("code") or "").lower() if isinstance(inner, Mapping) else ""
    reason = reason_for_code(code)
    if kind in _CONTEXT_CODES:
        code, google_status, reason = 400, "INVALID_ARGUMENT", FailureReason.CONTEXT_WINDOW
        message = f"the request is longer than the model's context window: {message}"
    elif kind in _POLICY_CODES or inner_kind in _POLICY_CODES:
        code, google_status, reason = 400, "INVALID_ARGUMENT", FailureReason.CONTENT_POLICY
        message = f"the provider's content policy refused the request: {message}"
    elif code == 400 and _TOO_LONG.search(message):
        reason = FailureReason.CONTEXT_WINDOW
    elif code == 400 and _POLICY.search(message):
        reason = FailureReason.CONTENT_POLICY
    wait = None
    if code == 429 and kind != "insufficient_quota":
        wait = retry_after(headers, message)
    elif code >= 500:
        wait = retry_after(headers)
    metadata = {"provider": provider}
    if status >= 400:
        metadata["httpStatus"] = str(status)
    for key in ("type", "code", "param"):
        if error.get(key) is not None:
            metadata[key] = str(error[key])
    info = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", names[0]) if names else google_status
    info = re.sub(r"[^A-Z0-9]+", "_", info.upper()).strip("_")
    details = [{"@type": _INFO, "reason": info, "domain": provider, "metadata": metadata}]
    return UpstreamError(
        f"{provider} upstream: {message}",
        code=code,
        status=google_status,
        details=details,
        retry_after=wait,
        provider=provider,
        reason=reason,
    )


def map_error(
    status: int, body: bytes, headers: Mapping[str, str], *, provider: str = "openai"
) -> GenrouteError:
    """An upstream error reply (any status, any body) as a genroute error."""
    try:
        parsed: Any = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, list) and parsed and isinstance(parsed[0], dict):
        parsed = parsed[0]
    if isinstance(parsed, dict):
        return error_from_object(parsed, status, headers, provider)
    text = body.decode("utf-8", "replace").strip()[:500] or "no body"
    return error_from_object({"error": f"HTTP {status}: {text}"}, status, headers, provider)
