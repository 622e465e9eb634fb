"""Governance while PostgreSQL or Redis is down or hangs, in process, on the real servers
cut off with a TCP proxy: known keys keep working from their cached rows (for a bounded
time), unknown ones get 503 with a retry hint (never 500), spend waits in the local spool
and is all written when the database is back, limits fall back to this process and come
back to Redis, start-up and shutdown never wait on either."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from genroute.call import Call, Operation
from genroute.config import config_from_data
from genroute.errors import RateLimited, ServiceUnavailable
from genroute.governance import FallbackLimiter, Governance, MemoryLimiter, RedisLimiter
from genroute.observability import Observability
from genroute.pipeline import Pipeline, build_pipeline
from genroute.store import Store, hash_key
from genroute.store.models import SpendLog
from genroute.wire import GenerateContentRequest
from tests.conftest import mid_minute, refused_port
from tests.dbs import db_url
from tests.fakes.tcp_proxy import TcpProxy

__all__ = ["db_url"]

MASTER = "sk-master-outage"
INFO = {"input_cost_per_token": 0.001, "output_cost_per_token": 0.002, "max_output_tokens": 10}
CALL_COST = 2 * 0.001 + 10 * 0.002
REQUEST = GenerateContentRequest.model_validate(
    {"contents": [{"role": "user", "parts": [{"text": "hello there"}]}]}
)
TIMEOUT = 0.3  # seconds any database call may take here


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Env:
    gov: Governance
    pipeline: Pipeline
    clock: Clock
    db: TcpProxy
    url: str

    async def call(self, key: str | None = MASTER, end_user: str | None = None) -> Call:
        row = await self.gov.authenticate(key)
        call = Call(
            Operation.GENERATE,
            "demo",
            self.gov.caller(hash_key(key) if key else None, row, end_user),
        )
        await self.pipeline.generate(call, REQUEST)
        return call

    async def rows(self) -> int:
        store = Store(self.url.replace(f":{self.db.port}/", ":5432/"))
        try:
            async with store.session() as session:
                return int(await session.scalar(select(func.count(SpendLog.id))) or 0)
        finally:
            await store.aclose()


def governance(url: str, spool: Path, clock: Clock, **options: Any) -> Governance:
    gov = Governance(
        Store(url, timeout=TIMEOUT),
        master_key=MASTER,
        cache_ttl=2.0,
        max_stale=60.0,
        spool_dir=spool,
        flush_interval=60,
        **options,
    )
    gov.cache.clock = clock
    gov.database.clock = clock
    gov.redis_health.clock = clock
    return gov


def pipeline_for(gov: Governance) -> Pipeline:
    config = config_from_data(
        {
            "model_list": [
                {"model_name": "demo", "params": {"model": "demo/echo"}, "model_info": INFO}
            ]
        }
    )
    return build_pipeline(config, governance=gov, observability=Observability())


@pytest.fixture
def db_proxy(db_url: str) -> Iterator[tuple[TcpProxy, str]]:
    if not db_url.startswith("postgresql"):
        pytest.skip("the database is cut off on PostgreSQL")
    with TcpProxy(5432) as proxy:
        yield proxy, make_url(db_url).set(port=proxy.port).render_as_string(hide_password=False)


@pytest.fixture
async def env(db_proxy: tuple[TcpProxy, str], tmp_path: Path) -> AsyncIterator[Env]:
    proxy, url = db_proxy
    clock = Clock()
    gov = governance(url, tmp_path / "spool", clock)
    pipeline = pipeline_for(gov)
    await pipeline.start()
    yield Env(gov, pipeline, clock, proxy, url)
    proxy.hold = False
    await asyncio.wait_for(pipeline.aclose(), 10)


pg = pytest.mark.parametrize("db_url", ["postgres"], indirect=True)


@pg
@pytest.mark.parametrize("fault", ["refused", "hung"])
async def test_known_keys_serve_from_cache_and_spend_waits_in_the_spool(
    env: Env, fault: str
) -> None:
    gov = env.gov
    key = str((await gov.store.create_key({"key_alias": "known", "max_budget": 10.0}))["key"])
    await gov.store.create("team", {"team_id": "t"})
    other = str((await gov.store.create_key({"team_id": "t"}))["key"])
    await env.call(key, "alice")
    await env.call(other)
    if fault == "refused":
        env.db.stop()
    else:
        env.db.hold = True
    env.clock.now += 3  # past key_cache_ttl: the rows must be reloaded, and cannot be
    started = time.perf_counter()
    served = [await env.call(key, "alice"), await env.call(other), await env.call(MASTER)]
    assert all(c.meter.cost == pytest.approx(CALL_COST) for c in served)
    # One timeout at most (the first lookup), then the database is left alone.
    assert time.perf_counter() - started < 3 * TIMEOUT + 1
    for unknown, end_user in (("sk-never-seen", None), (key, "bob"), (MASTER, "carol")):
        with pytest.raises(ServiceUnavailable) as refused:
            await env.call(unknown, end_user)
        assert refused.value.code == 503 and refused.value.retry_after
        assert refused.value.to_body()["error"]["status"] == "UNAVAILABLE"
    status, metrics = gov.status(), gov.metrics()
    assert status["status"] == "degraded" and gov.ready()
    assert status["database"]["up"] is False
    assert metrics["genroute_database_up"] == 0
    assert metrics["genroute_governance_stale_rows_served_total"] >= 2
    assert metrics["genroute_governance_unavailable_total"] >= 2
    await gov.ledger.flush()  # cannot write: the rows go to the spool
    assert gov.ledger.spooling and not gov.status()["ledger"]["writing"]
    assert gov.metrics()["genroute_ledger_spool_rows"] >= 3
    # Bounded staleness: past key_cache_ttl + key_cache_max_stale a row is not served.
    env.clock.now += 60
    with pytest.raises(ServiceUnavailable):
        await env.call(key)
    # The database comes back: everything spooled is written, nothing twice.
    if fault == "refused":
        env.db.start()
    else:
        env.db.hold = False
    env.clock.now += 10  # past the retry backoff
    await env.call(key, "alice")
    await gov.ledger.flush()
    assert gov.status()["status"] == "ok"
    assert await env.rows() == 6
    stored = await gov.store.get("key", hash_key(key))
    assert stored is not None and stored["spend"] == pytest.approx(3 * CALL_COST)


@pg
async def test_start_and_stop_with_the_database_down(
    db_proxy: tuple[TcpProxy, str], tmp_path: Path
) -> None:
    """Start-up does not wait for the database (the migrations are retried), the master
    key works meanwhile, and its spend survives a stop and a restart while still down."""
    proxy, url = db_proxy
    proxy.stop()
    clock = Clock()
    gov = governance(url, tmp_path / "spool", clock)
    pipeline = pipeline_for(gov)
    started = time.perf_counter()
    await pipeline.start()
    assert time.perf_counter() - started < 3
    assert gov.status()["database"]["migrated"] is False
    calls = [await Env(gov, pipeline, clock, proxy, url).call(MASTER, None) for _ in range(5)]
    assert all(c.meter.cost for c in calls)
    stopping = time.perf_counter()
    await pipeline.aclose()
    assert time.perf_counter() - stopping < 3
    assert list((tmp_path / "spool").glob("ledger-*.jsonl"))
    # Restart, still down; then the database comes back.
    again = governance(url, tmp_path / "spool", clock)
    pipeline = pipeline_for(again)
    await pipeline.start()
    proxy.start()
    for _ in range(500):  # the migrations are retried in the background
        if again.store.migrated:
            break
        await asyncio.sleep(0.01)
    assert again.store.migrated
    clock.now += 10
    await again.ledger.flush()
    env = Env(again, pipeline, clock, proxy, url)
    assert await env.rows() == 5
    assert not list((tmp_path / "spool").glob("ledger-*.jsonl"))
    await pipeline.aclose()


@pg
async def test_shutdown_with_a_hung_database_is_bounded(env: Env) -> None:
    for _ in range(3):
        await env.call()
    env.db.hold = True
    started = time.perf_counter()
    await asyncio.wait_for(env.pipeline.aclose(), 10)
    assert time.perf_counter() - started < 6 * TIMEOUT + 2
    env.db.hold = False


# -- Redis -----------------------------------------------------------------------------------


@pytest.fixture
def redis_proxy(redis_url: str) -> Iterator[TcpProxy]:
    with TcpProxy(6379) as proxy:
        yield proxy


def redis_client(proxy: TcpProxy) -> Any:
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return aioredis.from_url(
        f"redis://127.0.0.1:{proxy.port}/0",
        socket_timeout=0.2,
        socket_connect_timeout=0.2,
        retry=Retry(NoBackoff(), 1),
    )


@pytest.fixture
async def redis_env(redis_proxy: TcpProxy, tmp_path: Path) -> AsyncIterator[Env]:
    clock = Clock()
    now = mid_minute()
    client = redis_client(redis_proxy)
    prefix = f"genroute-test:{uuid.uuid4().hex}"
    limiter = FallbackLimiter(RedisLimiter(client, prefix, lambda: now), MemoryLimiter(lambda: now))
    gov = governance(
        f"sqlite:///{tmp_path / 'genroute.db'}", tmp_path / "spool", clock,
        redis=client, limiter=limiter,
    )  # fmt: skip
    gov.budgets.shared.prefix = prefix  # type: ignore[union-attr]
    pipeline = pipeline_for(gov)
    await pipeline.start()
    yield Env(gov, pipeline, clock, redis_proxy, "")
    await asyncio.wait_for(pipeline.aclose(), 10)


@pytest.mark.parametrize("fault", ["refused", "hung"])
async def test_redis_down_falls_back_to_local_limits_and_back(
    redis_env: Env, redis_proxy: TcpProxy, fault: str
) -> None:
    gov = redis_env.gov
    key = str((await gov.store.create_key({"rpm_limit": 3, "max_budget": 1.0}))["key"])
    await redis_env.call(key)  # counted in Redis
    if fault == "refused":
        redis_proxy.stop()
    else:
        redis_proxy.hold = True
    served = 0
    for _ in range(5):
        try:
            await redis_env.call(key)
            served += 1
        except RateLimited as exc:
            assert "rpm_limit is 3" in exc.message
    assert served == 3  # this process's own minute: 3 more, then 429 (never 500)
    metrics = gov.metrics()
    assert metrics["genroute_redis_up"] == 0
    assert metrics["genroute_governance_local_limit_admissions_total"] == 3
    assert metrics["genroute_governance_local_budget_holds_total"] >= 3
    assert gov.status()["status"] == "degraded"
    if fault == "refused":
        redis_proxy.start()
    else:
        redis_proxy.hold = False
    redis_env.clock.now += 10  # past the retry backoff
    # Redis again (this process's minute is full, Redis's has 1 of 3): 2 more, then 429.
    await redis_env.call(key)
    await redis_env.call(key)
    with pytest.raises(RateLimited, match="rpm_limit is 3"):
        await redis_env.call(key)
    assert gov.metrics()["genroute_redis_up"] == 1
    await gov.ledger.flush()
    async with gov.store.session() as session:
        rows = await session.scalar(
            select(func.count(SpendLog.id)).where(SpendLog.status_code == 200)
        )
        refused = await session.scalar(
            select(func.count(SpendLog.id)).where(SpendLog.status_code == 429)
        )
    assert rows == 1 + 3 + 2  # every served call, whichever limits admitted it
    assert refused == 2 + 1  # and each call refused for its limit, with cost 0


async def test_a_release_redis_does_not_take_keeps_the_ledger_row(
    redis_env: Env, redis_proxy: TcpProxy
) -> None:
    """Admitted through Redis, released while Redis is down: no error, and the call's
    ledger row is written."""
    gov = redis_env.gov
    key = str((await gov.store.create_key({"max_parallel_requests": 2, "max_budget": 1.0}))["key"])
    row = await gov.authenticate(key)
    call = Call(Operation.STREAM, "demo", gov.caller(hash_key(key), row))
    stream = redis_env.pipeline.stream(call, REQUEST)
    first = await anext(stream)  # type: ignore[call-overload]
    assert first is not None
    redis_proxy.stop()
    async for _ in stream:  # type: ignore[attr-defined]
        pass
    await gov.ledger.flush()
    async with gov.store.session() as session:
        ids = list((await session.execute(select(SpendLog.request_id))).scalars())
    assert call.request_id in ids


async def test_start_with_redis_unreachable(tmp_path: Path, redis_url: str) -> None:
    from genroute.config import config_from_data as load
    from genroute.governance import build_governance

    port = refused_port()  # bound here, never listened on: every connection is refused
    config = load(
        {
            "general_settings": {
                "master_key": MASTER,
                "database_url": f"sqlite:///{tmp_path / 'genroute.db'}",
                "redis_url": f"redis://127.0.0.1:{port}/0",
                "spend_spool_dir": str(tmp_path / "spool"),
            }
        }
    )
    gov = build_governance(config)
    assert gov is not None
    started = time.perf_counter()
    await gov.start()
    assert time.perf_counter() - started < 2
    key = str((await gov.store.create_key({"rpm_limit": 5}))["key"])
    pipeline = pipeline_for(gov)
    env = Env(gov, pipeline, Clock(), None, "")  # type: ignore[arg-type]
    await env.call(key)
    assert gov.metrics()["genroute_redis_up"] == 0
    await asyncio.wait_for(pipeline.aclose(), 10)


def test_the_spool_lives_next_to_the_config_or_the_database(tmp_path: Path) -> None:
    from genroute.cli.serve import load_config
    from genroute.config import config_from_data as load
    from genroute.governance import spool_dir

    path = tmp_path / "conf" / "config.yaml"
    path.parent.mkdir()
    path.write_text("general_settings:\n  master_key: sk-x\n")
    assert spool_dir(load_config(path)) == tmp_path / "conf" / "genroute-spool"
    sqlite = load({"general_settings": {"database_url": f"sqlite:///{tmp_path}/db/k.db"}})
    assert spool_dir(sqlite) == tmp_path / "db" / "genroute-spool"
    chosen = load({"general_settings": {"master_key": "k", "spend_spool_dir": str(tmp_path / "s")}})
    assert spool_dir(chosen) == tmp_path / "s"


async def test_a_cancelled_lookup_does_not_fail_the_others_waiting_on_it(
    store: Store,
) -> None:
    """Requests waiting on one key's lookup are not failed when the request that started
    the lookup is cancelled (its client went away)."""
    from genroute.governance.cache import EntityCache

    cache = EntityCache(store, ttl=60)
    release = asyncio.Event()
    real = store.load

    async def slow(kind: str, ident: str) -> Any:
        await release.wait()
        return await real(kind, ident)

    store.load = slow  # type: ignore[method-assign]
    first = asyncio.ensure_future(cache.get("key", "nobody"))
    await asyncio.sleep(0)
    others = [asyncio.ensure_future(cache.get("key", "nobody")) for _ in range(3)]
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*others) == [None, None, None]
    with pytest.raises(asyncio.CancelledError):
        await first
