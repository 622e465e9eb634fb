"""Pure translation for the Gemini upstream. No I/O, no globals.

The canonical model *is* Gemini's wire format, so requests and responses pass through with
unknown fields kept; only the model name is rewritten to the upstream's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from pydantic import ValidationError

from genroute.errors import (
    GenrouteError,
    UpstreamError,
    parse_retry_after,
    parse_retry_delay,
    status_for,
)
from genroute.wire import (
    BatchEmbedContentsRequest,
    GenerateContentRequest,
    GenerateContentResponse,
    WireModel,
    format_validation_error,
)

PROVIDER = "gemini"
_NO_MODEL = {"model"}


def model_path(upstream_model: str) -> str:
    """`models/<id>` for a bare id; ids that already name a collection are kept."""
    if upstream_model.startswith(("models/", "tunedModels/")):
        return upstream_model
    return f"models/{upstream_model}"


def to_wire(request: GenerateContentRequest) -> bytes:
    """The upstream body: the request as sent, less the client's own `model` field."""
    return request.__pydantic_serializer__.to_json(
        request, by_alias=True, exclude_none=True, exclude=_NO_MODEL
    )


def dump(obj: WireModel) -> bytes:
    """Any other request (countTokens, embedContent) as the upstream body."""
    return obj.__pydantic_serializer__.to_json(obj, by_alias=True, exclude_none=True)


def batch_to_wire(request: BatchEmbedContentsRequest, upstream_model: str) -> bytes:
    """batchEmbedContents names the model in every inner request: point them upstream."""
    name = model_path(upstream_model)
    inner = [r.model_copy(update={"model": name}) for r in request.requests]
    return dump(BatchEmbedContentsRequest(requests=inner))


def from_wire(body: bytes) -> GenerateContentResponse:
    """Parse a generateContent response (or one stream event's JSON)."""
    try:
        response = GenerateContentResponse.model_validate_json(body)
    except ValidationError as exc:
        raise UpstreamError(
            f"gemini upstream sent a malformed response: {format_validation_error(exc)}",
            code=502,
            provider=PROVIDER,
        ) from None
    response._raw = body.strip()
    return response


def decode_event(payload: bytes) -> GenerateContentResponse:
    """One SSE `data` payload: a chunk, or an error event that ends the stream."""
    if payload.lstrip().startswith(b'{"error"'):
        raise map_error(500, payload, {})
    return from_wire(payload)


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
        return UpstreamError(
            f"gemini upstream answered HTTP {status}: {text}",
            code=status if status >= 400 else 502,
            retry_after=retry_after,
            provider=PROVIDER,
        )
    code = error.get("code")
    code = code if isinstance(code, int) and 400 <= code < 600 else status
    if code < 400:
        code = 502
    details = [d for d in error.get("details") or [] if isinstance(d, dict)]
    if retry_after is None:
        retry_after = parse_retry_delay(details)
    return UpstreamError(
        str(error.get("message") or f"gemini upstream answered HTTP {status}"),
        code=code,
        status=str(error.get("status") or status_for(code)),
        details=details,
        retry_after=retry_after,
        provider=PROVIDER,
    )
