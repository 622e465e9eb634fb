"""Governance: who may call, within which budgets and limits, and what each call cost.

`Governance.authenticate` runs at the HTTP edge (master key or a valid virtual key);
`before_call` and `after_call` make it a `CallHook` on the Router, so the proxy and the SDK
share it. Before a call: the key's and team's model lists, blocked rows, budgets (spend in
the database plus this instance's spend not yet written) and rpm/tpm/parallel limits of
the key, its team and the end user. After it: the cost (see `genroute.cost`), the limits
released, and one row queued for the spend ledger.

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
from datetime import datetime
from typing import Any

from genroute.context import CallContext
from genroute.cost import Pricer, Tokens, estimate_usage
from genroute.errors import GenrouteError, PermissionDenied, RateLimited, Unauthenticated
from genroute.governance.cache import EntityCache
from genroute.governance.limits import LimitCheck, Limiter, MemoryLimiter, Ticket
from genroute.store.ledger import LedgerWriter, SpendRecord
from genroute.store.repo import Store, hash_key, utcnow
from genroute.wire import GenerateContentRequest, WireModel

log = logging.getLogger("genroute.governance")

ALL_MODELS = {"*", "all-proxy-models"}
_KIND_LABEL = {"key": "key", "team": "team", "end_user": "end user"}


def _error_info(reason: str) -> dict[str, object]:
    return {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": "genroute",
    }


def model_allowed(models: list[str] | None, model: str | None) -> bool:
    """Whether a model list (empty: every model) allows a model group."""
    if not models or model is None:
        return True
    return any(m in ALL_MODELS or m == model or fnmatch.fnmatchcase(model, m) for m in models)


def _expired(row: dict[str, Any]) -> bool:
    expires = row.get("expires")
    return isinstance(expires, str) and datetime.fromisoformat(expires) <= utcnow()


class Governance:
    """Keys, budgets, limits and spend, as the edge's authenticator and a Router hook."""

    def __init__(
        self,
        store: Store,
        *,
        pricer: Pricer | None = None,
        master_key: str | None = None,
        limiter: Limiter | None = None,
        redis: Any = None,
        cache_ttl: float = 2.0,
        flush_interval: float = 1.0,
    ) -> None:
        self.store = store
        self.pricer = pricer or Pricer()
        self._master = hash_key(master_key).encode() if master_key else None
        self.redis = redis
        self.limiter: Limiter = limiter or MemoryLimiter()
        self.cache = EntityCache(store, cache_ttl, redis)
        self.ledger = LedgerWriter(
            store, flush_interval=flush_interval, on_commit=self.cache.committed
        )
        self._admitted: dict[int, tuple[Ticket, list[tuple[tuple[str, str], float]]]] = {}
        self._prompts: dict[int, GenerateContentRequest] = {}

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

    @staticmethod
    def _check_key(row: dict[str, Any]) -> None:
        if row.get("blocked"):
            raise PermissionDenied("This key is blocked.", details=[_error_info("API_KEY_BLOCKED")])
        if _expired(row):
            raise Unauthenticated(
                f"API key expired at {row['expires']}. Please renew the API key.",
                details=[_error_info("API_KEY_EXPIRED")],
            )

    def identify(self, ctx: CallContext, row: dict[str, Any] | None) -> None:
        """Copy a key's identity onto the call."""
        if row is not None:
            ctx.key_alias = row.get("key_alias")
            ctx.team_id = row.get("team_id")
            ctx.user_id = row.get("user_id")

    # -- CallHook ------------------------------------------------------------------------------

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

    async def _rows(self, ctx: CallContext) -> list[tuple[str, str, dict[str, Any], str]]:
        rows: list[tuple[str, str, dict[str, Any], str]] = []
        if ctx.key_hash and not self.is_master(ctx.key_hash):
            key = await self.cache.get("key", ctx.key_hash)
            if key is not None:
                self._check_key(key)
                self.identify(ctx, key)
                label = f"key {key.get('key_alias') or key.get('key_name')!r}"
                rows.append(("key", ctx.key_hash, key, label))
        if ctx.team_id:
            team = await self.cache.get("team", ctx.team_id)
            if team is not None:
                rows.append(("team", ctx.team_id, team, f"team {ctx.team_id!r}"))
        if ctx.end_user:
            user = await self.cache.get("end_user", ctx.end_user)
            if user is None:
                await self.store.ensure_end_user(ctx.end_user)
                self.cache.forget("end_user", ctx.end_user)
                user = await self.cache.get("end_user", ctx.end_user)
            if user is not None:
                rows.append(("end_user", ctx.end_user, user, f"end user {ctx.end_user!r}"))
        return rows

    async def before_call(self, ctx: CallContext, request: WireModel) -> None:
        """Refuse the call (403 model/blocked, 429 budget/limit) or count it."""
        rows = await self._rows(ctx)
        checks: list[LimitCheck] = []
        budgets: list[tuple[str, str]] = []
        for kind, ident, row, label in rows:
            if row.get("blocked"):
                raise PermissionDenied(f"The {label} is blocked.")
            if kind != "end_user" and not model_allowed(row.get("models"), ctx.model_group):
                raise PermissionDenied(
                    f"The {label} may not use model {ctx.model_group!r}; "
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
        estimate = 0.0
        if isinstance(request, GenerateContentRequest):
            self._prompts[id(ctx)] = request
            if budgets:
                estimate = self._estimate(ctx, request)
        self._admitted[id(ctx)] = (ticket, self.cache.begin(budgets, estimate))

    def _estimate(self, ctx: CallContext, request: GenerateContentRequest) -> float:
        """A guess at a call's cost before it runs: its prompt, and maxOutputTokens of output
        when the request sets it (the worst case), else as much output as prompt."""
        guess = estimate_usage(request, 0)
        output = guess.prompt_token_count or 0
        config = request.generation_config
        if config is not None and config.max_output_tokens:
            output = config.max_output_tokens
        guess.candidates_token_count = output
        return self.pricer.cost(
            guess, ctx.provider, ctx.provider_model, ctx.deployment_id, ctx.model_group, quiet=True
        ).usd

    def price(self, ctx: CallContext, request: GenerateContentRequest | None) -> None:
        """Set `ctx.cost` from its usage (estimated for a stream that reported none)."""
        usage = ctx.usage
        if usage is None and ctx.stream and request is not None and ctx.first_token_at:
            output_chars = sum(len(t) for t in ctx.response_text or ())
            usage = estimate_usage(request, output_chars)
            ctx.cost_estimated = True
        if usage is None:
            ctx.cost = 0.0
            return
        ctx.cost = self.pricer.cost(
            usage, ctx.provider, ctx.provider_model, ctx.deployment_id, ctx.model_group
        ).usd

    async def after_call(self, ctx: CallContext, error: GenrouteError | None) -> None:
        """Price the call, release its limits and queue its ledger row."""
        request = self._prompts.pop(id(ctx), None)
        if ctx.cost is None:
            self.price(ctx, request)
        cost = ctx.cost or 0.0
        admitted = self._admitted.pop(id(ctx), None)
        if admitted is not None:
            ticket, held = admitted
            self.cache.end(held, cost)
            await self.limiter.release(ticket, Tokens.from_usage(ctx.usage).total)
        if ctx.key_hash:
            self.cache.add_pending("key", ctx.key_hash, cost)
        if ctx.team_id:
            self.cache.add_pending("team", ctx.team_id, cost)
        if ctx.end_user:
            self.cache.add_pending("end_user", ctx.end_user, cost)
        await self.ledger.submit(SpendRecord.from_context(ctx))
