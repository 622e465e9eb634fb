"""Retry budgets and cooldowns: a failing upstream gets fewer requests, not more.

A burst of failing calls used to multiply: each call retried and fell back through groups
whose single deployment never cooled down. Now every deployment that keeps failing cools
down, and retries and fallbacks after a failure are held under `retry_budget_percent` of
the calls of the group the client called, plus `retry_budget_min_retries`.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from genroute.errors import GenrouteError
from genroute.routing import Router
from genroute.routing.budget import MAX_BUDGETS, RetryBudgets
from tests.calls import call
from tests.fakes.gemini_upstream import FakeGemini
from tests.routing.conftest import REQUEST, UPSTREAM_KEY, ManualClock

BURST = 160
PER_CALL_LIMIT = 1.3


async def no_sleep(seconds: float) -> None:
    return None


@pytest.fixture
async def routers() -> AsyncIterator[list[Router]]:
    made: list[Router] = []
    yield made
    for router in made:
        await router.aclose()


def params(fake: FakeGemini, model: str, **extra: Any) -> dict[str, Any]:
    return {"model": f"gemini/{model}", "api_key": UPSTREAM_KEY, "api_base": fake.base_url, **extra}


def storm_config(fake: FakeGemini) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One failing call makes 11 attempts: 3 in `flash` (two deployments), then 4 in each
    of its fallbacks `pro` and `lite`, single deployments without fallbacks of their own."""
    entries = [
        {"model_name": "flash", "params": params(fake, "gemini-2.5-flash")},
        {"model_name": "flash", "params": params(fake, "gemini-2.0-flash")},
        {"model_name": "pro", "params": params(fake, "gemini-2.5-pro", num_retries=3)},
        {"model_name": "lite", "params": params(fake, "gemini-2.5-flash-lite", num_retries=3)},
    ]
    return entries, {"num_retries": 2, "fallbacks": [{"flash": ["pro", "lite"]}]}


def router(
    made: list[Router], entries: list[dict[str, Any]], clock: ManualClock, **settings: Any
) -> Router:
    r = Router(entries, router_settings=settings, clock=clock, sleep=no_sleep)
    made.append(r)
    return r


async def burst(r: Router, names: list[str]) -> list[int]:
    async def one(name: str) -> int:
        try:
            await r.generate(call(name), REQUEST)
        except GenrouteError as exc:
            return exc.code
        return 200

    return await asyncio.gather(*(one(name) for name in names))


async def test_one_failing_call_makes_its_configured_attempts(
    fakes: list[FakeGemini], routers: list[Router]
) -> None:
    fake = fakes[0]
    fake.script("error", code=500, times=None)
    entries, settings = storm_config(fake)
    r = router(routers, entries, ManualClock(), **settings)
    with pytest.raises(GenrouteError) as info:
        await r.generate(ctx := call("flash"), REQUEST)
    assert info.value.code == 500
    assert len(fake.requests) == len(ctx.route.attempts) == 11
    assert ctx.route.fallbacks == ["pro", "lite"]


async def test_a_burst_of_failing_calls_makes_few_requests_per_call(
    fakes: list[FakeGemini], routers: list[Router]
) -> None:
    fake = fakes[0]
    fake.script("error", code=500, times=None)
    entries, settings = storm_config(fake)
    r = router(routers, entries, ManualClock(), **settings)
    codes = await burst(r, ["flash"] * BURST)
    per_call = len(fake.requests) / BURST
    print(f"{BURST} failing calls: {len(fake.requests)} upstream requests, {per_call:.2f} per call")
    assert per_call <= PER_CALL_LIMIT  # was 9.06 (1450 requests) before retry budgets
    assert set(codes) <= {500, 503}  # the upstream's error, or "no deployment available"
    # Every deployment that failed more than allowed_fails (3) times is cooling down.
    failed = Counter(f"gemini/{request.model}" for request in fake.requests)
    health = await r.health()
    cooling = {e["model"] for e in health["unhealthy_endpoints"]}
    assert {model for model, n in failed.items() if n > 3} == cooling
    assert len(cooling) >= 3


async def test_the_budget_holds_for_a_lone_deployment_without_fallbacks(
    fakes: list[FakeGemini], routers: list[Router]
) -> None:
    """Such a deployment is still tried while it cools down (the client gets the upstream's
    own error, as in LiteLLM), but its retries are budgeted like any others."""
    fake = fakes[0]
    fake.script("error", code=503, times=None)
    r = router(routers, [{"model_name": "g", "params": params(fake, "gemini-2.5-flash")}],
               ManualClock(), num_retries=10)  # fmt: skip
    codes = await burst(r, ["g"] * BURST)
    assert set(codes) == {503}
    assert len(fake.requests) / BURST <= PER_CALL_LIMIT
    assert (await r.health())["unhealthy_count"] == 1


async def test_distinct_wildcard_names_share_their_entrys_budget(
    fakes: list[FakeGemini], routers: list[Router]
) -> None:
    fake = fakes[0]
    fake.script("error", code=500, times=None)
    entry = {"model_name": "gemini-*", "params": params(fake, "gemini-*")}
    r = router(routers, [entry], ManualClock(), num_retries=5)
    await burst(r, [f"gemini-storm-{i}" for i in range(BURST)])
    assert len(fake.requests) / BURST <= PER_CALL_LIMIT


async def test_without_the_budget_the_burst_multiplies(
    fakes: list[FakeGemini], routers: list[Router]
) -> None:
    fake = fakes[0]
    fake.script("error", code=500, times=None)
    entry = {"model_name": "g", "params": params(fake, "gemini-2.5-flash")}
    r = router(routers, [entry], ManualClock(), num_retries=3, disable_retry_budget=True)
    await burst(r, ["g"] * BURST)
    assert len(fake.requests) == 4 * BURST


async def test_a_healthy_group_still_retries_a_transient_failure(
    fakes: list[FakeGemini], routers: list[Router]
) -> None:
    fake = fakes[0]
    entry = {"model_name": "g", "params": params(fake, "gemini-2.5-flash")}
    clock = ManualClock()
    r = router(routers, [entry], clock, num_retries=2)
    for _ in range(50):
        await r.generate(call("g"), REQUEST)
    for _ in range(10):  # 10 transient failures among 60 calls: each one retried
        fake.script("error", code=503)
        await r.generate(ctx := call("g"), REQUEST)
        assert [a.ok for a in ctx.route.attempts] == [False, True]


async def test_the_budget_refills_as_its_window_passes(
    fakes: list[FakeGemini], routers: list[Router]
) -> None:
    fake = fakes[0]
    fake.script("error", code=500, times=None)
    entry = {"model_name": "g", "params": params(fake, "gemini-2.5-flash")}
    clock = ManualClock()
    r = router(routers, [entry], clock, num_retries=1, retry_budget_min_retries=2,
               retry_budget_percent=0, disable_cooldowns=True)  # fmt: skip
    attempts = []
    for _ in range(4):
        with pytest.raises(GenrouteError):
            await r.generate(ctx := call("g"), REQUEST)
        attempts.append(len(ctx.route.attempts))
    assert attempts == [2, 2, 1, 1]  # the floor of 2 retries per window is spent
    clock.advance(10.0)
    with pytest.raises(GenrouteError):
        await r.generate(ctx := call("g"), REQUEST)
    assert len(ctx.route.attempts) == 2


async def test_fallbacks_to_a_group_that_answers_are_not_budgeted(
    fakes: list[FakeGemini], routers: list[Router]
) -> None:
    """Every call fails on `primary` (cooldowns off): the backup, once it has answered,
    takes them all; a backup that fails too gets only what the budget allows."""
    bad, good = fakes[0], fakes[1]
    bad.script("error", code=500, times=None)
    entries = [
        {"model_name": "primary", "params": params(bad, "gemini-2.5-flash")},
        {"model_name": "backup", "params": params(good, "gemini-2.5-flash")},
        {"model_name": "also-bad", "params": params(bad, "gemini-2.5-pro")},
        {"model_name": "other", "params": params(bad, "gemini-2.0-flash")},
    ]
    r = router(routers, entries, ManualClock(), disable_cooldowns=True,
               fallbacks=[{"primary": ["backup"]}, {"other": ["also-bad"]}],
               retry_budget_min_retries=1, retry_budget_percent=0)  # fmt: skip
    for _ in range(20):
        await r.generate(ctx := call("primary"), REQUEST)
        assert ctx.route.group == "backup"
    assert len(good.requests) == 20
    codes = await burst(r, ["other"] * 5)
    assert codes == [500] * 5
    assert sum("gemini-2.5-pro" in q.path for q in bad.requests) == 1  # the budget's floor


async def test_fallbacks_past_a_cooldown_are_no_retries(
    fakes: list[FakeGemini], routers: list[Router]
) -> None:
    bad, good = fakes[0], fakes[1]
    bad.script("error", code=500, times=None)
    good.script("error", code=503, times=None)
    entries = [
        {"model_name": "primary", "params": params(bad, "gemini-2.5-flash")},
        {"model_name": "backup", "params": params(good, "gemini-2.5-flash")},
    ]
    r = router(routers, entries, ManualClock(), fallbacks=[{"primary": ["backup"]}],
               allowed_fails=0, cooldown_time=30, retry_budget_min_retries=0,
               retry_budget_percent=0)  # fmt: skip
    with pytest.raises(GenrouteError) as info:
        await r.generate(ctx := call("primary"), REQUEST)
    assert info.value.code == 500 and ctx.route.fallbacks == []  # no budget for a retry
    # `primary` is cooling now: calls go straight to the backup, which is no retry.
    for _ in range(3):
        with pytest.raises(GenrouteError) as info:
            await r.generate(ctx := call("primary"), REQUEST)
        assert info.value.code == 503 and ctx.route.fallbacks == ["backup"]


async def test_a_context_window_fallback_is_no_retry(
    fakes: list[FakeGemini], routers: list[Router]
) -> None:
    small, big = fakes[0], fakes[1]
    message = "The input token count (1200000) exceeds the maximum number of tokens allowed."
    small.script("error", code=400, message=message, times=None)
    entries = [
        {"model_name": "small", "params": params(small, "gemini-2.5-flash")},
        {"model_name": "big", "params": params(big, "gemini-2.5-pro")},
    ]
    r = router(routers, entries, ManualClock(), context_window_fallbacks=[{"small": ["big"]}],
               retry_budget_min_retries=0, retry_budget_percent=0)  # fmt: skip
    assert await burst(r, ["small"] * 10) == [200] * 10


def test_budgets_alone() -> None:
    clock = ManualClock()
    budgets = RetryBudgets(percent=20, min_retries=1, window=10, clock=clock)
    assert budgets.try_retry("g") and not budgets.try_retry("g")  # the floor: one
    for _ in range(10):
        budgets.started("g")
    assert [budgets.try_retry("g") for _ in range(3)] == [True, True, False]  # 1 + 20% of 10
    clock.advance(5)
    assert not budgets.try_retry("g")
    clock.advance(5)  # the window has passed
    assert budgets.try_retry("g") and not budgets.try_retry("g")
    off = RetryBudgets(percent=0, min_retries=0, window=10, clock=clock, enabled=False)
    assert all(off.try_retry("g") for _ in range(100)) and len(off) == 0


def test_budgets_are_bounded() -> None:
    budgets = RetryBudgets(percent=20, min_retries=1, window=10, clock=ManualClock())
    for i in range(MAX_BUDGETS * 3):
        budgets.started(f"group-{i}")
    assert len(budgets) == MAX_BUDGETS


async def test_the_burst_with_state_in_redis(
    fakes: list[FakeGemini], routers: list[Router], redis_url: str
) -> None:
    from genroute.routing.redis_state import RedisState
    from tests.routing.conftest import unique_prefix

    fake = fakes[0]
    fake.script("error", code=500, times=None)
    entries, settings = storm_config(fake)
    state = RedisState(redis_url, prefix=unique_prefix("storm"))
    r = Router(entries, router_settings=settings, state=state, clock=ManualClock(), sleep=no_sleep)
    routers.append(r)
    try:
        await burst(r, ["flash"] * BURST)
        assert state.backend == "redis"
        assert len(fake.requests) / BURST <= PER_CALL_LIMIT
    finally:
        client = state._client
        keys = [k async for k in client.scan_iter(f"{state._prefix}:*")]
        if keys:
            await client.delete(*keys)
