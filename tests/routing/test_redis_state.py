"""Router state shared through the machine's real Redis, and what happens when it goes away.

Each test uses its own key prefix; Redis itself is never stopped: it is reached through a
TCP proxy that the test cuts off and brings back.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import Any

import pytest
import redis.asyncio as aioredis

from genroute.errors import RateLimited
from genroute.routing import Router
from genroute.routing.redis_state import RedisState
from genroute.routing.state import CooldownPolicy, Limits
from tests.calls import call
from tests.conftest import refused_port
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.tcp_proxy import TcpProxy
from tests.routing.conftest import REQUEST, entry, gemini, make_router, unique_prefix


@pytest.fixture
async def prefix(redis_url: str, request: pytest.FixtureRequest) -> Any:
    name = unique_prefix(request.node.name)
    yield name
    client = aioredis.Redis.from_url(redis_url)
    keys = [k async for k in client.scan_iter(f"{name}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def shared(url: str, prefix: str, **settings: Any) -> dict[str, Any]:
    return {"redis_url": url, "redis_key_prefix": prefix, **settings}


async def test_two_routers_share_an_rpm_cap(redis_url: str, prefix: str) -> None:
    entries = [entry("g", {"model": "demo/x", "rpm": 4}, "capped")]
    one = make_router(entries, **shared(redis_url, prefix))
    two = make_router(entries, **shared(redis_url, prefix))
    outcomes = collections.Counter()
    for i in range(8):
        try:
            await (one if i % 2 else two).generate(call("g"), REQUEST)
            outcomes["ok"] += 1
        except RateLimited as exc:
            assert exc.retry_after is not None and exc.retry_after > 0
            outcomes["429"] += 1
    assert outcomes == {"ok": 4, "429": 4}
    assert one.state.backend == "redis"


async def test_acquire_is_atomic_under_concurrency(redis_url: str, prefix: str) -> None:
    import asyncio

    states = [RedisState(redis_url, prefix=prefix) for _ in range(4)]
    limits = Limits(rpm=10)
    results = await asyncio.gather(*(states[i % 4].acquire("d", limits) for i in range(40)))
    assert sum(results) == 10
    stats = (await states[0].snapshot(["d"]))["d"]
    assert (stats.rpm_used, stats.in_flight) == (10, 10)
    for _ in range(10):
        await states[1].release("d", tokens=7, latency=0.5, ttft=None)
    stats = (await states[2].snapshot(["d"]))["d"]
    assert (stats.in_flight, stats.tpm_used, stats.latency, stats.samples) == (0, 70, 0.5, 10)
    for state in states:
        await state.aclose()


async def test_two_routers_share_a_cooldown(
    redis_url: str, prefix: str, fakes: list[FakeGemini]
) -> None:
    bad = fakes[0]
    bad.script("error", code=500, times=None)
    entries = [
        entry("g", gemini(bad, order=1), "bad"),
        entry("g", {"model": "demo/x", "order": 2}, "good"),
    ]
    settings = shared(redis_url, prefix, allowed_fails=0, cooldown_time=30, num_retries=1)
    one, two = make_router(entries, **settings), make_router(entries, **settings)
    await one.generate(ctx := call("g"), REQUEST)
    assert [a.deployment_id for a in ctx.route.attempts] == ["bad", "good"]
    for _ in range(3):
        await two.generate(ctx := call("g"), REQUEST)
        assert [a.deployment_id for a in ctx.route.attempts] == ["good"]
    assert len(bad.requests) == 1
    health = await two.health()
    assert health["unhealthy_endpoints"][0]["deployment"] == "bad"
    assert health["router_state"] == "redis"


async def test_unreachable_redis_falls_back_to_memory_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    router = make_router(
        [entry("g", {"model": "demo/x", "rpm": 3}, "d")],
        redis_url=f"redis://127.0.0.1:{refused_port()}/0",
        redis_reconnect_interval=60,
    )
    caplog.set_level(logging.WARNING, logger="genroute.router")
    for _ in range(3):
        await router.generate(call("g"), REQUEST)
    with pytest.raises(RateLimited):  # the cap still holds, locally
        await router.generate(call("g"), REQUEST)
    warnings = [r for r in caplog.records if "Redis is unreachable" in r.getMessage()]
    assert len(warnings) == 1
    assert router.state.backend == "memory (redis unreachable)"


async def test_redis_cut_off_mid_test_and_back(
    redis_url: str, prefix: str, caplog: pytest.LogCaptureFixture, fakes: list[FakeGemini]
) -> None:
    caplog.set_level(logging.WARNING, logger="genroute.router")
    with TcpProxy(6379) as proxy:
        router: Router = make_router(
            [entry("g", {"model": "demo/x"}, "d1"), entry("g", gemini(fakes[0]), "d2")],
            **shared(
                f"redis://127.0.0.1:{proxy.port}/0",
                prefix,
                redis_reconnect_interval=0.05,
                routing_strategy="least-busy",
            ),
        )
        for _ in range(3):
            await router.generate(call("g"), REQUEST)
        assert router.state.backend == "redis"
        proxy.stop()
        for _ in range(10):
            await router.generate(call("g"), REQUEST)
            async for _chunk in router.stream(call("g", stream=True), REQUEST):
                pass
        assert router.state.backend == "memory (redis unreachable)"
        down = [r for r in caplog.records if "Redis is unreachable" in r.getMessage()]
        assert len(down) == 1
        proxy.start()
        deadline = time.monotonic() + 5
        while router.state.backend != "redis":  # retried every 0.05 s, on the next call
            assert time.monotonic() < deadline, "Redis never came back"
            await asyncio.sleep(0.01)
            await router.generate(call("g"), REQUEST)
        for _ in range(3):
            await router.generate(call("g"), REQUEST)
        assert router.state.backend == "redis"
        assert any("reachable again" in r.getMessage() for r in caplog.records)


async def test_failure_policy_in_redis(redis_url: str, prefix: str) -> None:
    state = RedisState(redis_url, prefix=prefix)
    policy = CooldownPolicy(allowed_fails=2, window=60, cooldown_time=10)
    results = [
        await state.record_failure("d", policy, rate_limited=False, retry_after=None)
        for _ in range(3)
    ]
    assert results == [False, False, True]
    stats = (await state.snapshot(["d"]))["d"]
    assert stats.cooling and 9 < stats.cooldown_remaining <= 10
    assert stats.cooldown_cause == "failure"
    assert await state.record_failure(
        "e", CooldownPolicy(allowed_fails=0), rate_limited=True, retry_after=42
    )
    stats = (await state.snapshot(["e"]))["e"]
    assert stats.cooldown_cause == "rate_limit" and 41 < stats.cooldown_remaining <= 42
    await state.aclose()


async def test_redis_host_settings_build_the_url(redis_url: str, prefix: str) -> None:
    router = make_router(
        [entry("g", {"model": "demo/x"}, "d")],
        redis_host="127.0.0.1",
        redis_port=6379,
        redis_key_prefix=prefix,
    )
    await router.generate(call("g"), REQUEST)
    assert router.state.backend == "redis"


async def test_redis_that_stops_answering_times_out_to_memory(
    redis_url: str, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="genroute.router")
    with TcpProxy(6379) as proxy:
        router = make_router(
            [entry("g", {"model": "demo/x"}, "d")],
            **shared(
                f"redis://127.0.0.1:{proxy.port}/0",
                prefix,
                redis_socket_timeout=0.05,
                redis_reconnect_interval=30,
            ),
        )
        await router.generate(call("g"), REQUEST)
        proxy.hold = True  # like CLIENT PAUSE: connected, but no reply comes
        started = time.monotonic()
        for _ in range(20):
            await router.generate(call("g"), REQUEST)
        assert time.monotonic() - started < 5  # one timeout, then memory: not one per request
        assert router.state.backend == "memory (redis unreachable)"
        assert len([r for r in caplog.records if "unreachable" in r.getMessage()]) == 1
