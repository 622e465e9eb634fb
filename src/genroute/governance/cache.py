"""A short-TTL cache of key, team and end-user rows, and the spend not yet in them.

Lookups on the request path hit the database at most once per row per `ttl` seconds (one
load at a time per row, however many requests wait for it). A change made through this
instance invalidates its entry at once; other instances see it within `ttl`, or at once
when Redis is configured (the change is published on a channel every instance follows).

**Outages.** When the database cannot be reached (or times out), a row this instance has
loaded before keeps serving for up to `max_stale` seconds past its TTL: a known key keeps
working through an outage, on what the database said when it was last reachable. A row
it has not loaded (an unknown key, a new end user), or one older than that, is a 503
`ServiceUnavailable` with a retry hint, never a 500. After a failure the database is left
alone for a backoff (0.25 s doubling to 5 s, `Dependency`), so an outage costs requests no
waiting. When the Redis invalidation channel drops, every cached row is treated as expired
once it is back (invalidations published meanwhile were missed).

`pending` is the spend of finished calls still queued for the ledger; once the ledger
commits a batch, `committed` moves it onto the cached rows, so budgets see every cent this
instance has spent without waiting for a reload.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from genroute.errors import ServiceUnavailable
from genroute.governance.health import Dependency
from genroute.store.ledger import Totals
from genroute.store.repo import Store, database_unavailable
from genroute.tasks import raise_if_cancelled, stop

__all__ = ["CHANNEL", "DEFAULT_MAX_STALE", "MAX_ENTRIES", "Entity", "EntityCache"]

log = logging.getLogger("genroute.governance")

CHANNEL = "genroute:invalidate"
MAX_ENTRIES = 100_000
DEFAULT_MAX_STALE = 900.0
Entity = tuple[str, str]
Row = dict[str, Any] | None


def _unavailable(kind: str) -> ServiceUnavailable:
    what = {"key": "API key", "team": "team", "end_user": "end user"}.get(kind, kind)
    return ServiceUnavailable(
        f"The key store is unavailable and this {what} is not cached here; retry shortly",
        retry_after=2.0,
    )


class EntityCache:
    """Rows by (kind, id), each fresh for `ttl` seconds (module docstring)."""

    def __init__(
        self,
        store: Store,
        ttl: float = 2.0,
        redis: Any = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_stale: float = DEFAULT_MAX_STALE,
        database: Dependency | None = None,
    ) -> None:
        self.store = store
        self.ttl = ttl
        self.max_stale = max_stale
        self.clock = clock  # when entries go stale (injectable for tests)
        self.redis = redis
        self.database = database or Dependency("the database", fallback="cached keys")
        self._rows: dict[Entity, tuple[float, Row]] = {}  # entity → (loaded at, row)
        self._loading: dict[Entity, asyncio.Future[Row]] = {}
        self.pending: dict[Entity, float] = defaultdict(float)
        self.stale_served = 0  # rows served past their TTL because the database was down
        self.refused = 0  # lookups answered 503: not cached, database down
        self.subscribed = False  # following the Redis invalidation channel
        self._listener: asyncio.Task[None] | None = None

    async def get(self, kind: str, ident: str) -> Row:
        """The row (None when there is none), from the cache while it is fresh; a stale
        one while the database is unreachable; else ServiceUnavailable."""
        entity = (kind, ident)
        cached = self._rows.get(entity)
        if cached is not None and cached[0] + self.ttl > self.clock():
            return cached[1]
        if not self.database.should_try():
            return self._fallback(entity, cached)
        loading = self._loading.get(entity)
        if loading is None:
            # One load per row, in a task of its own: a caller that is cancelled (its client
            # left) stops waiting, but the load goes on for the others waiting on it.
            loading = asyncio.ensure_future(self._load(entity, cached))
            self._loading[entity] = loading
            loading.add_done_callback(lambda done: self._loaded(entity, done))
        return await asyncio.shield(loading)

    def _loaded(self, entity: Entity, done: asyncio.Future[Row]) -> None:
        if self._loading.get(entity) is done:
            del self._loading[entity]
        if not done.cancelled():
            done.exception()  # retrieved here: the waiters re-raise it, if any are left

    async def _load(self, entity: Entity, cached: tuple[float, Row] | None) -> Row:
        try:
            row = await self.store.load(*entity)
        except Exception as exc:
            cause = exc.__cause__ if isinstance(exc, ServiceUnavailable) else exc
            if not isinstance(exc, ServiceUnavailable) and not database_unavailable(exc):
                raise
            self.database.failed(cause or exc)
            return self._fallback(entity, cached)
        self.database.succeeded()
        self._remember(entity, row)
        return row

    def _fallback(self, entity: Entity, cached: tuple[float, Row] | None) -> Row:
        """The database cannot be asked: a stale row within `max_stale`, else 503."""
        fresh_enough = cached is not None and self.clock() - cached[0] <= self.ttl + self.max_stale
        if cached is not None and cached[1] is not None and fresh_enough:
            self.stale_served += 1
            return cached[1]
        self.refused += 1
        raise _unavailable(entity[0])

    def _remember(self, entity: Entity, row: Row) -> None:
        now = self.clock()
        if len(self._rows) >= MAX_ENTRIES:  # unknown keys are cached too: stay bounded
            keep = self.ttl + self.max_stale
            self._rows = {k: v for k, v in self._rows.items() if now - v[0] <= keep}
            if len(self._rows) >= MAX_ENTRIES:
                self._rows.clear()
        self._rows[entity] = (now, row)

    def cached(self, kind: str, ident: str) -> Row:
        """The row cached for an entity, fresh or not (None when there is none)."""
        found = self._rows.get((kind, ident))
        return None if found is None else found[1]

    def spend(self, kind: str, ident: str, row: dict[str, Any]) -> float:
        """The row's spend plus what this instance has spent and not yet written."""
        return float(row.get("spend") or 0.0) + self.pending.get((kind, ident), 0.0)

    def add_pending(self, kind: str, ident: str, amount: float) -> None:
        """A finished call's cost, queued for the ledger."""
        if amount:
            self.pending[(kind, ident)] += amount

    def committed(self, totals: Totals) -> None:
        """The ledger wrote these amounts: move them from pending onto the cached rows."""
        for kind, amounts in (
            ("key", totals.key),
            ("team", totals.team),
            ("end_user", totals.end_user),
        ):
            for ident, amount in amounts.items():
                entity = (kind, ident)
                left = self.pending.get(entity, 0.0) - amount
                if left > 1e-12:
                    self.pending[entity] = left
                else:
                    self.pending.pop(entity, None)
                cached = self._rows.get(entity)
                if cached is not None and cached[1] is not None:
                    cached[1]["spend"] = float(cached[1].get("spend") or 0.0) + amount

    def forget(self, kind: str, ident: str) -> None:
        """Drop one entry here."""
        self._rows.pop((kind, ident), None)

    def expire_all(self) -> None:
        """Treat every row as past its TTL (reloaded on next use, still a fallback)."""
        now = self.clock()
        self._rows = {k: (min(v[0], now - self.ttl), v[1]) for k, v in self._rows.items()}

    async def invalidate(self, kind: str, ident: str) -> None:
        """Drop an entry here and, with Redis, on every other instance."""
        self.forget(kind, ident)
        if self.redis is not None:
            try:
                await self.redis.publish(CHANNEL, f"{kind}:{ident}")
            except Exception:
                log.warning("could not publish a cache invalidation to Redis", exc_info=True)

    async def start(self) -> None:
        """Follow other instances' invalidations (with Redis), in the background: Redis
        being unreachable delays nothing and fails nothing."""
        if self.redis is not None and self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="genroute-invalidate")

    async def _listen(self) -> None:
        delay, missed = 0.25, False
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(CHANNEL)
                if missed:  # invalidations published while we were not listening are lost
                    self.expire_all()
                    log.warning("Redis invalidation channel is back; cached rows reloaded")
                self.subscribed, missed, delay = True, False, 0.25
                await self._receive(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                raise_if_cancelled(exc)  # redis-py can turn a cancellation into an error
                if not missed:
                    log.warning(
                        "Redis invalidation channel unavailable (%s); changes made on other "
                        "instances reach this one within key_cache_ttl meanwhile", exc,
                    )  # fmt: skip
                self.subscribed, missed = False, True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def _receive(self, pubsub: Any) -> None:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message and message.get("type") == "message":
                data = message["data"]
                text = data.decode() if isinstance(data, bytes) else str(data)
                kind, _, ident = text.partition(":")
                self.forget(kind, ident)

    async def aclose(self) -> None:
        """Stop following invalidations."""
        listener, self._listener = self._listener, None
        await stop(listener)
