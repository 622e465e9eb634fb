"""The one record per request that logs, callbacks and webhooks all share.

`CallRecord` is built once from a finished `CallContext` (and, when content logging is
on, the request and the response text). It never holds a key: only the key's alias.
Times are milliseconds; `overhead_ms` is latency minus the time spent waiting on upstreams.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field, fields
from typing import Any

import orjson

from genroute.context import CallContext
from genroute.errors import GenrouteError, status_for

REDACTED = "[REDACTED]"


@dataclass(slots=True)
class CallRecord:
    """One finished request, as every observability sink sees it."""

    timestamp: str
    request_id: str
    operation: str
    stream: bool
    model_group: str | None
    deployment_id: str | None
    provider: str | None
    provider_model: str | None
    response_model: str | None
    key_alias: str | None
    team_id: str | None
    user_id: str | None
    end_user: str | None
    status_code: int
    error_status: str | None
    error_message: str | None
    finish_reason: str | None
    input_tokens: int | None
    output_tokens: int | None
    total_tokens: int | None
    cached_tokens: int | None
    reasoning_tokens: int | None
    cost: float | None
    latency_ms: float | None
    time_to_first_token_ms: float | None
    upstream_ms: float | None
    overhead_ms: float | None
    attempts: int
    fallbacks: list[str]
    trace_id: str | None = None
    span_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    request_contents: str | None = None
    response_text: str | None = None

    @property
    def success(self) -> bool:
        """Whether the call completed without an error."""
        return self.error_status is None

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready)."""
        return {name: getattr(self, name) for name in _FIELDS}

    def to_json(self) -> bytes:
        """One JSON object, without None values (or empty metadata), on one line."""
        data = {}
        for name in _FIELDS:
            value = getattr(self, name)
            if value is not None and value != {}:
                data[name] = value
        return orjson.dumps(data, default=str)


_FIELDS = tuple(f.name for f in fields(CallRecord))


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)


def _iso(epoch: float) -> str:
    """UTC, ISO 8601 with milliseconds: 2026-01-31T12:00:00.123Z."""
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch))
    return f"{whole}.{int(epoch * 1000) % 1000:03d}Z"


def finish_context(ctx: CallContext, error: BaseException | None) -> None:
    """Fill in the end of a call that did not reach the Router's own bookkeeping."""
    if ctx.finished_at is None:
        ctx.finished_at = time.perf_counter()
    if isinstance(error, GenrouteError):
        ctx.status_code, ctx.error_status = error.code, error.status
        ctx.error_message = error.message
    elif isinstance(error, ConnectionAbortedError | asyncio.CancelledError):
        ctx.status_code, ctx.error_status = 499, status_for(499)
        ctx.error_message = "the client went away"
    elif error is not None:
        ctx.status_code, ctx.error_status = 500, status_for(500)
        ctx.error_message = f"internal error: {type(error).__name__}"


def build_record(ctx: CallContext, *, metadata: bool = True) -> CallRecord:
    """The record of a finished call."""
    usage = ctx.usage
    latency = ctx.latency
    upstream = ctx.upstream_seconds or None
    overhead = None
    if latency is not None and upstream is not None:
        overhead = max(latency - upstream, 0.0)
    finished = time.time() - (time.perf_counter() - (ctx.finished_at or time.perf_counter()))
    error_status = ctx.error_status
    if error_status is None and ctx.status_code >= 400:
        error_status = status_for(ctx.status_code)
    return CallRecord(
        timestamp=_iso(finished),
        request_id=ctx.request_id,
        operation=ctx.operation,
        stream=ctx.stream,
        model_group=ctx.model_group,
        deployment_id=ctx.deployment_id,
        provider=ctx.provider,
        provider_model=ctx.provider_model,
        response_model=ctx.response_model,
        key_alias=ctx.key_alias,
        team_id=ctx.team_id,
        user_id=ctx.user_id,
        end_user=ctx.end_user,
        status_code=ctx.status_code,
        error_status=error_status,
        error_message=ctx.error_message,
        finish_reason=ctx.finish_reason,
        input_tokens=usage.prompt_token_count if usage else None,
        output_tokens=_output_tokens(ctx),
        total_tokens=usage.total_token_count if usage else None,
        cached_tokens=usage.cached_content_token_count if usage else None,
        reasoning_tokens=usage.thoughts_token_count if usage else None,
        cost=ctx.cost,
        latency_ms=_ms(latency),
        time_to_first_token_ms=_ms(ctx.time_to_first_token),
        upstream_ms=_ms(upstream),
        overhead_ms=_ms(overhead),
        attempts=ctx.attempts,
        fallbacks=list(ctx.fallbacks),
        metadata=dict(ctx.metadata) if metadata else {},
    )


def _output_tokens(ctx: CallContext) -> int | None:
    """Candidates plus thinking tokens: what the provider bills as output."""
    usage = ctx.usage
    if usage is None or usage.candidates_token_count is None:
        return None
    return usage.candidates_token_count + (usage.thoughts_token_count or 0)


class Redactor:
    """Replaces every match of the configured patterns, and caps the length."""

    def __init__(self, patterns: list[str], max_chars: int) -> None:
        self._pattern = re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None
        self._max = max_chars

    def __call__(self, text: str) -> str:
        if self._pattern is not None:
            text = self._pattern.sub(REDACTED, text)
        if len(text) > self._max:
            text = text[: self._max] + f"…[{len(text) - self._max} more chars]"
        return text


def contents_text(request: Any) -> str:
    """The text of a generateContent request's system instruction and turns, one per line."""
    system = getattr(request, "system_instruction", None)
    turns = [("system", system)] if system is not None else []
    turns += [(getattr(c, "role", None) or "user", c) for c in request.contents or ()]
    lines: list[str] = []
    for role, content in turns:
        texts = [p.text for p in getattr(content, "parts", None) or () if getattr(p, "text", None)]
        if texts:
            lines.append(f"{role}: {' '.join(texts)}")
    return "\n".join(lines)
