"""Budget reservations: a call holds, on every budget it is charged to, the most it can
cost, from before it starts until it ends; then the hold becomes its cost.

A call is admitted while `spend + holds < max_budget` on each of its budgets, and then
holds its most possible cost (its prompt, plus `maxOutputTokens` or the model's output
limit, at the model's price; `genroute.governance.layer`). Since a call costs at most
what it holds, the spend can only pass the budget through the last call admitted:

    overshoot <= the largest hold of one call

whatever the concurrency, streamed or not, however many instances: the check and the hold
are one atomic step shared by every instance,

- with Redis, one Lua script per reservation (`RedisBudgets`): per budget a spend counter
  (the period's spend: never below what the database says, plus every settled cost) and a
  hash of holds with their expiry;
- without Redis, one database transaction holding the budget rows' locks
  (`DatabaseBudgets`, `genroute.store.holds`).

While the shared place cannot be reached, each instance reserves in its own memory
(`LocalBudgets`, against the cached spend and this instance's unwritten spend): the bound
becomes one call per instance, plus what other instances spent and have not yet written
(a flush interval and a cache TTL). `BudgetBook` picks the place and falls back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from genroute.errors import RateLimited, redis_errors
from genroute.governance.cache import Entity, EntityCache
from genroute.governance.health import Dependency
from genroute.store.holds import HOLD_TTL, drop_holds, reserve_holds, settle_holds
from genroute.store.repo import Store, database_unavailable

__all__ = [
    "SPEND_KEY_TTL",
    "Budget",
    "BudgetBook",
    "DatabaseBudgets",
    "Hold",
    "LocalBudgets",
    "RedisBudgets",
    "budget_refusal",
]

log = logging.getLogger("genroute.governance")

SPEND_KEY_TTL = 7 * 86_400  # Redis keeps a budget's counters this long after its last use


def _info(reason: str) -> dict[str, object]:
    return {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": "genroute",
    }


@dataclass(frozen=True, slots=True)
class Budget:
    """One budget a call is charged to, as the cached row says."""

    kind: str
    ident: str
    label: str  # "key 'ci'", "team 't'", "end user 'u'"
    limit: float
    spend: float  # committed to the database, as last loaded
    period: str = ""  # the row's budget_reset_at: a new period starts new counters
    resets: str | None = None

    @property
    def entity(self) -> Entity:
        """(kind, id)."""
        return (self.kind, self.ident)


@dataclass(slots=True)
class Hold:
    """What one call holds (the same amount on each budget), and where."""

    hold_id: str
    amount: float
    budgets: list[Budget]
    place: str  # "redis", "database" or "memory"


def budget_refusal(budget: Budget, spend: float, held: float) -> RateLimited:
    """The 429 for a budget that is spent, or that the calls in flight will likely spend."""
    if spend >= budget.limit:
        when = f"; it resets at {budget.resets}" if budget.resets else ""
        return RateLimited(
            f"Budget exceeded for {budget.label}: spend ${spend:.6f} of max_budget "
            f"${budget.limit:.6f}{when}",
            details=[_info("BUDGET_EXCEEDED")],
        )
    return RateLimited(
        f"Budget nearly exhausted for {budget.label}: spend ${spend:.6f} of max_budget "
        f"${budget.limit:.6f}, and the calls in flight (holding ${held:.6f}) may use the rest",
        details=[_info("BUDGET_EXCEEDED")],
        retry_after=1.0,
    )


class LocalBudgets:
    """Holds in this process's memory, against the cached spend plus this instance's
    unwritten spend (atomic on the event loop)."""

    def __init__(self, cache: EntityCache) -> None:
        self.cache = cache
        self._held: dict[Entity, float] = {}

    def held(self, entity: Entity) -> float:
        """What this process's calls in flight hold on a budget."""
        return self._held.get(entity, 0.0)

    def reserve(self, budgets: list[Budget], hold_id: str, amount: float) -> Hold:
        for budget in budgets:
            spend = budget.spend + self.cache.pending.get(budget.entity, 0.0)
            held = self.held(budget.entity)
            if spend >= budget.limit or spend + held >= budget.limit:
                raise budget_refusal(budget, spend, held)
        for budget in budgets:
            self._held[budget.entity] = self.held(budget.entity) + amount
        return Hold(hold_id, amount, budgets, "memory")

    def settle(self, hold: Hold) -> None:
        for budget in hold.budgets:
            left = self.held(budget.entity) - hold.amount
            if left > 1e-12:
                self._held[budget.entity] = left
            else:
                self._held.pop(budget.entity, None)


# KEYS: per budget its spend counter, holds hash and expiry zset. ARGV: hold id, amount,
# hold ttl, key ttl, then per budget its limit and the spend the database has committed.
# Returns {-1} when held, else {index, spend, held} of the first budget that refuses.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local id, amount, ttl, keep = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local n = #KEYS / 3
for i = 0, n - 1 do
  local sk, hk, ek = KEYS[i*3+1], KEYS[i*3+2], KEYS[i*3+3]
  local limit, committed = tonumber(ARGV[5+i*2]), tonumber(ARGV[6+i*2])
  local gone = redis.call('ZRANGEBYSCORE', ek, '-inf', now)
  for _, g in ipairs(gone) do redis.call('HDEL', hk, g) end
  if #gone > 0 then redis.call('ZREMRANGEBYSCORE', ek, '-inf', now) end
  local spend = tonumber(redis.call('GET', sk) or '-1')
  if spend < committed then
    spend = committed
    redis.call('SET', sk, ARGV[6+i*2], 'EX', keep)
  end
  local held = 0
  for _, v in ipairs(redis.call('HVALS', hk)) do held = held + tonumber(v) end
  if spend >= limit or spend + held >= limit then
    return {i, tostring(spend), tostring(held)}
  end
end
for i = 0, n - 1 do
  local sk, hk, ek = KEYS[i*3+1], KEYS[i*3+2], KEYS[i*3+3]
  redis.call('HSET', hk, id, ARGV[2])
  redis.call('ZADD', ek, now + ttl, id)
  redis.call('EXPIRE', hk, keep); redis.call('EXPIRE', ek, keep); redis.call('EXPIRE', sk, keep)
end
return {-1}
"""

# KEYS: as for _RESERVE. ARGV: hold id, cost, key ttl, then per budget the committed spend.
_SETTLE = """
local id, cost, keep = ARGV[1], ARGV[2], tonumber(ARGV[3])
for i = 0, #KEYS / 3 - 1 do
  local sk, hk, ek = KEYS[i*3+1], KEYS[i*3+2], KEYS[i*3+3]
  redis.call('HDEL', hk, id)
  redis.call('ZREM', ek, id)
  if redis.call('EXISTS', sk) == 1 then
    redis.call('INCRBYFLOAT', sk, cost)
  else
    redis.call('SET', sk, tostring(tonumber(ARGV[4+i]) + tonumber(cost)))
  end
  redis.call('EXPIRE', sk, keep)
end
return 0
"""


class RedisBudgets:
    """Holds and spend counters in Redis, shared by every instance (module docstring)."""

    def __init__(self, redis: Any, prefix: str = "genroute:budget") -> None:
        self.redis = redis
        self.prefix = prefix
        self._reserve = redis.register_script(_RESERVE)
        self._settle = redis.register_script(_SETTLE)

    def keys(self, budget: Budget) -> list[str]:
        """The spend counter, holds and expiry keys of a budget."""
        base = f"{self.prefix}:{budget.kind}:{budget.ident}"
        return [f"{base}:{budget.period or '-'}:spend", f"{base}:holds", f"{base}:expiry"]

    async def reserve(self, budgets: list[Budget], hold_id: str, amount: float) -> Hold:
        keys: list[str] = []
        args: list[str | float | int] = [hold_id, repr(amount), HOLD_TTL, SPEND_KEY_TTL]
        for budget in budgets:
            keys.extend(self.keys(budget))
            args.extend((repr(budget.limit), repr(budget.spend)))
        result = await self._reserve(keys=keys, args=args)
        index = int(result[0])
        if index >= 0:
            raise budget_refusal(budgets[index], float(result[1]), float(result[2]))
        return Hold(hold_id, amount, budgets, "redis")

    async def settle(self, hold: Hold, cost: float) -> None:
        keys: list[str] = []
        args: list[str | float | int] = [hold.hold_id, repr(cost), SPEND_KEY_TTL]
        for budget in hold.budgets:
            keys.extend(self.keys(budget))
            args.append(repr(budget.spend))
        await self._settle(keys=keys, args=args)


class DatabaseBudgets:
    """Holds in the database, under the budget rows' locks (`genroute.store.holds`).

    Reservations on the same budget also queue in this process (an asyncio lock per
    budget; one for all on SQLite, which locks the whole database), so that waiting for
    a row lock never ties up more than one pooled connection per budget."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._one = store.engine.dialect.name == "sqlite"
        self._locks: weakref.WeakValueDictionary[Entity, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    def _lock(self, entity: Entity) -> asyncio.Lock:
        key = ("", "") if self._one else entity
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    async def reserve(self, budgets: list[Budget], hold_id: str, amount: float) -> Hold:
        entities = sorted({b.entity for b in budgets})
        async with contextlib.AsyncExitStack() as stack:
            for lock in dict.fromkeys(self._lock(e) for e in entities):  # in order, once each
                await stack.enter_async_context(lock)
            refused = await reserve_holds(self.store, entities, hold_id, amount)
        if refused is not None:
            budget = next(b for b in budgets if b.entity == (refused.kind, refused.ident))
            raise budget_refusal(replace(budget, limit=refused.limit), refused.spend, refused.held)
        return Hold(hold_id, amount, budgets, "database")

    async def settle(self, hold: Hold, cost: float) -> None:
        await settle_holds(self.store, hold.hold_id, cost)

    async def cancel(self, hold: Hold) -> None:
        """Give the holds back without a cost."""
        await drop_holds(self.store, hold.hold_id)


Shared = RedisBudgets | DatabaseBudgets


@dataclass(slots=True)
class _Unsettled:
    """Settlements Redis did not take, retried when it answers again (bounded)."""

    items: deque[tuple[Hold, float]] = field(default_factory=lambda: deque(maxlen=10_000))


class BudgetBook:
    """Reserves on the shared place (Redis, else the database), or in memory while it
    cannot be reached; settles where it reserved, never raising."""

    def __init__(self, shared: Shared | None, local: LocalBudgets, health: Dependency) -> None:
        self.shared = shared
        self.local = local
        self.health = health
        self.local_holds = 0  # reservations made in memory because the shared place was down
        self._unsettled = _Unsettled()

    def _down(self, exc: BaseException) -> bool:
        if isinstance(self.shared, RedisBudgets):
            return isinstance(exc, redis_errors())
        return database_unavailable(exc) or database_unavailable(exc.__cause__ or exc)

    async def reserve(self, budgets: list[Budget], hold_id: str, amount: float) -> Hold | None:
        """Hold `amount` on every budget (None when there is none), or raise the 429."""
        if not budgets:
            return None
        if self.shared is not None and self.health.should_try():
            try:
                hold = await self.shared.reserve(budgets, hold_id, amount)
            except RateLimited:
                self.health.succeeded()
                raise
            except Exception as exc:
                if not self._down(exc):
                    raise
                self.health.failed(exc)
            else:
                self.health.succeeded()
                await self._retry_unsettled()
                return hold
        hold = self.local.reserve(budgets, hold_id, amount)
        self.local_holds += bool(self.shared)
        return hold

    async def settle(self, hold: Hold | None, cost: float) -> None:
        """The call ended and cost `cost`: its holds become that cost (or are freed)."""
        if hold is None:
            return
        if hold.place == "memory" or self.shared is None:
            self.local.settle(hold)
            return
        try:
            await self.shared.settle(hold, cost)
        except Exception as exc:
            if not self._down(exc):
                log.exception("budgets: settling hold %s failed", hold.hold_id)
                return
            self.health.failed(exc)
            if isinstance(self.shared, RedisBudgets):
                self._unsettled.items.append((hold, cost))

    async def cancel(self, hold: Hold | None) -> None:
        """Give holds back for a call refused after reserving (no cost)."""
        if hold is None:
            return
        if isinstance(self.shared, DatabaseBudgets) and hold.place == "database":
            try:
                await self.shared.cancel(hold)
            except Exception as exc:  # the holds expire
                log.debug("budgets: releasing hold %s failed: %s", hold.hold_id, exc)
            return
        await self.settle(hold, 0.0)

    async def _retry_unsettled(self) -> None:
        items = self._unsettled.items
        while items and isinstance(self.shared, RedisBudgets):
            hold, cost = items[0]
            try:
                await self.shared.settle(hold, cost)
            except Exception:
                return
            items.popleft()
