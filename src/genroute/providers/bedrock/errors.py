"""Bedrock errors → Google error statuses that say whether a retry helps.

An AWS error is its HTTP status, the `x-amzn-ErrorType` header
(`ThrottlingException:http://internal.amazon.com/...`, else the body's `__type`) and a body
`{"message": "..."}`; mid-stream, an event-stream message of type `exception` (its
`:exception-type` is the stream member, `throttlingException`) or `error` (`:error-code`,
`:error-message`). Each becomes an UpstreamError with Google's code and status, the AWS
message, an ErrorInfo detail (reason = the AWS type in UPPER_SNAKE, domain
`bedrock.amazonaws.com`, the request id), and for a ValidationException a BadRequest detail
naming the fields the message names. The table is docs/provider-bedrock.md's.
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

__all__ = [
    "ERRORS",
    "PROVIDER",
    "THROTTLE_RETRY_DELAY",
    "error_type",
    "map_error",
    "stream_error",
]

PROVIDER = "bedrock"
# Seconds a client is told to wait after a ThrottlingException that says nothing (Bedrock
# sends no Retry-After): the first delay of the AWS SDKs' standard retry mode.
THROTTLE_RETRY_DELAY = 1.0

_F = FailureReason
# AWS error type → (Google code, Google status, failure reason).
ERRORS: dict[str, tuple[int, str, FailureReason]] = {
    "ValidationException": (400, "INVALID_ARGUMENT", _F.BAD_REQUEST),
    "SerializationException": (400, "INVALID_ARGUMENT", _F.BAD_REQUEST),
    "AccessDeniedException": (403, "PERMISSION_DENIED", _F.AUTH),
    "UnrecognizedClientException": (401, "UNAUTHENTICATED", _F.AUTH),
    "InvalidSignatureException": (401, "UNAUTHENTICATED", _F.AUTH),
    "IncompleteSignatureException": (401, "UNAUTHENTICATED", _F.AUTH),
    "MissingAuthenticationTokenException": (401, "UNAUTHENTICATED", _F.AUTH),
    "ExpiredTokenException": (401, "UNAUTHENTICATED", _F.AUTH),
    "ResourceNotFoundException": (404, "NOT_FOUND", _F.NOT_FOUND),
    "ThrottlingException": (429, "RESOURCE_EXHAUSTED", _F.RATE_LIMIT),
    "ServiceQuotaExceededException": (429, "RESOURCE_EXHAUSTED", _F.RATE_LIMIT),
    "ModelNotReadyException": (503, "UNAVAILABLE", _F.OVERLOADED),
    "ServiceUnavailableException": (503, "UNAVAILABLE", _F.OVERLOADED),
    "ModelTimeoutException": (504, "DEADLINE_EXCEEDED", _F.TIMEOUT),
    "InternalServerException": (500, "INTERNAL", _F.UPSTREAM_5XX),
    "ModelErrorException": (502, "UNAVAILABLE", _F.UPSTREAM_5XX),
    "ModelStreamErrorException": (502, "UNAVAILABLE", _F.UPSTREAM_5XX),
}
_TOO_LONG = re.compile(
    r"too long|too many (input )?tokens|exceed(s|ed)? (the )?(context|maximum input)"
    r"|context (length|window)",
    re.I,
)
_FIELD = re.compile(
    r"\b((?:messages|system|toolConfig|inferenceConfig|additionalModelRequestFields"
    r"|outputConfig|modelId)(?:\.[A-Za-z0-9_]+)*)"
)
_QUOTED_FIELD = re.compile(r"\bat '([^']+)'")


def error_type(headers: Mapping[str, str], body: Any = None) -> str:
    """The AWS error type: `x-amzn-ErrorType` (before its `:`), else the body's `__type`
    (after its `#`), else ""."""
    raw = headers.get("x-amzn-ErrorType") or headers.get("x-amzn-errortype") or ""
    if not raw and isinstance(body, dict):
        raw = str(body.get("__type") or body.get("code") or "")
    return raw.split(":", 1)[0].rsplit("#", 1)[-1].strip()


def _snake(kind: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", kind).upper()


def _fields(message: str) -> list[str]:
    found = _QUOTED_FIELD.findall(message) + _FIELD.findall(message)
    return list(dict.fromkeys(f.rstrip(".") for f in found))


def _error(
    kind: str, status: int, message: str, request_id: str | None, retry_after: float | None
) -> UpstreamError:
    if kind in ERRORS:
        code, status_name, reason = ERRORS[kind]
    else:
        code = 502 if status in (200, 424) or not 400 <= status < 600 else status
        status_name, reason = google_status(code), reason_for_code(code)
    if kind == "ValidationException" and _TOO_LONG.search(message):
        reason = FailureReason.CONTEXT_WINDOW
    if kind == "ThrottlingException" and retry_after is None:
        retry_after = THROTTLE_RETRY_DELAY
    metadata = {"provider": PROVIDER, "httpStatus": str(status)}
    if request_id:
        metadata["requestId"] = request_id
    details: list[dict[str, Any]] = [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": _snake(kind) if kind else f"HTTP_{status}",
            "domain": "bedrock.amazonaws.com",
            "metadata": metadata,
        }
    ]
    if code == 400 and (fields := _fields(message)):
        violations = [{"field": f, "description": message} for f in fields]
        details.append(
            {"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": violations}
        )
    return UpstreamError(
        message,
        code=code,
        status=status_name,
        details=details,
        retry_after=retry_after,
        provider=PROVIDER,
        reason=reason,
    )


def map_error(status: int, body: bytes, headers: Mapping[str, str]) -> GenrouteError:
    """A Bedrock HTTP error reply, as the Google error that says whether a retry helps."""
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        parsed = None
    kind = error_type(headers, parsed)
    message = ""
    if isinstance(parsed, dict):
        message = str(parsed.get("message") or parsed.get("Message") or "")
    if not message:
        text = body.decode("utf-8", "replace").strip()[:500] or "no body"
        message = f"bedrock upstream answered HTTP {status}" + (f" {kind}" if kind else "")
        message += f": {text}"
    request_id = headers.get("x-amzn-RequestId") or headers.get("x-amzn-requestid")
    retry_after = parse_retry_after(headers.get("retry-after") or headers.get("Retry-After"))
    return _error(kind, status, message, request_id, retry_after)


def stream_error(
    message_type: str, headers: Mapping[str, Any], payload: bytes, request_id: str | None = None
) -> GenrouteError:
    """An `exception` or `error` message in the middle of a ConverseStream."""
    if message_type == "error":
        kind = str(headers.get(":error-code") or "")
        text = str(headers.get(":error-message") or "") or f"bedrock stream error {kind}"
        return _error(kind, 200, text, request_id, None)
    member = str(headers.get(":exception-type") or "")
    kind = member[:1].upper() + member[1:]
    try:
        parsed = orjson.loads(payload) if payload else None
    except orjson.JSONDecodeError:
        parsed = None
    text = ""
    if isinstance(parsed, dict):
        text = str(parsed.get("message") or parsed.get("Message") or "")
        original = parsed.get("originalStatusCode")
        if kind == "ModelStreamErrorException" and isinstance(original, int):
            text = f"{text} (the model answered HTTP {original})"
    return _error(kind, 200, text or f"bedrock stream {kind or 'exception'}", request_id, None)
