"""Governance in process, on real SQLite and PostgreSQL: keys, budgets, limits, the ledger.

A Router with the demo model (priced in model_info) and the Governance hook; calls go
through `authenticate` as the HTTP edge does, then the Router.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select

from genroute.context import CallContext
from genroute.cost import pricer_for
from genroute.errors import GenrouteError, PermissionDenied, RateLimited, Unauthenticated
from genroute.governance import Governance
from genroute.router import Router
from genroute.store import Store, hash_key
from genroute.store.models import SpendLog
from genroute.wire import GenerateContentRequest

MASTER = "sk-master-test"
PRICES = {"input_cost_per_token": 0.001, "output_cost_per_token": 0.002}
MODELS: list[dict[str, Any]] = [
    {"model_name": "demo", "params": {"model": "demo/echo"}, "model_info": PRICES},
    {"model_name": "other", "params": {"model": "demo/other"}, "model_info": PRICES},
]
# "hello there": 2 prompt tokens; the demo answers with 10 words.
CALL_COST = 2 * 0.001 + 10 * 0.002
REQUEST = GenerateContentRequest.model_validate(
    {"contents": [{"role": "user", "parts": [{"text": "hello there"}]}]}
)


@dataclass
class Env:
    store: Store
    gov: Governance
    router: Router

    async def call(
        self, key: str | None = None, end_user: str | None = None, model: str = "demo"
    ) -> float:
        row = await self.gov.authenticate(key)
        ctx = CallContext(key_hash=hash_key(key) if key else None, end_user=end_user)
        self.gov.identify(ctx, row)
        await self.router.generate(model, REQUEST, ctx)
        assert ctx.cost is not None
        return ctx.cost

    async def key(self, **fields: Any) -> str:
        return str((await self.store.create_key(fields))["key"])


@pytest.fixture
async def env(store: Store) -> AsyncIterator[Env]:
    gov = Governance(store, pricer=pricer_for(Router(MODELS).config.model_list), master_key=MASTER)
    await gov.start()
    router = Router(MODELS, hooks=[gov])
    yield Env(store, gov, router)
    await gov.aclose()
    await router.aclose()


async def _outcomes(calls: list[Any]) -> tuple[int, list[BaseException]]:
    results = await asyncio.gather(*calls, return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    return len(results) - len(errors), errors


async def test_200_concurrent_calls_all_in_the_ledger(env: Env) -> None:
    keys = [await env.key(key_alias=f"k{i}") for i in range(3)]
    users = [f"user-{i}" for i in range(5)]
    ok, errors = await _outcomes([env.call(keys[i % 3], users[i % 5]) for i in range(200)])
    assert ok == 200 and not errors
    await env.gov.ledger.flush()
    async with env.store.session() as session:
        rows = await session.scalar(select(func.count(SpendLog.id)))
        ledger = await session.scalar(select(func.sum(SpendLog.cost)))
    by_key = sum([(await env.store.get("key", hash_key(k)) or {})["spend"] for k in keys])
    by_user = sum([(await env.store.get("end_user", u) or {})["spend"] for u in users])
    assert rows == 200
    assert ledger == pytest.approx(200 * CALL_COST, rel=1e-9)
    assert by_key == pytest.approx(ledger, rel=1e-9)
    assert by_user == pytest.approx(ledger, rel=1e-9)


async def test_auth_at_the_edge(env: Env) -> None:
    with pytest.raises(PermissionDenied, match="unregistered callers"):
        await env.gov.authenticate(None)
    with pytest.raises(Unauthenticated, match="not valid"):
        await env.gov.authenticate("sk-nope")
    assert await env.gov.authenticate(MASTER) is None
    key = await env.key(key_alias="edge")
    row = await env.gov.authenticate(key)
    assert row is not None and row["key_alias"] == "edge"
    blocked = await env.key(blocked=True)
    with pytest.raises(PermissionDenied, match="blocked"):
        await env.gov.authenticate(blocked)
    expired = await env.key(duration="1s")
    await asyncio.sleep(1.1)
    with pytest.raises(Unauthenticated, match="expired"):
        await env.gov.authenticate(expired)


async def test_model_list_is_enforced(env: Env) -> None:
    key = await env.key(models=["demo"])
    await env.call(key)
    with pytest.raises(PermissionDenied, match="may not use model 'other'") as err:
        await env.call(key, model="other")
    assert err.value.code == 403
    await env.store.create("team", {"team_id": "t", "models": ["other"]})
    team_key = await env.key(team_id="t")
    with pytest.raises(PermissionDenied, match="team 't' may not use model 'demo'"):
        await env.call(team_key)


async def test_key_budget_holds_under_concurrency(env: Env) -> None:
    budget = 10 * CALL_COST + CALL_COST / 2
    key = await env.key(max_budget=budget)
    ok = 0
    for _ in range(6):  # waves of 5 concurrent calls
        done, errors = await _outcomes([env.call(key) for _ in range(5)])
        ok += done
        assert all(isinstance(e, RateLimited) and "Budget exceeded" in e.message for e in errors)
    spend = env.gov.cache.spend(
        "key", hash_key(key), await env.store.get("key", hash_key(key)) or {}
    )
    # Admitted while spend < budget; at most one wave (the calls in flight) overshoots.
    assert 11 <= ok <= 15
    assert budget <= spend <= budget + 5 * CALL_COST
    await env.gov.ledger.flush()
    stored = await env.store.get("key", hash_key(key))
    assert stored is not None and stored["spend"] == pytest.approx(ok * CALL_COST)


async def test_end_user_created_on_first_sight_and_budgeted(env: Env) -> None:
    await env.call(MASTER, "newcomer")
    assert await env.store.get("end_user", "newcomer") is not None
    await env.store.create("end_user", {"end_user_id": "capped", "max_budget": CALL_COST * 2})
    await env.call(MASTER, "capped")
    await env.call(MASTER, "capped")
    with pytest.raises(RateLimited, match="end user 'capped'"):
        await env.call(MASTER, "capped")
    await env.call(MASTER, "someone-else")


def _fresh_minute() -> None:
    if time.time() % 60 > 57:
        time.sleep(60 - time.time() % 60 + 0.05)


async def test_rpm_limit_under_concurrency(env: Env) -> None:
    _fresh_minute()
    key = await env.key(rpm_limit=10)
    ok, errors = await _outcomes([env.call(key) for _ in range(30)])
    assert ok == 10 and len(errors) == 20
    err = errors[0]
    assert isinstance(err, RateLimited) and err.code == 429
    assert err.retry_after is not None and 0 < err.retry_after <= 60
    body = err.to_body()["error"]
    assert body["status"] == "RESOURCE_EXHAUSTED"
    assert any(d["@type"].endswith("RetryInfo") for d in body["details"])


async def test_tpm_and_team_limits(env: Env) -> None:
    _fresh_minute()
    key = await env.key(tpm_limit=20)  # each call uses 12 tokens
    await env.call(key)
    await env.call(key)
    with pytest.raises(RateLimited, match="tpm_limit is 20"):
        await env.call(key)
    await env.store.create("team", {"team_id": "small", "rpm_limit": 3})
    a, b = await env.key(team_id="small"), await env.key(team_id="small")
    ok, errors = await _outcomes([env.call(k) for k in (a, b, a, b, a, b)])
    assert ok == 3 and all("team 'small'" in str(e) for e in errors)


async def test_parallel_limit(env: Env) -> None:
    key = await env.key(max_parallel_requests=2)
    row = await env.gov.authenticate(key)

    def open_stream() -> AsyncIterator[Any]:
        ctx = CallContext(key_hash=hash_key(key))
        env.gov.identify(ctx, row)
        return env.router.stream("demo", REQUEST, ctx)

    first, second, third = open_stream(), open_stream(), open_stream()
    await anext(first)  # type: ignore[arg-type]
    await anext(second)  # type: ignore[arg-type]
    with pytest.raises(RateLimited, match="max_parallel_requests is 2"):
        await anext(third)  # type: ignore[arg-type]
    async for _ in first:
        pass
    fourth = open_stream()
    chunks = [c async for c in fourth]
    assert chunks
    await second.aclose()  # type: ignore[attr-defined]


async def test_changes_take_effect_without_restart(env: Env) -> None:
    key = await env.key()
    await env.call(key)
    await env.store.update("key", hash_key(key), {"blocked": True})
    await env.gov.cache.invalidate("key", hash_key(key))
    with pytest.raises(GenrouteError, match="blocked"):
        await env.call(key)


async def test_unknown_model_costs_zero(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    router = Router([{"model_name": "free", "params": {"model": "demo/free"}}], hooks=[env.gov])
    try:
        for _ in range(3):
            ctx = CallContext(key_hash=hash_key(MASTER))
            await router.generate("free", REQUEST, ctx)
            assert ctx.cost == 0.0
    finally:
        await router.aclose()
    warnings = [r for r in caplog.records if "no price known for model demo/free" in r.message]
    assert len(warnings) == 1


async def test_budget_overshoot_with_calls_in_flight(env: Env) -> None:
    """With a slow upstream many calls are in flight at once; reservations bound overshoot."""
    for deployment in env.router.group("demo"):
        fast = deployment.provider.generate

        async def slow(request: GenerateContentRequest, fast: Any = fast) -> Any:
            await asyncio.sleep(0.02)
            return await fast(request)

        deployment.provider.generate = slow  # type: ignore[method-assign]

    async def waves(key: str, request: GenerateContentRequest) -> int:
        served = 0
        row = await env.gov.authenticate(key)
        for _ in range(3):

            async def one() -> None:
                ctx = CallContext(key_hash=hash_key(key))
                env.gov.identify(ctx, row)
                await env.router.generate("demo", request, ctx)

            ok, errors = await _outcomes([one() for _ in range(50)])
            assert all(isinstance(e, RateLimited) for e in errors)
            served += ok
        return served

    # maxOutputTokens makes the first estimate the worst case: no cold-start overshoot.
    bounded = GenerateContentRequest.model_validate(
        {
            "contents": [{"role": "user", "parts": [{"text": "hello there"}]}],
            "generationConfig": {"maxOutputTokens": 10},
        }
    )
    first = await env.key(max_budget=10 * CALL_COST + 1e-9)
    assert 10 <= await waves(first, bounded) <= 11
    # Without it, once the budget has a cost history, reservations use the average.
    second = await env.key(max_budget=20 * CALL_COST + 1e-9)
    await env.call(second)
    assert 19 <= await waves(second, REQUEST) <= 21


async def test_a_stream_without_usage_is_estimated(env: Env) -> None:
    ctx = CallContext(stream=True, model_group="demo", provider="demo", provider_model="echo")
    ctx.first_token_at = ctx.started
    ctx.response_text = ["x" * 40]
    env.gov.price(ctx, REQUEST)
    assert ctx.cost_estimated is True
    # "hello there" is 3 tokens at 4 characters a token; 40 characters of answer are 10.
    assert ctx.cost == pytest.approx(3 * 0.001 + 10 * 0.002)
    failed = CallContext(model_group="demo")
    env.gov.price(failed, REQUEST)
    assert failed.cost == 0.0 and not failed.cost_estimated
