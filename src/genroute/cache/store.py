"""Where cached answers are kept: in this process (a bounded LRU) or in Redis (shared).

An `Entry` is one answer: its kind, the response's JSON, when it was stored and when it
expires (wall-clock seconds, the same on every instance), where it came from (group,
deployment, provider, upstream model: what a hit is priced at to say what it saved) and,
for embeddings, the tokens the upstream reported.

`LocalStore` keeps at most `max_entries` entries and `max_bytes` bytes, dropping the least
recently used first; an expired entry is dropped when it is read. `RedisStore` keeps each
entry under `{prefix}:e:{key}` with its own TTL (plain Redis: GET and SET PX). When Redis
cannot be reached it says so once (`RedisHealth`), answers "not found" and stores nothing
until the next try is due, so calls go on without the cache. Redis answering an operation
with an error (a full `noeviction` Redis refusing a write, a key of another type) is not an
outage: that one operation is given up.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from genroute.errors import redis_errors

__all__ = [
    "ENTRY_BYTES",
    "Entry",
    "EntryStore",
    "LocalStore",
    "RedisHealth",
    "RedisStore",
]

log = logging.getLogger("genroute.cache")

REFUSAL_LOG_SECONDS = 60.0
Origin = tuple[str | None, str | None, str | None, str | None]
ENTRY_BYTES = 512  # an entry's memory besides its response's JSON


@dataclass(slots=True)
class Entry:
    """One cached answer (see the module docstring)."""

    kind: str
    body: bytes
    created: float
    expires: float
    origin: Origin = (None, None, None, None)
    input_tokens: int | None = None

    def encode(self) -> bytes:
        """A header line of JSON, then the response's JSON."""
        header = [self.kind, self.created, self.expires, list(self.origin), self.input_tokens]
        return orjson.dumps(header) + b"\n" + self.body

    @classmethod
    def decode(cls, data: bytes) -> Entry:
        """The entry `encode` wrote (ValueError for anything else: another version's
        entry, or garbage). The response's JSON is checked when it is served."""
        head, sep, body = data.partition(b"\n")
        if not sep:
            raise ValueError("not a cache entry")
        header = orjson.loads(head)
        if not isinstance(header, list) or len(header) != 5:
            raise ValueError("not a cache entry header")
        kind, created, expires, origin, tokens = header
        if (
            not isinstance(kind, str)
            or not isinstance(origin, list)
            or len(origin) != 4
            or not all(o is None or isinstance(o, str) for o in origin)
            or not (tokens is None or (isinstance(tokens, int) and not isinstance(tokens, bool)))
        ):
            raise ValueError("not a cache entry header")
        o = origin
        return cls(kind, body, float(created), float(expires), (o[0], o[1], o[2], o[3]), tokens)

    @property
    def size(self) -> int:
        """Bytes it takes in this process: its response's JSON, and about 500 bytes for
        the entry, its key and its place in the LRU (measured: docs/cache.md)."""
        return len(self.body) + ENTRY_BYTES


class EntryStore(Protocol):
    """Where entries are kept."""

    async def get(self, key: str) -> Entry | None:
        """The live entry under `key`, or None."""
        ...

    async def put(self, key: str, entry: Entry) -> bool:
        """Keep `entry` until it expires (or is evicted); whether it was stored."""
        ...


class LocalStore:
    """Entries in this process: an LRU bounded by count and bytes."""

    def __init__(
        self, max_entries: int, max_bytes: int, clock: Callable[[], float] = time.time
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.clock = clock
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self.bytes = 0
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires <= self.clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.bytes -= entry.size

    async def put(self, key: str, entry: Entry) -> bool:
        if entry.size > self.max_bytes:
            return False
        self._drop(key)
        self._entries[key] = entry
        self.bytes += entry.size
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            _, dropped = self._entries.popitem(last=False)
            self.bytes -= dropped.size
            self.evicted += 1
        return True

    def clear(self) -> None:
        """Forget every entry."""
        self._entries.clear()
        self.bytes = 0


class RedisHealth:
    """Whether the cache's Redis answers; while it does not, the cache is skipped and
    Redis is tried again after a backoff (0.25 s doubling to 5 s). Each outage is logged
    once, and counted."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.up = True
        self.errors = 0  # operations that failed
        self.skipped = 0  # operations not tried because Redis was down
        self.outages = 0
        self.refusals = 0  # operations Redis answered with an error (it is up)
        self._delay = 0.25
        self._next = 0.0
        self._last_refusal = -REFUSAL_LOG_SECONDS

    def usable(self) -> bool:
        """Whether to try Redis now (counts a skip when not)."""
        if self.up or self.clock() >= self._next:
            return True
        self.skipped += 1
        return False

    def failed(self, exc: BaseException) -> None:
        """An operation failed: Redis is unreachable, timed out or refused."""
        self.errors += 1
        if self.up:
            self.up = False
            self.outages += 1
            self._delay = 0.25
            log.warning(
                "response cache: Redis is unavailable (%s: %s); calls go on without the "
                "cache until it answers again",
                type(exc).__name__,
                str(exc).splitlines()[0][:200] if str(exc) else "",
            )
        else:
            self._delay = min(self._delay * 2, 5.0)
        self._next = self.clock() + self._delay

    def erred(self, exc: BaseException) -> None:
        """An operation raised one of `redis_errors()`: an error Redis answered with (it is
        up: `refused`), or Redis down, slow or unreachable (`failed`)."""
        from redis.exceptions import ResponseError  # loaded already: the client raised it

        if isinstance(exc, ResponseError):
            self.refused(exc)
        else:
            self.failed(exc)

    def refused(self, exc: BaseException) -> None:
        """Redis answered an operation with an error (a key of another type under the
        prefix, a full `noeviction` Redis refusing a write): that operation is given up,
        but Redis is up. Logged once a minute at most, and counted."""
        self.errors += 1
        self.refusals += 1
        now = self.clock()
        if now - self._last_refusal >= REFUSAL_LOG_SECONDS:
            self._last_refusal = now
            log.warning(
                "response cache: Redis refused an operation (%s); that answer is not "
                "cached or served",
                str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__,
            )

    def succeeded(self) -> None:
        """An operation worked."""
        if not self.up:
            self.up = True
            log.warning("response cache: Redis answers again; the cache is back in use")


class RedisStore:
    """Entries in Redis under `{prefix}:e:{key}`, each with its own TTL."""

    def __init__(
        self, client: Any, prefix: str, health: RedisHealth, clock: Callable[[], float] = time.time
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.health = health
        self.clock = clock

    def _key(self, key: str) -> str:
        return f"{self.prefix}:e:{key}"

    async def get(self, key: str) -> Entry | None:
        if not self.health.usable():
            return None
        try:
            data = await self.client.get(self._key(key))
        except redis_errors() as exc:
            self.health.erred(exc)
            return None
        self.health.succeeded()
        if data is None:
            return None
        try:
            entry = Entry.decode(data)
        except (ValueError, TypeError):
            log.warning("response cache: ignoring a malformed entry %s", self._key(key))
            return None
        return entry if entry.expires > self.clock() else None

    async def put(self, key: str, entry: Entry) -> bool:
        ttl_ms = int((entry.expires - self.clock()) * 1000)
        if ttl_ms <= 0 or not self.health.usable():
            return False
        try:
            await self.client.set(self._key(key), entry.encode(), px=ttl_ms)
        except redis_errors() as exc:
            self.health.erred(exc)
            return False
        self.health.succeeded()
        return True
