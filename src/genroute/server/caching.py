"""The response cache at the HTTP edge: what a request asks of it, and the header saying
what it did.

Request headers (docs/cache.md):
    cache-control: no-cache           do not answer from the cache (still store the answer)
    cache-control: no-store           do not store the answer
    cache-control: max-age=N          answer only from an entry at most N seconds old (0: none)
    x-genroute-cache-ttl: N           keep this answer N seconds (instead of the ttl configured)
Response header, when the cache had a part in the call:
    x-genroute-cache: hit | semantic-hit | miss
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator

from genroute.call import NO_DIRECTIVES, CacheControl, Call
from genroute.errors import InvalidRequest
from genroute.server import asgi
from genroute.server.asgi import Scope
from genroute.wire import GenerateContentResponse

__all__ = ["MAX_TTL", "cache_control", "cache_headers", "with_cache_header"]

MAX_TTL = 366 * 86_400.0


def _seconds(value: str, name: str, zero: bool) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (0 <= seconds <= MAX_TTL) or (seconds == 0 and not zero):
        lowest = "0" if zero else "over 0"
        raise InvalidRequest(
            f"{name}: {value[:40]!r} is not a number of seconds ({lowest} to {MAX_TTL:.0f})"
        )
    return seconds


def cache_control(scope: Scope) -> CacheControl:
    """The request's directives to the response cache (InvalidRequest naming the header
    for a value that is not a number of seconds)."""
    raw = asgi.header(scope, b"cache-control")
    ttl_raw = asgi.header(scope, b"x-genroute-cache-ttl")
    if raw is None and ttl_raw is None:
        return NO_DIRECTIVES
    no_cache = no_store = False
    max_age: float | None = None
    for item in (raw or b"").decode("latin-1").split(","):
        name, _, value = item.strip().partition("=")
        name = name.strip().lower()
        if name == "no-cache":
            no_cache = True
        elif name == "no-store":
            no_store = True
        elif name in ("max-age", "s-maxage"):
            max_age = _seconds(value.strip().strip('"'), f"cache-control: {name}", True)
    ttl = None
    if ttl_raw is not None:
        ttl = _seconds(ttl_raw.decode("latin-1").strip(), "x-genroute-cache-ttl", False)
    return CacheControl(no_cache, no_store, max_age, ttl)


def cache_headers(call: Call) -> list[tuple[bytes, bytes]]:
    """`x-genroute-cache` when the cache had a part in the call."""
    outcome = call.cache.outcome
    return [] if outcome is None else [(b"x-genroute-cache", outcome.encode())]


async def with_cache_header(
    chunks: AsyncIterator[GenerateContentResponse],
    call: Call,
    headers: list[tuple[bytes, bytes]],
) -> AsyncIterator[GenerateContentResponse]:
    """Relay `chunks`, adding `x-genroute-cache` to `headers` when the first one arrives (the
    edge sends its headers only then; the lookup is over by that time)."""
    added = False
    try:
        async for chunk in chunks:
            if not added:
                headers.extend(cache_headers(call))
                added = True
            yield chunk
    finally:
        if not added:
            headers.extend(cache_headers(call))
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
