"""The response cache over a real Redis (a key prefix of each test's own): what Redis
holds is not trusted (an entry another version wrote, or garbage, is a miss, never an
error), and every key the cache writes expires."""

from __future__ import annotations

import orjson
import pytest
from redis.asyncio import Redis

from genroute.call import Call, Caller, Operation
from tests.cache.conftest import ANSWER, Upstream, call, pipeline, request
from tests.routing.conftest import unique_prefix


async def test_an_entry_redis_holds_that_is_not_ours_is_a_miss(redis_url: str) -> None:
    prefix = unique_prefix("cache-garbage")
    up = Upstream()
    p = pipeline(up, {"type": "redis", "url": redis_url, "namespace": prefix})
    client = Redis.from_url(redis_url)
    try:
        first = call()
        await p.generate(first, request())
        await p.cache.drain()
        keys = await client.keys(f"{prefix}:e:*")
        assert len(keys) == 1
        good = await client.get(keys[0])
        head, _, body = good.partition(b"\n")
        kind, created, expires, origin, tokens = orjson.loads(head)
        bad = [
            head + b"\n" + b"not json",  # the answer is not JSON
            head + b"\n" + b'{"candidates": "no"}',  # JSON, not an answer
            orjson.dumps([kind, created, expires, ["a", "b"], tokens]) + b"\n" + body,  # origin
            orjson.dumps([kind, created, expires, origin, "many"]) + b"\n" + body,  # tokens
            orjson.dumps({"kind": kind}) + b"\n" + body,  # another version's header
            b"\xff\xfe",
        ]
        for data in bad:
            await client.set(keys[0], data, px=60_000)
            c = call()
            response = await p.generate(c, request())
            await p.cache.drain()
            assert c.cache.outcome == "miss", data[:60]
            assert response.text == ANSWER
            await client.set(keys[0], data, px=60_000)
            streamed = call(stream=True)
            chunks = [chunk async for chunk in p.stream(streamed, request())]
            await p.cache.drain()
            assert streamed.cache.outcome == "miss", data[:60]
            assert "".join(chunk.text or "" for chunk in chunks) == ANSWER
        await client.set(keys[0], good, px=60_000)
        c = call()
        await p.generate(c, request())
        assert c.cache.outcome == "hit"
    finally:
        await p.aclose()
        await client.aclose()


async def test_an_embedding_entry_that_is_not_ours_is_a_miss(redis_url: str) -> None:
    from genroute.wire import Content, EmbedContentRequest, Part

    prefix = unique_prefix("cache-garbage-embed")
    up = Upstream()
    p = pipeline(up, {"type": "redis", "url": redis_url, "namespace": prefix})
    client = Redis.from_url(redis_url)
    req = EmbedContentRequest(content=Content(parts=[Part(text="hello world")]))
    try:
        await p.embed(Call(Operation.EMBED, "embedder", Caller(key_hash="k")), req)
        await p.cache.drain()
        (key,) = await client.keys(f"{prefix}:e:*")
        head, _, _ = (await client.get(key)).partition(b"\n")
        await client.set(key, head + b'\n{"embedding": {"values": "x"}}', px=60_000)
        again = Call(Operation.EMBED, "embedder", Caller(key_hash="k"))
        response = await p.embed(again, req)
        assert again.cache.outcome == "miss" and len(response.embedding.values) > 0
    finally:
        await p.aclose()
        await client.aclose()


@pytest.mark.parametrize("kind", ["redis", "redis-semantic"])
async def test_every_key_the_cache_writes_expires(redis_url: str, kind: str) -> None:
    prefix = unique_prefix("cache-ttl")
    params = {"type": kind, "url": redis_url, "namespace": prefix, "ttl": 120}
    if kind == "redis-semantic":
        params |= {"similarity_threshold": 0.9, "redis_semantic_cache_embedding_model": "embedder"}
    p = pipeline(Upstream(), params)
    await p.start()
    client = Redis.from_url(redis_url)
    try:
        c = call()
        await p.generate(c, request())
        await p.cache.drain()
        keys = await client.keys(f"{prefix}:*")
        assert keys
        for key in keys:
            ttl = await client.pttl(key)
            assert 0 < ttl <= 120_000, (key, ttl)
    finally:
        await p.aclose()
        await client.aclose()


async def test_a_command_redis_refuses_is_not_an_outage(redis_url: str) -> None:
    """Redis answering with an error (a key of another type under the prefix; a full
    `noeviction` Redis refusing writes) is a miss or a write not made, logged; the cache
    goes on using Redis for everything else."""
    prefix = unique_prefix("cache-refused")
    params = {"type": "redis-semantic", "url": redis_url, "namespace": prefix,
              "similarity_threshold": 0.9, "redis_semantic_cache_embedding_model": "embedder"}  # fmt: skip
    up = Upstream()
    p = pipeline(up, params)
    health = p.cache.health
    health.clock = lambda: 1000.0  # no backoff runs out during the test
    client = Redis.from_url(redis_url)
    try:
        await p.generate(call(), request())
        await p.cache.drain()
        (entry,) = await client.keys(f"{prefix}:e:*")
        plan = await p.cache.plan(call(), request("Something else"), "generate")
        await client.rpush(f"{prefix}:e:{plan.key}", "not a string")  # GET: WRONGTYPE
        c = call()
        await p.generate(c, request("Something else"))
        await p.cache.drain()
        assert c.cache.outcome == "miss"
        await client.delete(f"{prefix}:s")
        await client.set(f"{prefix}:s", "not a stream")  # XADD answers WRONGTYPE
        await p.generate(call(), request("How do I bake bread?"))
        await p.cache.drain()
        assert health.up and health.outages == 0 and health.refusals == 2
        assert p.cache.metrics()["genroute_cache_redis_refused_total"] == 2
        hit = call()
        await p.generate(hit, request())
        assert hit.cache.outcome == "hit"
        assert await client.exists(entry)
    finally:
        await p.aclose()
        await client.aclose()


async def test_a_redis_that_does_not_answer_costs_a_call_socket_timeout_at_most(
    redis_url: str,
) -> None:
    import time

    from tests.fakes.tcp_proxy import TcpProxy

    with TcpProxy(6379) as proxy:
        url = f"redis://127.0.0.1:{proxy.port}/0"
        # A socket timeout long enough that a busy machine cannot pass for one wait.
        params = {"type": "redis-semantic", "url": url, "socket_timeout": 0.5,
                  "namespace": unique_prefix("cache-slow"), "similarity_threshold": 0.9,
                  "redis_semantic_cache_embedding_model": "embedder"}  # fmt: skip
        up = Upstream()
        p = pipeline(up, params)
        await p.start()
        try:
            await p.generate(call(), request())
            await p.cache.drain()
            proxy.hold = True  # connections stay open; nothing comes back
            started = time.perf_counter()
            c = call()
            response = await p.generate(c, request())
            first = time.perf_counter() - started
            assert c.cache.outcome == "miss" and response.text == ANSWER
            assert first < 3  # one socket timeout (0.5 s), not one per command
            assert not p.cache.health.up
            started = time.perf_counter()
            for _ in range(5):  # skipped without waiting while Redis is down
                await p.generate(call(), request())
            assert time.perf_counter() - started < 0.5  # less than one socket timeout
        finally:
            proxy.hold = False
            await p.aclose()


async def test_redis_down_at_start_up(redis_url: str) -> None:
    from tests.fakes.tcp_proxy import TcpProxy

    with TcpProxy(6379) as proxy:
        proxy.stop()
        url = f"redis://127.0.0.1:{proxy.port}/0"
        params = {"type": "redis-semantic", "url": url, "socket_timeout": 0.05,
                  "namespace": unique_prefix("cache-down"), "similarity_threshold": 0.9,
                  "redis_semantic_cache_embedding_model": "embedder"}  # fmt: skip
        up = Upstream()
        p = pipeline(up, params)
        await p.start()
        try:
            c = call()
            assert (await p.generate(c, request())).text == ANSWER
            assert c.cache.outcome == "miss"
            proxy.start()
            p.cache.health._next = 0.0  # the backoff is over
            await p.generate(call(), request())
            await p.cache.drain()
            hit = call()
            await p.generate(hit, request())
            assert hit.cache.outcome == "hit"
        finally:
            await p.aclose()
