"""Limits and cache invalidation shared across instances through a real Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from genroute.errors import RateLimited
from genroute.governance import LimitCheck, RedisLimiter
from genroute.governance.cache import EntityCache
from genroute.store import Store
from tests.conftest import mid_minute


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Any]:
    client = aioredis.from_url(redis_url)
    yield client
    await client.aclose()


def limiters(redis: Any) -> tuple[str, RedisLimiter, RedisLimiter]:
    """Two instances' limiters on one key prefix of their own, their clocks stopped in the
    middle of a minute (a test never straddles the start of a new one)."""
    prefix = f"genroute-test:{uuid.uuid4().hex}"
    now = mid_minute()
    return (
        prefix,
        RedisLimiter(redis, prefix, lambda: now),
        RedisLimiter(redis, prefix, lambda: now),
    )


async def test_two_instances_share_one_rpm_limit(redis: Any) -> None:
    prefix, a, b = limiters(redis)
    check = LimitCheck("key:abc", "key 'abc'", rpm=10)
    results = await asyncio.gather(
        *((a if i % 2 else b).admit([check]) for i in range(30)), return_exceptions=True
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 10
    refused = [r for r in results if isinstance(r, RateLimited)]
    assert len(refused) == 20 and refused[0].retry_after is not None
    keys = [k async for k in redis.scan_iter(f"{prefix}:*")]
    assert keys and all([await redis.ttl(k) > 0 for k in keys])
    await redis.delete(*keys)


async def test_parallel_and_tpm_across_instances(redis: Any) -> None:
    prefix, a, b = limiters(redis)
    check = LimitCheck("end_user:u", "end user 'u'", tpm=100, parallel=2)
    first = await a.admit([check])
    await b.admit([check])
    with pytest.raises(RateLimited, match="max_parallel_requests is 2"):
        await a.admit([check])
    await a.release(first, tokens=150)
    with pytest.raises(RateLimited, match="tpm_limit is 100"):
        await b.admit([check])
    # A refusal in one scope counts the call in none.
    other = LimitCheck("key:k", "key 'k'", rpm=1)
    with pytest.raises(RateLimited):
        await b.admit([other, check])
    await b.admit([other])
    keys = [k async for k in redis.scan_iter(f"{prefix}:*")]
    await redis.delete(*keys)


async def test_changes_reach_other_instances_at_once(redis: Any, tmp_path: Any) -> None:
    store = Store(f"sqlite:///{tmp_path / 'genroute.db'}")
    await store.start()
    here, there = EntityCache(store, 60, redis), EntityCache(store, 60, redis)
    await here.start()
    await there.start()
    try:
        # Both listen before anything is published (the listener subscribes in a task of
        # its own; on a busy machine the first publish could otherwise come first).
        for _ in range(200):
            if here.subscribed and there.subscribed:
                break
            await asyncio.sleep(0.01)
        assert here.subscribed and there.subscribed
        token = (await store.create_key({}))["key_hash"]
        assert (await there.get("key", token) or {})["blocked"] is False
        await store.update("key", token, {"blocked": True})
        await here.invalidate("key", token)
        for _ in range(50):
            row = await there.get("key", token)
            if row and row["blocked"]:
                break
            await asyncio.sleep(0.05)
        assert row is not None and row["blocked"] is True
    finally:
        await here.aclose()
        await there.aclose()
        await store.aclose()
