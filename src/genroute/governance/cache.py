"""A short-TTL cache of key, team and end-user rows, and the spend not yet in them.

Lookups on the request path hit the database at most once per row per `ttl` seconds (one
load at a time per row, however many requests wait for it). A change made through this
instance invalidates its entry at once; other instances see it within `ttl`, or at once
when Redis is configured (the change is published on a channel every instance follows).

`pending` is the spend of finished calls still queued for the ledger; once the ledger
commits a batch, `committed` moves it onto the cached rows, so budgets see every cent this
instance has spent without waiting for a reload. `reserved` is what the calls in flight on
a budget will likely cost (the budget's moving-average call cost each, or before it has
one, each call's estimate from its prompt).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from genroute.store.ledger import Totals
from genroute.store.repo import Store

__all__ = ["CHANNEL", "MAX_ENTRIES", "Entity", "EntityCache"]

log = logging.getLogger("genroute.governance")

CHANNEL = "genroute:invalidate"
MAX_ENTRIES = 100_000
Entity = tuple[str, str]


class EntityCache:
    """Rows by (kind, id), each kept for `ttl` seconds."""

    def __init__(
        self,
        store: Store,
        ttl: float = 2.0,
        redis: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.ttl = ttl
        self.clock = clock  # when entries go stale (injectable for tests)
        self.redis = redis
        self._rows: dict[Entity, tuple[float, dict[str, Any] | None]] = {}
        self._loading: dict[Entity, asyncio.Future[dict[str, Any] | None]] = {}
        self.pending: dict[Entity, float] = defaultdict(float)
        self._reserved: dict[Entity, float] = {}
        self.typical: dict[Entity, float] = {}
        self._listener: asyncio.Task[None] | None = None

    async def get(self, kind: str, ident: str) -> dict[str, Any] | None:
        """The row (None when there is none), from the cache while it is fresh."""
        entity = (kind, ident)
        cached = self._rows.get(entity)
        if cached is not None and cached[0] > self.clock():
            return cached[1]
        waiting = self._loading.get(entity)
        if waiting is not None:
            return await asyncio.shield(waiting)
        future: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
        self._loading[entity] = future
        try:
            row = await self.store.load(kind, ident)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else must
            raise
        finally:
            self._loading.pop(entity, None)
        self._remember(entity, row)
        future.set_result(row)
        return row

    def _remember(self, entity: Entity, row: dict[str, Any] | None) -> None:
        now = self.clock()
        if len(self._rows) >= MAX_ENTRIES:  # unknown keys are cached too: stay bounded
            self._rows = {k: v for k, v in self._rows.items() if v[0] > now}
            if len(self._rows) >= MAX_ENTRIES:
                self._rows.clear()
        self._rows[entity] = (now + self.ttl, row)

    def spend(self, kind: str, ident: str, row: dict[str, Any]) -> float:
        """The row's spend plus what this instance has spent and not yet written."""
        return float(row.get("spend") or 0.0) + self.pending.get((kind, ident), 0.0)

    def reserved(self, kind: str, ident: str) -> float:
        """What this instance's calls in flight on a budget will likely cost."""
        return self._reserved.get((kind, ident), 0.0)

    def begin(self, entities: list[Entity], estimate: float) -> list[tuple[Entity, float]]:
        """A call on these budgets started: reserve the budget's typical call cost (else the
        call's own estimate) on each, until `end`."""
        held = []
        for entity in entities:
            amount = self.typical.get(entity, estimate)
            self._reserved[entity] = self._reserved.get(entity, 0.0) + amount
            held.append((entity, amount))
        return held

    def end(self, held: list[tuple[Entity, float]], cost: float) -> None:
        """The call ended: free its reservations; its cost moves each typical cost."""
        for entity, amount in held:
            left = self._reserved.get(entity, 0.0) - amount
            if left > 1e-12:
                self._reserved[entity] = left
            else:
                self._reserved.pop(entity, None)
            previous = self.typical.get(entity)
            self.typical[entity] = cost if previous is None else 0.8 * previous + 0.2 * cost

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

    async def invalidate(self, kind: str, ident: str) -> None:
        """Drop an entry here and, with Redis, on every other instance."""
        self.forget(kind, ident)
        if self.redis is not None:
            try:
                await self.redis.publish(CHANNEL, f"{kind}:{ident}")
            except Exception:
                log.warning("could not publish a cache invalidation to Redis", exc_info=True)

    async def start(self) -> None:
        """Follow other instances' invalidations (with Redis)."""
        if self.redis is not None and self._listener is None:
            pubsub = self.redis.pubsub()
            await pubsub.subscribe(CHANNEL)
            self._listener = asyncio.create_task(self._listen(pubsub), name="genroute-invalidate")

    async def _listen(self, pubsub: Any) -> None:
        try:
            while True:
                try:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.warning("Redis invalidation channel failed; retrying", exc_info=True)
                    await asyncio.sleep(1.0)
                    continue
                if message and message.get("type") == "message":
                    data = message["data"]
                    text = data.decode() if isinstance(data, bytes) else str(data)
                    kind, _, ident = text.partition(":")
                    self.forget(kind, ident)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def aclose(self) -> None:
        """Stop following invalidations."""
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
