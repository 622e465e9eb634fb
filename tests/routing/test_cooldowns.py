"""Cooldowns: a failing deployment is skipped for `cooldown_time`, then tried again."""

from __future__ import annotations

import pytest

from genroute.errors import GroupRateLimited, GroupUnavailable, RateLimited, UpstreamError
from tests.calls import call
from tests.fakes.gemini_upstream import FakeGemini
from tests.routing.conftest import REQUEST, ManualClock, entry, gemini, make_router


async def test_cooldown_after_allowed_fails_and_its_expiry(fakes: list[FakeGemini]) -> None:
    bad = fakes[0]
    bad.script("error", code=500, times=None)
    clock = ManualClock()
    router = make_router(
        [
            entry("g", gemini(bad, order=1), "bad"),
            entry("g", {"model": "demo/x", "order": 2}, "good"),
        ],
        clock,
        num_retries=1,
        allowed_fails=1,
        cooldown_time=0.6,
    )
    for _ in range(2):  # two failures: the second is over allowed_fails
        await router.generate(ctx := call("g"), REQUEST)
        assert [a.deployment_id for a in ctx.route.attempts] == ["bad", "good"]
    health = await router.health()
    assert [e["deployment"] for e in health["unhealthy_endpoints"]] == ["bad"]
    assert health["unhealthy_endpoints"][0]["cooldown_cause"] == "failure"
    for _ in range(3):
        await router.generate(ctx := call("g"), REQUEST)
        assert [a.deployment_id for a in ctx.route.attempts] == ["good"]
    assert len(bad.requests) == 2
    clock.advance(0.5)
    await router.generate(ctx := call("g"), REQUEST)
    assert [a.deployment_id for a in ctx.route.attempts] == ["good"]  # still cooling
    clock.advance(0.2)
    await router.generate(ctx := call("g"), REQUEST)
    assert ctx.route.attempts[0].deployment_id == "bad" and len(bad.requests) == 3


async def test_every_deployment_cooling_is_503(fakes: list[FakeGemini]) -> None:
    for fake in fakes[:2]:
        fake.script("error", code=500, times=None)
    router = make_router(
        [entry("g", gemini(fakes[0]), "a"), entry("g", gemini(fakes[1]), "b")],
        allowed_fails=0,
        cooldown_time=30,
        num_retries=1,
    )
    with pytest.raises(UpstreamError) as first:
        await router.generate(call("g"), REQUEST)
    assert first.value.code == 500  # the upstream's own error while it was being tried
    with pytest.raises(GroupUnavailable) as info:
        await router.generate(call("g"), REQUEST)
    error = info.value
    assert (error.code, error.status) == (503, "UNAVAILABLE")
    assert error.retry_after is not None and 1 <= error.retry_after <= 30
    assert "cooling down" in error.message
    assert error.to_body()["error"]["status"] == "UNAVAILABLE"


async def test_every_deployment_rate_limited_is_429_with_retry_info(
    fakes: list[FakeGemini],
) -> None:
    for fake in fakes[:2]:
        fake.script("error", code=429, retry_delay="20s", times=None)
    router = make_router(
        [entry("g", gemini(fakes[0]), "a"), entry("g", gemini(fakes[1]), "b")],
        allowed_fails=0,
        cooldown_time=1,
        num_retries=1,
    )
    with pytest.raises(UpstreamError):
        await router.generate(call("g"), REQUEST)
    with pytest.raises(GroupRateLimited) as info:
        await router.generate(call("g"), REQUEST)
    error = info.value
    assert isinstance(error, RateLimited) and error.code == 429
    assert error.retry_after is not None and 15 <= error.retry_after <= 20  # RetryInfo honoured
    assert error.headers()["retry-after"]


async def test_cooling_group_falls_back(fakes: list[FakeGemini]) -> None:
    fakes[0].script("error", code=500, times=None)
    router = make_router(
        [entry("g", gemini(fakes[0]), "a"), entry("backup", {"model": "demo/x"}, "backup")],
        allowed_fails=0,
        cooldown_time=30,
        fallbacks=[{"g": ["backup"]}],
    )
    for _ in range(3):
        await router.generate(ctx := call("g"), REQUEST)
        assert ctx.route.group == "backup"
    assert len(fakes[0].requests) == 1  # a single deployment with fallbacks cools down too


async def test_single_deployment_without_fallbacks_never_cools(fakes: list[FakeGemini]) -> None:
    fakes[0].script("error", code=500, times=3)
    router = make_router([entry("g", gemini(fakes[0]), "a")], allowed_fails=0)
    for _ in range(3):
        with pytest.raises(UpstreamError):
            await router.generate(call("g"), REQUEST)
    await router.generate(call("g"), REQUEST)


async def test_client_errors_do_not_cool_down(fakes: list[FakeGemini]) -> None:
    fakes[0].script("error", code=400, times=None)
    router = make_router(
        [entry("g", gemini(fakes[0]), "a"), entry("g", gemini(fakes[0]), "b")], allowed_fails=0
    )
    for _ in range(4):
        with pytest.raises(UpstreamError):
            await router.generate(call("g"), REQUEST)
    assert (await router.health())["unhealthy_count"] == 0


async def test_disable_cooldowns(fakes: list[FakeGemini]) -> None:
    fakes[0].script("error", code=500, times=None)
    router = make_router(
        [entry("g", gemini(fakes[0]), "a"), entry("g", gemini(fakes[0]), "b")],
        allowed_fails=0,
        disable_cooldowns=True,
    )
    for _ in range(4):
        with pytest.raises(UpstreamError):
            await router.generate(call("g"), REQUEST)
    assert len(fakes[0].requests) == 4
