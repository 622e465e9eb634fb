"""Routing strategies: how requests spread over a group, and rpm/tpm caps under each one.

Each distribution test prints its measured counts (`pytest -s` shows them).
"""

from __future__ import annotations

import asyncio
import collections

import pytest

from genroute.errors import RateLimited
from genroute.routing import Router
from tests.calls import call
from tests.fakes.gemini_upstream import FakeGemini
from tests.routing.conftest import REQUEST, entry, gemini, make_router

STRATEGIES = ["simple-shuffle", "least-busy", "latency-based-routing", "usage-based-routing"]


async def served_by(router: Router, model: str = "g", stream: bool = False) -> str:
    if stream:
        async for _ in router.stream(ctx := call(model, stream=True), REQUEST):
            pass
    else:
        await router.generate(ctx := call(model), REQUEST)
    assert ctx.route.deployment_id is not None
    return ctx.route.deployment_id


def report(name: str, counts: collections.Counter[str]) -> None:
    total = sum(counts.values())
    shares = ", ".join(f"{k}={v} ({v / total:.0%})" for k, v in sorted(counts.items()))
    print(f"\nDISTRIBUTION {name}: {shares}")


async def test_simple_shuffle_follows_weights() -> None:
    router = make_router(
        [
            entry("g", {"model": "demo/a", "weight": 1}, "a"),
            entry("g", {"model": "demo/b", "weight": 3}, "b"),
        ]
    )
    router._rng.seed(7)
    counts = collections.Counter([await served_by(router) for _ in range(1000)])
    report("simple-shuffle weight 1:3", counts)
    assert 0.70 < counts["b"] / 1000 < 0.80
    await router.aclose()


async def test_simple_shuffle_uses_rpm_when_no_weight() -> None:
    router = make_router(
        [
            entry("g", {"model": "demo/a", "rpm": 1000}, "a"),
            entry("g", {"model": "demo/b", "rpm": 4000}, "b"),
        ]
    )
    router._rng.seed(3)
    counts = collections.Counter([await served_by(router) for _ in range(1000)])
    report("simple-shuffle rpm 1000:4000", counts)
    assert 0.75 < counts["b"] / 1000 < 0.85
    await router.aclose()


async def test_least_busy_spreads_concurrent_requests_evenly(fakes: list[FakeGemini]) -> None:
    for fake in fakes:
        fake.script("delay", seconds=0.2, times=None)
    router = make_router(
        [entry("g", gemini(f), f"d{i}") for i, f in enumerate(fakes)],
        routing_strategy="least-busy",
    )
    ids = await asyncio.gather(*(served_by(router) for _ in range(30)))
    counts = collections.Counter(ids)
    report("least-busy, 30 concurrent", counts)
    assert counts == {"d0": 10, "d1": 10, "d2": 10}
    assert [len(f.requests) for f in fakes] == [10, 10, 10]
    await router.aclose()


async def test_least_busy_avoids_the_slow_deployment(fakes: list[FakeGemini]) -> None:
    slow, fast = fakes[0], fakes[1]
    slow.script("delay", seconds=0.3, times=None)
    router = make_router(
        [entry("g", gemini(slow), "slow"), entry("g", gemini(fast), "fast")],
        routing_strategy="least-busy",
    )
    tasks = []
    for _ in range(20):
        tasks.append(asyncio.ensure_future(served_by(router)))
        await asyncio.sleep(0.01)
    counts = collections.Counter(await asyncio.gather(*tasks))
    report("least-busy, slow vs fast, 20 staggered", counts)
    assert counts["fast"] >= 14
    await router.aclose()


@pytest.mark.parametrize("stream", [False, True])
async def test_latency_based_prefers_the_fastest(fakes: list[FakeGemini], stream: bool) -> None:
    slow, fast = fakes[0], fakes[1]
    slow.script("delay", seconds=0.15, times=None)
    router = make_router(
        [entry("g", gemini(slow), "slow"), entry("g", gemini(fast), "fast")],
        routing_strategy="latency-based-routing",
    )
    counts = collections.Counter([await served_by(router, stream=stream) for _ in range(25)])
    report(f"latency-based-routing ({'stream: ttft' if stream else 'latency'})", counts)
    assert counts["slow"] <= 2 and counts["fast"] >= 23
    stats = await router.state.snapshot(["slow", "fast"])
    measure = "ttft" if stream else "latency"
    slow_value, fast_value = getattr(stats["slow"], measure), getattr(stats["fast"], measure)
    assert slow_value is not None and fast_value is not None and slow_value > fast_value
    await router.aclose()


async def test_latency_buffer_shares_between_near_equals() -> None:
    router = make_router(
        [entry("g", {"model": "demo/a"}, "a"), entry("g", {"model": "demo/b"}, "b")],
        routing_strategy="latency-based-routing",
        routing_strategy_args={"lowest_latency_buffer": 100.0},
    )
    counts = collections.Counter([await served_by(router) for _ in range(200)])
    report("latency-based-routing, buffer 100 (equal demo deployments)", counts)
    assert min(counts.values()) > 50
    await router.aclose()


async def test_usage_based_keeps_headroom_proportional() -> None:
    router = make_router(
        [
            entry("g", {"model": "demo/a", "rpm": 100}, "a"),
            entry("g", {"model": "demo/b", "rpm": 300}, "b"),
        ],
        routing_strategy="usage-based-routing",
    )
    counts = collections.Counter([await served_by(router) for _ in range(80)])
    report("usage-based-routing rpm 100:300", counts)
    assert abs(counts["a"] - 20) <= 1 and abs(counts["b"] - 60) <= 1
    await router.aclose()


async def test_usage_based_counts_tokens() -> None:
    router = make_router(
        [
            entry("g", {"model": "demo/a", "tpm": 1000}, "a"),
            entry("g", {"model": "demo/b", "tpm": 3000}, "b"),
        ],
        routing_strategy="usage-based-routing",
    )
    counts = collections.Counter([await served_by(router) for _ in range(40)])
    stats = await router.state.snapshot(["a", "b"])
    report("usage-based-routing tpm 1000:3000", counts)
    assert stats["a"].tpm_used > 0 and abs(stats["b"].tpm_used / stats["a"].tpm_used - 3) < 0.5
    await router.aclose()


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_rpm_caps_hold_under_every_strategy(strategy: str) -> None:
    router = make_router(
        [
            entry("g", {"model": "demo/a", "rpm": 3}, "a"),
            entry("g", {"model": "demo/b", "rpm": 5}, "b"),
        ],
        routing_strategy=strategy,
    )
    counts = collections.Counter([await served_by(router) for _ in range(8)])
    assert counts == {"a": 3, "b": 5}
    with pytest.raises(RateLimited) as info:
        await router.generate(call("g"), REQUEST)
    error = info.value
    assert error.code == 429 and error.status == "RESOURCE_EXHAUSTED"
    assert error.retry_after is not None and 1 <= error.retry_after <= 60
    details = error.to_body()["error"]["details"]
    assert any(d["@type"].endswith("google.rpc.RetryInfo") for d in details)
    assert "retry-after" in error.headers()
    await router.aclose()


async def test_tpm_cap_skips_a_deployment_once_reached() -> None:
    router = make_router(
        [entry("g", {"model": "demo/a", "tpm": 5}, "a"), entry("g", {"model": "demo/b"}, "b")],
        routing_strategy="simple-shuffle",
    )
    router._rng.seed(1)
    ids = [await served_by(router) for _ in range(30)]
    first_a = ids.index("a")
    assert "a" not in ids[first_a + 1 :]  # one call is over 5 tokens: the cap is reached
    await router.aclose()


async def test_max_parallel_requests_is_a_cap(fakes: list[FakeGemini]) -> None:
    fakes[0].script("delay", seconds=0.2, times=None)
    router = make_router(
        [
            entry("g", gemini(fakes[0], max_parallel_requests=2), "capped"),
            entry("g", gemini(fakes[1]), "free"),
        ],
        routing_strategy="simple-shuffle",
    )
    router._rng.seed(5)
    counts = collections.Counter(await asyncio.gather(*(served_by(router) for _ in range(12))))
    assert counts["capped"] <= 2
    await router.aclose()


async def test_order_tries_lower_orders_first() -> None:
    router = make_router(
        [
            entry("g", {"model": "demo/a", "order": 2}, "a"),
            entry("g", {"model": "demo/b", "order": 1, "rpm": 2}, "b"),
        ]
    )
    assert [await served_by(router) for _ in range(4)] == ["b", "b", "a", "a"]
    await router.aclose()
