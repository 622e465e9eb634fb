"""Redis outages, as far as routing state goes: calls keep being answered, and nothing leaks.

Routing state (cooldowns, in-flight counts, rpm/tpm, latency) is shared through Redis,
reached here through a TCP proxy that cuts it off (connections refused) or makes it hang
(connections accepted, nothing answered). Through either, every call is answered in time
from this process's memory, the outage is logged once, and once Redis is back the state is
shared again, with the requests that ended meanwhile given back. (Outages of the ledger's
database and the key store are governance's: tests/governance.)
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis

from genroute.routing import Router
from genroute.routing.redis_state import RedisState
from tests.calls import call
from tests.conftest import InProcessGateway
from tests.fakes.tcp_proxy import TcpProxy
from tests.routing.conftest import REQUEST, unique_prefix

SOCKET_TIMEOUT = 0.2
SLACK = 1.5


@pytest.fixture
def proxy(redis_url: str) -> Iterator[TcpProxy]:
    with TcpProxy(urlsplit(redis_url).port or 6379) as cut:
        yield cut


@pytest.fixture
async def prefix(redis_url: str, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    name = unique_prefix(request.node.name)
    yield name
    client = aioredis.Redis.from_url(redis_url)
    keys = [k async for k in client.scan_iter(f"{name}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def settings(proxy: TcpProxy, prefix: str) -> dict[str, Any]:
    return {
        "redis_url": f"redis://127.0.0.1:{proxy.port}/0",
        "redis_key_prefix": prefix,
        "redis_socket_timeout": SOCKET_TIMEOUT,
        "redis_reconnect_interval": 0.05,
    }


async def eventually_shared(router: Router) -> None:
    deadline = time.monotonic() + 5
    while router.state.backend != "redis":
        assert time.monotonic() < deadline, "Redis never came back"
        await asyncio.sleep(0.01)
        await router.health()  # the next use after the reconnect interval tries Redis


async def test_requests_that_end_while_redis_is_away_are_given_back(
    proxy: TcpProxy, prefix: str, redis_url: str
) -> None:
    """A stream counted in flight in Redis ends during an outage. Without giving it back,
    its deployment (max_parallel_requests: 1) would stay full in Redis until the key
    expires: every call a 429, long after Redis is back."""
    entries = [{"model_name": "g", "params": {"model": "demo/x", "max_parallel_requests": 1}}]
    router = Router(entries, router_settings=settings(proxy, prefix))
    try:
        stream = router.stream(call("g", stream=True), REQUEST)
        await anext(stream)  # in flight, counted in Redis
        assert router.state.backend == "redis"
        proxy.stop()
        async for _ in stream:  # ends while Redis is away
            pass
        await router.generate(call("g"), REQUEST)  # served from memory meanwhile
        assert router.state.backend == "memory (redis unreachable)"
        proxy.start()
        await eventually_shared(router)
        for _ in range(3):
            await router.generate(call("g"), REQUEST)
    finally:
        await router.aclose()
    state = RedisState(redis_url, prefix=prefix)  # straight to Redis, not through the proxy
    try:
        deployment = router.group("g")[0].id
        assert (await state.snapshot([deployment]))[deployment].in_flight == 0
    finally:
        await state.aclose()


def _gateway_config(proxy: TcpProxy, prefix: str, tmp: Path) -> dict[str, Any]:
    return {
        "model_list": [
            {"model_name": "g", "params": {"model": "demo/x", "rpm": 100_000}},
            {"model_name": "g", "params": {"model": "demo/y", "rpm": 100_000}},
        ],
        "router_settings": {**settings(proxy, prefix), "routing_strategy": "usage-based-routing"},
        "observability": {"logs": {"destination": str(tmp / "requests.log"), "format": "json"}},
    }


def _post(gw: InProcessGateway, rid: str) -> tuple[int, float]:
    request = urllib.request.Request(
        f"{gw.base_url}/v1beta/models/g:generateContent",
        data=json.dumps({"contents": [{"parts": [{"text": "hi"}]}]}).encode(),
        headers={"content-type": "application/json", "x-request-id": rid},
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()
        return response.status, time.perf_counter() - started


def _health(gw: InProcessGateway) -> dict[str, Any]:
    with urllib.request.urlopen(f"{gw.base_url}/health", timeout=10) as response:
        return dict(json.loads(response.read()))


@pytest.mark.parametrize("outage", ["cut", "hang"])
def test_a_burst_through_a_redis_outage(
    proxy: TcpProxy, prefix: str, tmp_path: Path, outage: str
) -> None:
    gw = InProcessGateway(_gateway_config(proxy, prefix, tmp_path), tmp_path)
    answers: list[tuple[str, int, float]] = []

    def burst(pool: ThreadPoolExecutor, n: int) -> None:
        rids = [uuid.uuid4().hex for _ in range(n)]
        answers.extend((r, *a) for r, a in zip(rids, pool.map(_post, [gw] * n, rids), strict=True))

    try:
        with ThreadPoolExecutor(16) as pool:
            burst(pool, 16)
            assert _health(gw)["router_state"] == "redis"
            if outage == "cut":
                proxy.stop()
            else:
                proxy.hold = True  # connections accepted, nothing answered
            burst(pool, 48)
            assert _health(gw)["router_state"] == "memory (redis unreachable)"
            proxy.hold = False
            if outage == "cut":
                proxy.start()
            deadline = time.monotonic() + 5
            while _health(gw)["router_state"] != "redis":
                assert time.monotonic() < deadline, "Redis never came back"
                time.sleep(0.02)
            burst(pool, 16)
    finally:
        gw.stop()  # writes out every record
    assert all(status == 200 and took < SOCKET_TIMEOUT + SLACK for _, status, took in answers)
    log = (tmp_path / "requests.log").read_text().splitlines()
    statuses: dict[str, list[int]] = {}
    for record in map(json.loads, filter(None, log)):
        statuses.setdefault(record["request_id"], []).append(record["status_code"])
    assert all(statuses.get(rid) == [200] for rid, _, _ in answers)
    assert gw.log().count("Redis is unreachable") == 1
    assert gw.log().count("reachable again") == 1


async def test_unused_keys_expire_but_not_before_their_cooldown(
    prefix: str, redis_url: str
) -> None:
    """Deployments of wildcard names come and go: their keys in Redis expire once unused
    (KEY_TTL), except while a cooldown (a quota's Retry-After of hours) still runs."""
    from genroute.routing.redis_state import KEY_TTL
    from genroute.routing.state import CooldownPolicy, Limits

    state = RedisState(redis_url, prefix=prefix)
    client = aioredis.Redis.from_url(redis_url)
    try:
        assert await state.acquire("idle", Limits())
        await state.release("idle", tokens=10, latency=0.1, ttft=None)
        policy = CooldownPolicy(allowed_fails=0)
        assert await state.record_failure("quota", policy, rate_limited=True, retry_after=7200)
        assert 0 < await client.ttl(f"{prefix}:idle:s") <= KEY_TTL <= 3600
        assert await client.ttl(f"{prefix}:quota:s") >= 7200
    finally:
        await client.aclose()
        await state.aclose()
