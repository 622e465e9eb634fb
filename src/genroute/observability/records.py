"""The one record per request that logs, callbacks and webhooks all share.

`CallRecord` is built once from a finished `Call` (its caller, `call.route` and
`call.meter`) and the error it ended with, if any (and, when content logging is on, the
request and the response text). It never holds a key: only the key's alias. Times are
milliseconds; `overhead_ms` is latency minus the time spent waiting on upstreams.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Any

import orjson

from genroute.call import Call
from genroute.errors import outcome
from genroute.wire import UsageMetadata

__all__ = [
    "REDACTED",
    "CallRecord",
    "Redactor",
    "build_record",
    "contents_text",
]

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
    cache: str | None = None  # the response cache: hit, semantic-hit or miss
    cache_saved_cost: float | None = None  # a hit: what the answer cost when it was made
    cache_hit_bytes: int | None = None  # a hit: size of the entry served
    batch: str | None = None  # batches/{id}: a request of that batch
    cached_content: str | None = None  # cachedContents/{id} the call named
    files: list[str] | None = None  # the uploaded files/{id} it named
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


@lru_cache(maxsize=4)
def _second_text(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def _iso(epoch: float) -> str:
    """UTC, ISO 8601 with milliseconds: 2026-01-31T12:00:00.123Z (the whole second is
    formatted once a second, not once a call)."""
    millis = int(epoch * 1000)
    return f"{_second_text(millis // 1000)}.{millis % 1000:03d}Z"


def build_record(
    call: Call, error: BaseException | None, finished: float, *, metadata: bool = True
) -> CallRecord:
    """The record of a call that ended at perf_counter time `finished`."""
    meter, route, caller = call.meter, call.route, call.caller
    usage = meter.usage
    latency = finished - call.started
    upstream = route.upstream_seconds or None
    overhead = None if upstream is None else max(latency - upstream, 0.0)
    ttft = None if meter.first_chunk_at is None else meter.first_chunk_at - call.started
    status_code, error_status, error_message = outcome(error)
    ended = time.time() - (time.perf_counter() - finished)
    fallbacks = list(route.fallbacks)
    cached = call.cache
    hit = cached.hit
    resources = call.resources
    return CallRecord(
        timestamp=_iso(ended),
        request_id=call.request_id,
        operation=call.operation.value,
        stream=call.stream,
        model_group=route.group or call.cache.group or call.model,
        deployment_id=route.deployment_id,
        provider=route.provider,
        provider_model=route.provider_model,
        response_model=meter.response_model,
        key_alias=caller.key_alias,
        team_id=caller.team_id,
        user_id=caller.user_id,
        end_user=caller.end_user,
        status_code=status_code,
        error_status=error_status,
        error_message=error_message,
        finish_reason=meter.finish_reason,
        input_tokens=usage.prompt_token_count if usage else None,
        output_tokens=_output_tokens(usage),
        total_tokens=usage.total_token_count if usage else None,
        cached_tokens=usage.cached_content_token_count if usage else None,
        reasoning_tokens=usage.thoughts_token_count if usage else None,
        cost=meter.cost,
        latency_ms=_ms(latency),
        time_to_first_token_ms=_ms(ttft),
        upstream_ms=_ms(upstream),
        overhead_ms=_ms(overhead),
        attempts=len(route.attempts),
        fallbacks=fallbacks,
        cache=cached.outcome,
        cache_saved_cost=cached.saved_cost if hit else None,
        cache_hit_bytes=cached.bytes if hit else None,
        batch=resources.batch,
        cached_content=resources.cached_content,
        files=list(resources.files) or None,
        metadata=dict(caller.metadata) if metadata else {},
    )


def _output_tokens(usage: UsageMetadata | None) -> int | None:
    """Candidates plus thinking tokens: what the provider bills as output."""
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
