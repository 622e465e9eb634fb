"""Governance: who may call, within which budgets and limits, and what each call cost.

`Governance` holds the store, the short-TTL cache of key, team and end-user rows, the
limiter, the budget book and the spend ledger writer. The HTTP edge calls `authenticate`
(master key or a valid virtual key) and `caller` (who the call is for); the pipeline's
governed layer (`genroute.governance.layer.Governed`) calls `admit` before every operation
and `settle` after it, so the proxy and the SDK share them. The edge reports `status()`
and `ready()` on its readiness route, and `metrics()` are the counters and gauges the
observability layer exports.

Budgets: a call holds the most it can cost on each of its budgets from `admit` to
`settle` (`genroute.governance.budgets`), so the spend passes a budget by at most one
call's hold, whatever the concurrency, streams or instances.

Faults: the database and Redis are each a `Dependency` (up, or down and retried after a
backoff). Without the database, known keys serve from their cached rows (bounded
staleness), unknown ones get 503, spend goes to the ledger's local spool, and budgets are
held in memory; without Redis, limits and budgets are held in memory. Start-up waits for
neither: migrations are retried in the background. `settle` never raises, and queues the
ledger row before anything that can fail. A known caller's call refused before it reaches a
model (`refused`: a blocked or expired key, a model it may not use, a budget, a limit) is a
ledger row too, with cost 0; a missing or unknown key never is.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from genroute.call import Call, Caller
from genroute.cost import Tokens
from genroute.errors import GenrouteError, PermissionDenied, ServiceUnavailable, Unauthenticated
from genroute.governance.budgets import (
    Budget,
    BudgetBook,
    DatabaseBudgets,
    Hold,
    LocalBudgets,
    RedisBudgets,
    budget_refusal,
)
from genroute.governance.cache import DEFAULT_MAX_STALE, EntityCache
from genroute.governance.estimate import DEFAULT_MAX_OUTPUT_TOKENS
from genroute.governance.health import Dependency
from genroute.governance.limits import (
    FallbackLimiter,
    LimitCheck,
    Limiter,
    MemoryLimiter,
    RedisLimiter,
    Ticket,
)
from genroute.store.journal import Journal
from genroute.store.ledger import SpendRecord, new_row_id
from genroute.store.repo import Store, hash_key, utcnow
from genroute.store.routing import refusal_json
from genroute.store.writer import LedgerWriter
from genroute.tasks import raise_if_cancelled, stop

__all__ = ["ALL_MODELS", "Admission", "Governance", "model_allowed"]

log = logging.getLogger("genroute.governance")

ALL_MODELS = {"*", "all-proxy-models"}
DEFAULT_SPOOL_BYTES = 256 << 20
START_TIMEOUT = 30.0


def _error_info(reason: str) -> dict[str, object]:
    return {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": "genroute",
    }


def _reason(error: GenrouteError) -> str | None:
    """The error's `ErrorInfo` reason (`API_KEY_BLOCKED`, `BUDGET_EXCEEDED`...), if any."""
    for detail in error.details:
        if isinstance(detail, dict) and isinstance(reason := detail.get("reason"), str):
            return reason
    return None


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
    hold: Hold | None = None
    row_id: str = ""  # the call's ledger row id (and its budget holds' id)


def _open_journal(directory: Path | None, max_bytes: int) -> Journal | None:
    if directory is None:
        return None
    journal = Journal(directory, max_bytes=max_bytes)
    try:
        journal.open()
    except OSError as exc:
        log.error(
            "spend journal: cannot use %s (%s); ledger rows wait in memory only, and are "
            "lost if the process is killed before they are written",
            directory,
            exc,
        )
        return None
    return journal


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
        max_stale: float = DEFAULT_MAX_STALE,
        spool_dir: Path | None = None,
        spool_max_bytes: int = DEFAULT_SPOOL_BYTES,
        default_max_output_tokens: int = DEFAULT_MAX_OUTPUT_TOKENS,
    ) -> None:
        self.store = store
        self.now = now  # the wall clock keys expire by (injectable for tests)
        self._master = hash_key(master_key).encode() if master_key else None
        self.redis = redis
        self.default_max_output_tokens = default_max_output_tokens
        self.database = Dependency("the database", fallback="cached keys and the local spool")
        if limiter is None and redis is not None:
            limiter = FallbackLimiter(RedisLimiter(redis), MemoryLimiter())
        self.limiter: Limiter = limiter or MemoryLimiter()
        found = getattr(self.limiter, "health", None)
        self.redis_health = found if isinstance(found, Dependency) else Dependency("Redis")
        self.cache = EntityCache(
            store, cache_ttl, redis, max_stale=max_stale, database=self.database
        )
        shared = RedisBudgets(redis) if redis is not None else DatabaseBudgets(store)
        health = self.redis_health if redis is not None else self.database
        self.budgets = BudgetBook(shared, LocalBudgets(self.cache), health)
        self.ledger = LedgerWriter(
            store,
            flush_interval=flush_interval,
            on_commit=self.cache.committed,
            on_state=self._ledger_state,
            journal=_open_journal(spool_dir, spool_max_bytes),
            timeout=2 * store.timeout,
        )
        self._migrator: asyncio.Task[None] | None = None

    def _ledger_state(self, up: bool, error: BaseException | None) -> None:
        if up:
            self.database.succeeded()
        elif error is not None:
            self.database.failed(error)

    async def start(self) -> None:
        """Migrate the database, start the ledger writer and the cache listener. Neither an
        unreachable database nor an unreachable Redis stops the start: the migrations are
        retried in the background meanwhile."""
        try:
            async with asyncio.timeout(START_TIMEOUT):
                await self.store.start()
        except Exception as exc:
            self.database.failed(exc)
            log.error(
                "the database is unavailable at start-up (%s): serving the master key (no "
                "virtual key is known until it answers), keeping spend in the local spool, "
                "and retrying the migrations",
                self.database.error,
            )
            self._migrator = asyncio.create_task(self._migrate_later(), name="genroute-migrate")
        await self.cache.start()
        self.ledger.start()

    async def _migrate_later(self) -> None:
        delay = 0.5
        while True:
            await asyncio.sleep(delay)
            try:
                await self.store.start()
            except Exception as exc:
                raise_if_cancelled(exc)
                self.database.failed(exc)
                delay = min(delay * 2, 10.0)
                continue
            self.database.succeeded()
            log.warning("the database is reachable: migrations are done")
            return

    async def aclose(self) -> None:
        """Write every queued ledger row (what cannot be written stays in the spool), then
        close connections; bounded however the database and Redis behave."""
        await stop(self._migrator)
        await self.ledger.aclose()
        await self.cache.aclose()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.store.timeout):
                await self.store.aclose()
        if self.redis is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self.store.timeout):
                    await self.redis.aclose()

    # -- readiness and metrics ---------------------------------------------------------------

    def ready(self) -> bool:
        """Whether new calls can be taken without waiting or losing spend: False only
        when the spend journal (or, without one, the ledger's memory queue) is full."""
        return not self.ledger.full

    def status(self) -> dict[str, Any]:
        """JSON for a readiness answer: `status` is `ok`, `degraded` (the database or Redis
        is down, or the ledger cannot write and spools: calls are still served) or
        `unavailable` (`ready()` is False: new calls are refused with 503)."""
        ledger = self.ledger
        journal = ledger.journal
        report: dict[str, Any] = {
            "database": {**self.database.status(), "migrated": self.store.migrated},
            "ledger": {
                "writing": ledger.writing,
                "spooling": ledger.spooling,
                "queued_rows": len(ledger.queue),
                "spool_rows": journal.backlog if journal else 0,
                "spool_bytes": journal.size if journal else 0,
                "journal": str(journal.directory) if journal else None,
                "dead_lettered": ledger.stats.dead_lettered,
                "last_error": ledger.last_error,
            },
        }
        healthy = self.database.up and ledger.writing and self.store.migrated
        if self.redis is not None:
            report["redis"] = {**self.redis_health.status(), "invalidations": self.cache.subscribed}
            healthy = healthy and self.redis_health.up
        state = "ok" if healthy else "degraded"
        report["status"] = state if self.ready() else "unavailable"
        return report

    def metrics(self) -> dict[str, float]:
        """Counters and gauges by their exported names (cheap: no I/O)."""
        values = self.ledger.metrics()
        values.update(
            {
                "genroute_database_up": float(self.database.up),
                "genroute_database_failures_total": self.database.failures,
                "genroute_governance_ready": float(self.ready()),
                "genroute_governance_stale_rows_served_total": self.cache.stale_served,
                "genroute_governance_unavailable_total": self.cache.refused,
                "genroute_governance_local_budget_holds_total": self.budgets.local_holds,
            }
        )
        if self.redis is not None:
            values["genroute_redis_up"] = float(self.redis_health.up)
            values["genroute_redis_failures_total"] = self.redis_health.failures
            values["genroute_governance_local_limit_admissions_total"] = getattr(
                self.limiter, "local_admissions", 0
            )
        return values

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
        row = await self.known_key(key)
        self.check_key(row)
        return row

    async def known_key(self, key: str | None) -> dict[str, Any] | None:
        """The virtual key's row, blocked or expired or not (see `check_key`), or None for
        the master key (or no auth configured); 403/401 for a missing or unknown key."""
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
        return row

    def check_key(self, row: dict[str, Any] | None) -> None:
        """Refuse a blocked (403) or expired (401) key's row."""
        if row is None:
            return
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

    async def cache_controls(self, caller: Caller) -> dict[str, Any]:
        """The response cache's switches for a caller (LiteLLM's `metadata.cache`: `no-cache`,
        `no-store`, `ttl`, `s-maxage`, `namespace`): its team's, then its key's over them."""
        merged: dict[str, Any] = {}
        rows: list[dict[str, Any] | None] = []
        if caller.team_id:
            rows.append(await self.cache.get("team", caller.team_id))
        if caller.key_hash and not self.is_master(caller.key_hash):
            rows.append(await self.cache.get("key", caller.key_hash))
        for row in rows:
            settings = ((row or {}).get("metadata") or {}).get("cache")
            if isinstance(settings, dict):
                merged.update(settings)
        return merged

    # -- admission and settlement ----------------------------------------------------------

    def _budget(self, kind: str, ident: str, row: dict[str, Any], label: str) -> Budget | None:
        """The row's budget (None without one); a 429 at once when the spend this instance
        knows of already reaches it."""
        limit = row.get("max_budget")
        if limit is None:
            return None
        resets = row.get("budget_reset_at")
        budget = Budget(
            kind,
            ident,
            label,
            float(limit),
            float(row.get("spend") or 0.0),
            str(resets or ""),
            resets,
        )
        spend = self.cache.spend(kind, ident, row)
        if spend >= budget.limit:
            raise budget_refusal(budget, spend, 0.0)
        return budget

    async def _rows(self, caller: Caller) -> list[tuple[str, str, dict[str, Any], str]]:
        rows: list[tuple[str, str, dict[str, Any], str]] = []
        team_id = caller.team_id
        if caller.key_hash and not self.is_master(caller.key_hash):
            key = await self.cache.get("key", caller.key_hash)
            if key is not None:
                self.check_key(key)
                team_id = key.get("team_id")
                label = f"key {key.get('key_alias') or key.get('key_name')!r}"
                rows.append(("key", caller.key_hash, key, label))
        if team_id:
            team = await self.cache.get("team", team_id)
            if team is not None:
                rows.append(("team", team_id, team, f"team {team_id!r}"))
        if caller.end_user:
            user = await self._end_user(caller.end_user)
            if user is not None:
                rows.append(("end_user", caller.end_user, user, f"end user {caller.end_user!r}"))
        return rows

    async def _end_user(self, end_user: str) -> dict[str, Any] | None:
        user = await self.cache.get("end_user", end_user)
        if user is None:
            await self.store.ensure_end_user(end_user)  # ServiceUnavailable when down
            self.cache.forget("end_user", end_user)
            user = await self.cache.get("end_user", end_user)
        return user

    def _checks(
        self, group: str, rows: list[tuple[str, str, dict[str, Any], str]], any_model: bool
    ) -> tuple[list[LimitCheck], list[Budget]]:
        checks: list[LimitCheck] = []
        budgets: list[Budget] = []
        for kind, ident, row, label in rows:
            if row.get("blocked"):
                raise PermissionDenied(f"The {label} is blocked.")
            if kind != "end_user" and not any_model and not model_allowed(row.get("models"), group):
                raise PermissionDenied(
                    f"The {label} may not use model {group!r}; "
                    f"it may use: {', '.join(row['models'])}",
                    details=[_error_info("MODEL_NOT_ALLOWED")],
                )
            if (budget := self._budget(kind, ident, row, label)) is not None:
                budgets.append(budget)
            checks.append(
                LimitCheck(
                    f"{kind}:{ident}",
                    label,
                    row.get("rpm_limit"),
                    row.get("tpm_limit"),
                    row.get("max_parallel_requests"),
                )
            )
        return checks, budgets

    async def admit(self, call: Call, group: str, estimate: float) -> Admission:
        """Refuse the call (403 model/blocked, 429 budget/limit, 503 when the key store or
        the spend journal cannot take it) or count it in.

        `group` is the model group the call's model resolves to; `estimate` the most the
        call can cost in USD, held on each of its budgets until `settle`."""
        if self.ledger.full:
            raise ServiceUnavailable(
                "The spend ledger is full (the database has been unavailable for a while); "
                "retry later",
                retry_after=5.0,
            )
        # The response cache's own embedding of a prompt is charged to the caller (budgets),
        # but not refused for a model the key does not list (the operator chose that model)
        # and not counted in its limits: it is part of the caller's one request, which
        # already holds its rpm and parallel slot (with max_parallel_requests 1 it would
        # always be refused).
        internal = call.cache.embedding_for is not None
        checks, budgets = self._checks(group, await self._rows(call.caller), internal)
        row_id = new_row_id()
        hold = await self.budgets.reserve(budgets, row_id, max(0.0, estimate))
        try:
            ticket = await self.limiter.admit([] if internal else checks)
        except BaseException:
            await self.budgets.cancel(hold)
            raise
        return Admission(ticket, hold, row_id)

    async def settle(
        self,
        call: Call,
        admission: Admission | None,
        *,
        status_code: int,
        error_status: str | None,
        finished: float,
    ) -> None:
        """A call ended: queue its ledger row (first: nothing after it can lose it), note
        its spend, free its holds and limits. `admission` is None for a call refused before
        it was admitted. Never raises."""
        cost = call.meter.cost or 0.0
        caller = call.caller
        try:
            record = SpendRecord.of(
                call,
                status_code=status_code,
                error_status=error_status,
                finished=finished,
                row_id=admission.row_id if admission is not None else None,
            )
            await self.ledger.submit(record)
        except Exception:
            log.exception("spend ledger: request %s could not be queued", call.request_id)
        for kind, ident in (
            ("key", caller.key_hash),
            ("team", caller.team_id),
            ("end_user", caller.end_user),
        ):
            if ident:
                self.cache.add_pending(kind, ident, cost)
        if admission is None:
            return
        await self.budgets.settle(admission.hold, cost)
        try:
            await self.limiter.release(admission.ticket, Tokens.from_usage(call.meter.usage).total)
        except Exception:
            log.exception("limits: releasing request %s failed", call.request_id)

    async def refused(self, call: Call, error: GenrouteError) -> None:
        """A known caller's call refused before it reached a model (its key blocked or
        expired, a model its key or team may not use, a budget, a rate limit): a ledger
        row with its status, why, and cost 0, so that Logs and the reports show it. Not
        for a missing or unknown key (junk traffic must not fill the database), nor while
        the spend ledger is full. Never raises."""
        if self.ledger.full:
            return
        try:
            record = SpendRecord.of(
                call,
                status_code=error.code,
                error_status=error.status,
                finished=time.perf_counter(),
            )
            record.routing = refusal_json(_reason(error), error.message)
            await self.ledger.submit(record)
        except Exception:
            log.exception("spend ledger: refused request %s could not be queued", call.request_id)

    async def charge(self, record: SpendRecord) -> None:
        """Record a charge that is no model call (a context cache's storage on a provider)
        in the ledger, and count it in the spend of its key, team and end user. Never
        raises."""
        try:
            await self.ledger.submit(record)
        except Exception:
            log.exception("spend ledger: charge %s could not be queued", record.request_id)
            return
        for kind, ident in (
            ("key", record.key_hash),
            ("team", record.team_id),
            ("end_user", record.end_user),
        ):
            if ident:
                self.cache.add_pending(kind, ident, record.cost)
