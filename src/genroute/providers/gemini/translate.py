"""Pure translation for the Gemini upstream. No I/O, no globals.

The canonical model *is* Gemini's wire format, so requests and responses pass through with
unknown fields kept; only the model name is rewritten to the upstream's. There is nothing
to drop, so `drop_params` changes nothing here. A reply that is not the API's shape is
`UpstreamMalformed`; error replies keep Google's own code, status and details, with a
`FailureReason` read from the code (and, for 400s, from Google's message and ErrorInfo).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeVar

import orjson
from pydantic import ValidationError

from genroute.errors import (
    FailureReason,
    GenrouteError,
    UpstreamError,
    parse_retry_after,
    parse_retry_delay,
    reason_for_code,
    status_for,
)
from genroute.providers.shapes import malformed
from genroute.providers.transport import path_segment
from genroute.wire import (
    BatchEmbedContentsRequest,
    GenerateContentRequest,
    GenerateContentResponse,
    WireModel,
    format_validation_error,
)

__all__ = [
    "PROVIDER",
    "batch_to_wire",
    "decode_event",
    "dump",
    "failure_reason",
    "from_wire",
    "map_error",
    "model_path",
    "parse_reply",
    "to_wire",
    "unescaped_model_path",
]

PROVIDER = "gemini"
_NO_MODEL = {"model"}
_COLLECTIONS = ("models", "tunedModels")
# Google's 400 for a prompt over the context window: "The input token count (1594712)
# exceeds the maximum number of tokens allowed (1048576)."
_TOO_LONG = re.compile(r"input token count.*exceeds the maximum number of tokens", re.I | re.S)
# A prompt refused by a safety or prohibited-content filter, when it is an error and not
# a 200 with promptFeedback.blockReason.
_BLOCKED = re.compile(r"\bblocked\b.*\b(safety|prohibited|blocklist|spii)\b", re.I | re.S)
_KEY_REASONS = {"API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_SERVICE_BLOCKED"}
T = TypeVar("T", bound=WireModel)


def model_path(upstream_model: str) -> str:
    """`models/<id>` for a bare id; `models/x` and `tunedModels/x` keep their one `/`.
    The id is escaped, so that no model name can change the upstream path or query."""
    collection, sep, rest = upstream_model.partition("/")
    if sep and collection in _COLLECTIONS:
        return f"{collection}/{path_segment(rest)}"
    return f"models/{path_segment(upstream_model)}"


def to_wire(request: GenerateContentRequest) -> bytes:
    """The upstream body: the request as sent, less the client's own `model` field (the
    client's own JSON when the request kept it: `GenerateContentRequest.keep_body`)."""
    body = request.sent_body()
    if body is not None:
        return body
    return request.__pydantic_serializer__.to_json(
        request, by_alias=True, exclude_none=True, exclude=_NO_MODEL
    )


def dump(obj: WireModel) -> bytes:
    """Any other request (countTokens, embedContent) as the upstream body."""
    return obj.__pydantic_serializer__.to_json(obj, by_alias=True, exclude_none=True)


def batch_to_wire(request: BatchEmbedContentsRequest, upstream_model: str) -> bytes:
    """batchEmbedContents names the model in every inner request: point them upstream."""
    name = unescaped_model_path(upstream_model)
    inner = [r.model_copy(update={"model": name}) for r in request.requests]
    return dump(BatchEmbedContentsRequest(requests=inner))


def unescaped_model_path(upstream_model: str) -> str:
    """`models/<id>` as request bodies name the model (not escaped: it is no URL)."""
    collection, sep, _ = upstream_model.partition("/")
    if sep and collection in _COLLECTIONS:
        return upstream_model
    return f"models/{upstream_model}"


def parse_reply(body: bytes, reply: type[T], what: str) -> T:
    """A reply of the Gemini API as its wire model, or UpstreamMalformed."""
    try:
        return reply.model_validate_json(body)
    except ValidationError as exc:
        raise malformed(PROVIDER, what, format_validation_error(exc)) from None


def from_wire(
    body: bytes, what: str = "response", *, chunk: bool = False
) -> GenerateContentResponse:
    """A generateContent response (or one stream event's JSON, a `chunk`), relayed: kept
    as the upstream's bytes, its facts checked, the rest parsed when a layer reads it."""
    try:
        return GenerateContentResponse.relayed(body, PROVIDER, chunk=chunk)
    except ValidationError as exc:
        raise malformed(PROVIDER, what, format_validation_error(exc)) from None
    except ValueError as exc:
        raise malformed(PROVIDER, what, str(exc)) from None


def decode_event(payload: bytes) -> GenerateContentResponse:
    """One SSE `data` payload: a chunk, or an error event that ends the stream."""
    if payload.lstrip().startswith(b'{"error"'):
        raise map_error(500, payload, {})
    return from_wire(payload, "stream event", chunk=True)


def failure_reason(code: int, message: str, details: list[dict[str, Any]]) -> FailureReason:
    """Why a Gemini call failed: from the code, and for a 400 from Google's own words."""
    if code == 400:
        reasons = {str(d.get("reason")) for d in details if "reason" in d}
        if reasons & _KEY_REASONS:
            return FailureReason.AUTH
        if _TOO_LONG.search(message):
            return FailureReason.CONTEXT_WINDOW
        if _BLOCKED.search(message):
            return FailureReason.CONTENT_POLICY
    return reason_for_code(code)


def map_error(status: int, body: bytes, headers: Mapping[str, str]) -> GenrouteError:
    """An upstream error with Google's own code, status, message and details."""
    retry_after = parse_retry_after(headers.get("retry-after") or headers.get("Retry-After"))
    error: Any = None
    try:
        parsed = orjson.loads(body) if body else None
        if isinstance(parsed, list) and parsed:
            parsed = parsed[0]
        if isinstance(parsed, dict):
            error = parsed.get("error")
    except orjson.JSONDecodeError:
        error = None
    if not isinstance(error, dict):
        text = body.decode("utf-8", "replace").strip()[:500] or "no body"
        http_code = status if 400 <= status < 600 else 502
        return UpstreamError(
            f"gemini upstream answered HTTP {status}: {text}",
            code=http_code,
            retry_after=retry_after,
            provider=PROVIDER,
            reason=failure_reason(http_code, text, []),
        )
    code = error.get("code")
    code = code if isinstance(code, int) and 400 <= code < 600 else status
    if code < 400:
        code = 502
    raw_details = error.get("details")
    details = (
        [d for d in raw_details if isinstance(d, dict)] if isinstance(raw_details, list) else []
    )
    if retry_after is None:
        retry_after = parse_retry_delay(details)
    message = str(error.get("message") or f"gemini upstream answered HTTP {status}")
    return UpstreamError(
        message,
        code=code,
        status=str(error.get("status") or status_for(code)),
        details=details,
        retry_after=retry_after,
        provider=PROVIDER,
        reason=failure_reason(code, message, details),
    )
