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
