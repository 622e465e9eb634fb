"""Vertex AI errors → genroute errors with the code, status and FailureReason routing needs.

Vertex answers in Google's shape, `{"error": {code, message, status, details}}` (sometimes
inside a JSON array), for every Gemini call and for what Vertex itself refuses in front of
Claude (authentication, quota, a model the project cannot use). Claude's own errors come
through `rawPredict` in Anthropic's shape, `{"type": "error", "error": {type, message}}`,
and are read as the Anthropic provider reads them. Either way the error says
`provider="vertex_ai"`; the reasons are Gemini's (context window, blocked prompts, from
Google's message) and Anthropic's (overloaded, billing, prompt too long).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import orjson

from genroute.errors import (
    GenrouteError,
    UpstreamError,
    parse_retry_after,
    parse_retry_delay,
    status_for,
)
from genroute.providers.anthropic.errors import map_error as anthropic_error
from genroute.providers.gemini.translate import failure_reason
from genroute.providers.vertex.auth import PROVIDER

__all__ = ["as_vertex", "map_claude_error", "map_error"]

_WRAPPED = ("gemini", "anthropic")


def _google_error(body: bytes) -> dict[str, Any] | None:
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None
    if isinstance(parsed, list) and parsed:
        parsed = parsed[0]
    error = parsed.get("error") if isinstance(parsed, dict) else None
    return error if isinstance(error, dict) else None


def map_error(status: int, body: bytes, headers: Mapping[str, str]) -> GenrouteError:
    """A Google-shaped Vertex error with its own code, status, message and details."""
    retry_after = parse_retry_after(headers.get("retry-after") or headers.get("Retry-After"))
    error = _google_error(body)
    if error is None:
        text = body.decode("utf-8", "replace").strip()[:500] or "no body"
        code = status if 400 <= status < 600 else 502
        return UpstreamError(
            f"vertex_ai upstream answered HTTP {status}: {text}",
            code=code,
            retry_after=retry_after,
            provider=PROVIDER,
            reason=failure_reason(code, text, []),
        )
    given = error.get("code")
    code = given if isinstance(given, int) and 400 <= given < 600 else status
    code = code if code >= 400 else 502
    raw = error.get("details")
    details = [d for d in raw if isinstance(d, dict)] if isinstance(raw, list) else []
    if retry_after is None:
        retry_after = parse_retry_delay(details)
    message = str(error.get("message") or f"vertex_ai upstream answered HTTP {status}")
    return UpstreamError(
        message,
        code=code,
        status=str(error.get("status") or status_for(code)),
        details=details,
        retry_after=retry_after,
        provider=PROVIDER,
        reason=failure_reason(code, message, details),
    )


def map_claude_error(status: int, body: bytes, headers: Mapping[str, str]) -> GenrouteError:
    """A Claude error from rawPredict: Google's shape when Vertex answered, else read as
    Anthropic's (what Claude answers, or a bare status: 529 is 503 UNAVAILABLE)."""
    google = _google_error(body)
    if google is not None and "type" not in google:
        return map_error(status, body, headers)
    error = anthropic_error(status, body, headers)
    error.provider = PROVIDER
    return error


@contextmanager
def as_vertex() -> Iterator[None]:
    """Errors the Gemini and Anthropic translators raise (a malformed reply, a stream's
    error event) say `provider="vertex_ai"`: the deployment that failed is Vertex's."""
    try:
        yield
    except GenrouteError as exc:
        if exc.provider in _WRAPPED:
            exc.provider = PROVIDER
        raise
