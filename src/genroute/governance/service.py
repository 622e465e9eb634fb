"""Governance: who may call, within which budgets and limits, and what each call cost.

`Governance` holds the store, the short-TTL cache of key, team and end-user rows, the
limiter and the spend ledger writer. The HTTP edge calls `authenticate` (master key or a
valid virtual key) and `caller` (who the call is for); the pipeline's governed layer
(`genroute.governance.layer.Governed`) calls `admit` before every operation and `settle`
after it, so the proxy and the SDK share them.

Budget overshoot: a call's cost is only known when it ends. A call is admitted while
spend + reservations < max_budget, where each call in flight reserves the budget's
moving-average call cost (before it has one: the call's estimate from its prompt). On one
instance the overshoot is then about one call's cost, more when calls cost far more than
the average or the estimate; at most the calls in flight, which `max_parallel_requests`
bounds. Across instances each sees the others' spend only after their ledger flush
(`spend_flush_interval`) plus its own cache TTL (`key_cache_ttl`).
"""

from __future__ import annotations

import fnmatch
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from genroute.call import Call, Caller
from genroute.cost import Tokens
from genroute.errors import PermissionDenied, RateLimited, Unauthenticated
from genroute.governance.cache import Entity, EntityCache
from genroute.governance.limits import LimitCheck, Limiter, MemoryLimiter, Ticket
from genroute.store.ledger import SpendRecord
from genroute.store.writer import LedgerWriter
from genroute.store.repo import Store, hash_key, utcnow

__all__ = ["ALL_MODELS", "Admission", "Governance", "model_allowed"]

log = logging.getLogger("genroute.governance")

ALL_MODELS = {"*", "all-proxy-models"}
_KIND_LABEL = {"key": "key", "team": "team", "end_user": "end user"}


def _error_info(reason: str) -> dict[str, object]:
    return {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": "genroute",
    }


def _pattern_matches(pattern: str, model: str) -> bool:
    """A model list entry against a model name, segment by segment: `*` and `?` never
    match a `/`, so `gemini-2.5-flash*` cannot reach `gemini-2.5-flash/../gemini-2.5-pro`
    and `gemini/*` does not reach `gemini/a/b`."""
    if pattern == model:
        return True
    parts, names = pattern.split("/"), model.split("/")
    return len(parts) == len(names) and all(
        fnmatch.fnmatchcase(name, part) for name, part in zip(names, parts, strict=True)
    )


def model_allowed(models: list[str] | None, model: str | None) -> bool:
    """Whether a model list (empty: every model) allows a model group. An entry is a group
    name, a pattern whose `*` and `?` stay within one `/`-separated segment, or `*` /
    `all-proxy-models` (every model)."""
    if not models or model is None:
        return True
    return any(m in ALL_MODELS or _pattern_matches(m, model) for m in models)


def _expired(row: dict[str, Any], now: datetime) -> bool:
    expires = row.get("expires")
    return isinstance(expires, str) and datetime.fromisoformat(expires) <= now


@dataclass(slots=True)
class Admission:
    """What `admit` took for one call, so that `settle` gives back exactly that."""

    ticket: Ticket
    held: list[tuple[Entity, float]] = field(default_factory=list)


class Governance:
    """Keys, budgets, limits and spend: the edge's authenticator and the governed layer's
    admission and settlement."""

    def __init__(
        self,
        store: Store,
        *,
        master_key: str | None = None,
        limiter: Limiter | None = None,
        redis: Any = None,
        cache_ttl: float = 2.0,
        flush_interval: float = 1.0,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.now = now  # the wall clock keys expire by (injectable for tests)
        self._master = hash_key(master_key).encode() if master_key else None
        self.redis = redis
        self.limiter: Limiter = limiter or MemoryLimiter()
        self.cache = EntityCache(store, cache_ttl, redis)
        self.ledger = LedgerWriter(
            store, flush_interval=flush_interval, on_commit=self.cache.committed
        )

    async def start(self) -> None:
        """Migrate the database and start the ledger writer and cache listener."""
        await self.store.start()
        await self.cache.start()
        self.ledger.start()

    async def aclose(self) -> None:
        """Write every queued ledger row, then close connections."""
        await self.ledger.aclose()
        await self.cache.aclose()
        await self.store.aclose()
        if self.redis is not None:
            await self.redis.aclose()

    # -- the edge ------------------------------------------------------------------------------

    def is_master(self, key_hash: str | None) -> bool:
        """Whether a key hash is the master key's (constant-time)."""
        if self._master is None or key_hash is None:
            return False
        return hmac.compare_digest(key_hash.encode(), self._master)

    @property
    def has_master(self) -> bool:
        """Whether a master key is configured."""
        return self._master is not None

    def authenticated_master(self, key: str | None) -> bool:
        """Whether the presented key is the master key."""
        return bool(key) and self.is_master(hash_key(key or ""))

    async def authenticate(self, key: str | None) -> dict[str, Any] | None:
        """The virtual key's row, or None for the master key (or no auth configured)."""
        if not key:
            if self._master is None:
                return None
            raise PermissionDenied(
                "Method doesn't allow unregistered callers: send your genroute key as the "
                "x-goog-api-key header, ?key= or Authorization: Bearer",
                details=[_error_info("API_KEY_MISSING")],
            )
        token = hash_key(key)
        if self.is_master(token):
            return None
        row = await self.cache.get("key", token)
        if row is None:
            if self._master is None:
                return None
            raise Unauthenticated(
                "API key not valid. Please pass a valid API key.",
                details=[_error_info("API_KEY_INVALID")],
            )
        self._check_key(row)
        return row

    def _check_key(self, row: dict[str, Any]) -> None:
        if row.get("blocked"):
            raise PermissionDenied("This key is blocked.", details=[_error_info("API_KEY_BLOCKED")])
        if _expired(row, self.now()):
            raise Unauthenticated(
                f"API key expired at {row['expires']}. Please renew the API key.",
                details=[_error_info("API_KEY_EXPIRED")],
            )

    @staticmethod
    def caller(
        key_hash: str | None,
        row: dict[str, Any] | None,
        end_user: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Caller:
        """Who a call is for: the key (by hash), its alias, team and user, the end user."""
        caller = Caller(key_hash=key_hash, end_user=end_user)
        if metadata:
            caller = replace(caller, metadata=metadata)
        if row is None:
            return caller
        return replace(
            caller,
            key_alias=row.get("key_alias"),
            team_id=row.get("team_id"),
            user_id=row.get("user_id"),
        )

    # -- admission and settlement ----------------------------------------------------------

    def _check_budget(self, kind: str, ident: str, row: dict[str, Any], label: str) -> bool:
        """Refuse a call on a spent budget; True when the budget is to be tracked."""
        budget = row.get("max_budget")
        if budget is None:
            return False
        spend = self.cache.spend(kind, ident, row)
        if spend >= budget:
            reset = row.get("budget_reset_at")
            when = f"; it resets at {reset}" if reset else ""
            raise RateLimited(
                f"Budget exceeded for {label}: spend ${spend:.6f} of max_budget ${budget:.6f}"
                f"{when}",
                details=[_error_info("BUDGET_EXCEEDED")],
            )
        reserved = self.cache.reserved(kind, ident)
        if reserved and spend + reserved >= budget:
            raise RateLimited(
                f"Budget nearly exhausted for {label}: spend ${spend:.6f} of max_budget "
                f"${budget:.6f}, and the calls in flight will likely use the rest",
                details=[_error_info("BUDGET_EXCEEDED")],
                retry_after=1.0,
            )
        return True

    async def _rows(self, caller: Caller) -> list[tuple[str, str, dict[str, Any], str]]:
        rows: list[tuple[str, str, dict[str, Any], str]] = []
        team_id = caller.team_id
        if caller.key_hash and not self.is_master(caller.key_hash):
            key = await self.cache.get("key", caller.key_hash)
            if key is not None:
                self._check_key(key)
                team_id = key.get("team_id")
                label = f"key {key.get('key_alias') or key.get('key_name')!r}"
                rows.append(("key", caller.key_hash, key, label))
        if team_id:
            team = await self.cache.get("team", team_id)
            if team is not None:
                rows.append(("team", team_id, team, f"team {team_id!r}"))
        if caller.end_user:
            user = await self.cache.get("end_user", caller.end_user)
            if user is None:
                await self.store.ensure_end_user(caller.end_user)
                self.cache.forget("end_user", caller.end_user)
                user = await self.cache.get("end_user", caller.end_user)
            if user is not None:
                rows.append(("end_user", caller.end_user, user, f"end user {caller.end_user!r}"))
        return rows

    async def admit(self, call: Call, group: str, estimate: float) -> Admission:
        """Refuse the call (403 model/blocked, 429 budget/limit) or count it in.

        `group` is the model group the call's model resolves to; `estimate` a guess at the
        call's cost in USD (reserved on budgets that have no typical call cost yet)."""
        rows = await self._rows(call.caller)
        checks: list[LimitCheck] = []
        budgets: list[Entity] = []
        for kind, ident, row, label in rows:
            if row.get("blocked"):
                raise PermissionDenied(f"The {label} is blocked.")
            if kind != "end_user" and not model_allowed(row.get("models"), group):
                raise PermissionDenied(
                    f"The {label} may not use model {group!r}; "
                    f"it may use: {', '.join(row['models'])}",
                    details=[_error_info("MODEL_NOT_ALLOWED")],
                )
            if self._check_budget(kind, ident, row, label):
                budgets.append((kind, ident))
            checks.append(
                LimitCheck(
                    f"{kind}:{ident}",
                    label,
                    row.get("rpm_limit"),
                    row.get("tpm_limit"),
                    row.get("max_parallel_requests"),
                )
            )
        ticket = await self.limiter.admit(checks)
        return Admission(ticket, self.cache.begin(budgets, estimate))

    async def settle(
        self,
        call: Call,
        admission: Admission | None,
        *,
        status_code: int,
        error_status: str | None,
        finished: float,
    ) -> None:
        """A call ended: free its reservations and limits, note its spend, queue its ledger
        row. `admission` is None for a call refused before it was admitted."""
        cost = call.meter.cost or 0.0
        caller = call.caller
        if admission is not None:
            self.cache.end(admission.held, cost)
            await self.limiter.release(admission.ticket, Tokens.from_usage(call.meter.usage).total)
        if caller.key_hash:
            self.cache.add_pending("key", caller.key_hash, cost)
        if caller.team_id:
            self.cache.add_pending("team", caller.team_id, cost)
        if caller.end_user:
            self.cache.add_pending("end_user", caller.end_user, cost)
        record = SpendRecord.of(
            call, status_code=status_code, error_status=error_status, finished=finished
        )
        await self.ledger.submit(record)
