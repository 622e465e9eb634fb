"""Nothing keyed by what clients send grows without bound.

Every distinct name matching a wildcard used to stay in memory for good (~10.5 KB each),
and /health and /metrics grew with them. Here 5,000 distinct wildcard names go through
the Router and the metering layer (Metered, with its pricer), and each finished call into
the metrics: once every cache has turned over (3,000 names), 2,000 more names leave the
number of memory blocks held, and the sizes of /health and /metrics, where they were.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from genroute import cost
from genroute.call import Call, Caller, Operation
from genroute.config.observability import MetricsSettings
from genroute.cost import CATALOGUE_CACHE, UNKNOWN_LOGGED, Pricer, pricer_for
from genroute.observability.metrics import MAX_SERIES, Metrics
from genroute.observability.records import build_record
from genroute.pipeline.metering import Metered
from genroute.providers.transport import HttpRequest, HttpResponse
from genroute.routing import Router
from genroute.routing.groups import WILDCARD_CACHE
from genroute.routing.router import HEALTH_WILDCARD_LIMIT
from genroute.routing.state import SWEEP_FLOOR, CooldownPolicy, Limits, LocalState
from genroute.wire import GenerateContentRequest, UsageMetadata
from tests.calls import call
from tests.conftest import refused_port
from tests.routing.conftest import ManualClock

NAMES = 5_000
TURNED_OVER = 3_000  # every cache (1,024 deployments, 2,000 series) has turned over by then
PRICES = {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}
REQUEST = GenerateContentRequest.model_validate({"contents": [{"parts": [{"text": "hi"}]}]})
REPLY = orjson.dumps(
    {
        "candidates": [
            {"content": {"role": "model", "parts": [{"text": "ok"}]}, "finishReason": "STOP"}
        ],
        "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1, "totalTokenCount": 2},
    }
)


class Canned:
    """A transport answering every request with the same reply, keeping nothing."""

    async def send(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, {"content-type": "application/json"}, REPLY)

    async def aclose(self) -> None:
        return None


@pytest.fixture
def quiet_genroute() -> Iterator[list[logging.LogRecord]]:
    """genroute's log records, kept out of pytest's capture (which would hold 20,000 of
    them) and counted here."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("genroute")
    logger.addHandler(handler)
    saved = logger.propagate
    logger.propagate = False
    yield records
    logger.propagate = saved
    logger.removeHandler(handler)


def _sizes(health: dict[str, Any], metrics: Metrics) -> tuple[int, int]:
    return len(orjson.dumps(health)), len(metrics.render()[0])


async def test_thousands_of_wildcard_names_leave_memory_and_reports_bounded(
    quiet_genroute: list[logging.LogRecord],
) -> None:
    params = {"model": "gemini/gemini-*", "api_key": "k"}
    entries = [{"model_name": "gemini-*", "params": params, "model_info": PRICES}]
    router = Router(entries, transport=Canned())
    metered = Metered(router, pricer_for(router.config.model_list))
    metrics = Metrics(MetricsSettings())
    blocks: dict[int, int] = {}
    sizes: dict[int, tuple[int, int]] = {}
    started = time.perf_counter()
    try:
        for i in range(1, NAMES + 1):
            one = Call(Operation.GENERATE, f"gemini-load-{i}", Caller(end_user=f"user-{i}"))
            await metered.generate(one, REQUEST)
            assert one.meter.cost == pytest.approx(1e-6 + 2e-6)  # priced by its entry
            metrics.observe(build_record(one, None, time.perf_counter()))
            await asyncio.sleep(0)  # let the loop drop its cancelled timers, as a server's does
            if i in (TURNED_OVER, (TURNED_OVER + NAMES) // 2, NAMES):
                # The state forgets in sweeps, between 1x and 2x the resident deployments:
                # compare it at the same point of that cycle, just swept.
                router.state._sweep()  # type: ignore[attr-defined]
                gc.collect()
                blocks[i] = sys.getallocatedblocks()
                sizes[i] = _sizes(await router.health(), metrics)
    finally:
        await router.aclose()
    (health_then, metrics_then), (health, rendered) = sizes[TURNED_OVER], sizes[NAMES]
    growth = [blocks[i] - blocks[TURNED_OVER] for i in sorted(blocks)[1:]]
    print(
        f"\n{NAMES} names in {time.perf_counter() - started:.1f}s: memory blocks from name "
        f"{TURNED_OVER} on: {growth}; /health {health} bytes, /metrics {rendered} bytes"
    )
    # Once every cache has turned over, more names hold no more memory: a leak of one small
    # object for every four names would show as +500 blocks.
    assert max(growth) < 500
    assert abs(health - health_then) < 500 and health < 50_000  # (digits of the figures)
    assert abs(rendered - metrics_then) < 500 and rendered < 2_000_000
    assert len(router.state) <= 2 * (WILDCARD_CACHE + 1)  # type: ignore[arg-type]
    assert len(router._groups._dynamic) == WILDCARD_CACHE
    assert len(router._dispatch.budgets) == 1  # every name shares its entry's budget
    assert quiet_genroute == []  # priced by the entry: no warning per name


async def test_health_lists_recent_wildcard_names_and_counts_the_rest() -> None:
    entries = [
        {"model_name": "flash", "params": {"model": "gemini/gemini-2.5-flash", "api_key": "k"}},
        {"model_name": "gemini-*", "params": {"model": "gemini/gemini-*", "api_key": "k"}},
    ]
    router = Router(entries, transport=Canned())
    try:
        for i in range(HEALTH_WILDCARD_LIMIT + 30):
            await router.generate(call(f"gemini-x-{i}"), REQUEST)
        report = await router.health()
    finally:
        await router.aclose()
    listed = [e["model_group"] for e in report["healthy_endpoints"]]
    recent = [f"gemini-x-{i}" for i in range(HEALTH_WILDCARD_LIMIT + 29, 29, -1)]
    assert listed == ["flash", *recent]
    assert report["wildcard_deployments_omitted"] == 30


async def test_local_state_forgets_what_is_no_longer_resident() -> None:
    """Whatever the sequence, the state holds the resident deployments, those in flight,
    and at most as many others again; resident state (a cooldown) survives the sweeps."""
    clock = ManualClock()
    state = LocalState(clock)
    resident = {"configured"}
    state.retain(lambda i: i in resident)
    policy = CooldownPolicy(allowed_fails=0, cooldown_time=60)
    await state.record_failure("configured", policy, rate_limited=False, retry_after=None)
    in_flight = [f"held-{i}" for i in range(10)]
    for name in in_flight:
        assert await state.acquire(name, Limits())
    for i in range(20_000):
        name = f"name-{i}"
        resident.add(name)
        await state.acquire(name, Limits())
        await state.release(name, tokens=5, latency=0.1, ttft=None)
        await state.record_failure(name, policy, rate_limited=False, retry_after=None)
        if i >= 100:  # like the Router's cache: the 100 most recent names are resident
            resident.discard(f"name-{i - 100}")
        assert len(state) <= max(SWEEP_FLOOR, 2 * (len(resident) + len(in_flight)))
    stats = await state.snapshot(["configured", *in_flight])
    assert stats["configured"].cooling
    assert all(stats[name].in_flight == 1 for name in in_flight)


async def test_redis_states_local_fallback_is_bounded_too() -> None:
    from genroute.routing.redis_state import RedisState

    state = RedisState(f"redis://127.0.0.1:{refused_port()}/0", reconnect_interval=3600)
    resident: set[str] = set()
    state.retain(resident.__contains__)
    try:
        for i in range(5_000):
            name = f"name-{i}"
            await state.acquire(name, Limits())
            await state.release(name, tokens=1, latency=None, ttft=None)
        assert state.backend == "memory (redis unreachable)"
        assert state._local_held == {}
        assert len(state._local) <= SWEEP_FLOOR
    finally:
        await state.aclose()


def test_the_pricer_and_its_caches_are_bounded(
    quiet_genroute: list[logging.LogRecord], monkeypatch: pytest.MonkeyPatch
) -> None:
    """genai-prices takes ~0.1 ms a lookup: the limits are lowered to keep this short."""
    assert (cost._tiers_cache.limit, cost._rates_cache.limit) == (CATALOGUE_CACHE, 4096)
    assert UNKNOWN_LOGGED == 256
    monkeypatch.setattr(cost._tiers_cache, "limit", 100)
    monkeypatch.setattr(cost._rates_cache, "limit", 150)
    monkeypatch.setattr(cost, "UNKNOWN_LOGGED", 50)
    pricer = Pricer()
    usage = UsageMetadata(prompt_token_count=10, candidates_token_count=5, total_token_count=15)
    for i in range(300):
        assert pricer.cost(usage, "gemini", f"gemini-unknown-{i}").usd == 0
        assert pricer.cost(usage, "gemini", f"gemini-1.5-flash-{i}").known  # priced by prefix
    assert len(cost._tiers_cache) == 100 and len(cost._rates_cache) == 150
    assert pricer.cost(usage, "gemini", "gemini-2.5-flash").usd > 0  # evicted, looked up again
    assert len(pricer._unknown) == 50
    assert len(quiet_genroute) == 50 + 1
    assert "further unpriced models are not logged" in quiet_genroute[-1].getMessage()
    from genai_prices import data_snapshot

    snapshot = data_snapshot.get_snapshot()  # genai-prices' own caches were not used
    assert not any("gemini-unknown" in str(k) for k in snapshot._provider_cache)
    assert not any("gemini-1.5-flash-" in str(k) for k in snapshot._lookup_cache)


def test_metrics_keep_a_bounded_number_of_series() -> None:
    """Bounded labels still multiply (groups x keys x end users): each metric keeps at most
    MAX_SERIES label sets, and counts the rest under `other`."""
    metrics = Metrics(MetricsSettings(label_limits={"key_alias": 100, "end_user": 100}))
    for i in range(60):
        for j in range(60):
            one = call(f"group-{i}")
            object.__setattr__(one, "caller", Caller(key_alias=f"key-{i}", end_user=f"u-{j}"))
            one.meter.usage = UsageMetadata(prompt_token_count=1, candidates_token_count=1)
            one.meter.cost = 0.001
            metrics.observe(build_record(one, None, time.perf_counter()))
    families = {m.name: m for m in metrics.registry.collect()}
    for name in ("genroute_tokens", "genroute_cost_usd"):
        series = {tuple(sorted(s.labels.items())) for s in families[name].samples}
        assert len(series) <= MAX_SERIES + 1
    overflow = [s for s in families["genroute_cost_usd"].samples if s.labels["end_user"] == "other"]
    assert overflow and all(s.labels["model_group"] == "other" for s in overflow)
