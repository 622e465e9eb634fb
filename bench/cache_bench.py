"""What the response cache costs and saves, measured in process (run by hand, not a test).

    .venv/bin/python bench/cache_bench.py                 # everything, ~1 min
    .venv/bin/python bench/cache_bench.py --entries 100000 --dims 256,768,1536
    .venv/bin/python bench/cache_bench.py --redis redis://127.0.0.1:6379/0

1. Calls through the pipeline (Metered → [Cached] → Router → Gemini provider) to the
   benchmark's fake Gemini (`bench/fake_upstream.py`, started here on a free port): without
   the cache (a direct upstream call), a miss of the exact cache (local and Redis: the
   added time of a miss is the difference), a hit (local and Redis), and a semantic miss
   (what it adds: one embedding call, here to an in-process embedding model, and one
   index search).
2. The semantic index at N entries (one bucket, the worst case) per embedding dimension:
   the time of one lookup (median and p99 of `--lookups`), and the memory per entry
   (the index's arrays and bookkeeping, measured with tracemalloc).

Times are medians over `--calls` calls; the machine's other load shows in the p99s.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import socket
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from redis.asyncio import Redis

from genroute.cache import Cached, ResponseCache
from genroute.cache.semantic import VectorIndex
from genroute.cache.store import LocalStore, RedisHealth, RedisStore
from genroute.call import Call, Operation
from genroute.config import config_from_data
from genroute.config.cache import CacheParams
from genroute.cost import pricer_for
from genroute.pipeline import Pipeline, build_pipeline
from genroute.providers.transport import AiohttpTransport, HttpRequest, HttpResponse
from genroute.routing import Router
from genroute.wire import GenerateContentRequest, GenerateContentResponse

HERE = Path(__file__).resolve().parent
PRICES = {"input_cost_per_token": 3e-7, "output_cost_per_token": 2.5e-6}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_upstream(port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, str(HERE / "fake_upstream.py"), "--port", str(port)],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            time.sleep(0.02)
    process.kill()
    raise RuntimeError("the fake upstream did not start")


class Embeddings:
    """An embedding model answering in process (Gemini's wire): a hash-seeded vector."""

    def __init__(self, inner: Any, dim: int) -> None:
        self.inner = inner
        self.dim = dim

    async def send(self, request: HttpRequest) -> HttpResponse:
        if request.url.endswith(":embedContent"):
            seed = int.from_bytes(hashlib.sha256(request.body).digest()[:8], "big")
            values = np.random.default_rng(seed).standard_normal(self.dim).tolist()
            body = orjson.dumps({"embedding": {"values": values}})
            return HttpResponse(200, {"content-type": "application/json"}, body)
        return await self.inner.send(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def build(port: int, cache: dict[str, Any] | None) -> Pipeline:
    base = {"api_key": "bench-key", "api_base": f"http://127.0.0.1:{port}"}
    data: dict[str, Any] = {
        "model_list": [
            {
                "model_name": "flash",
                "params": {"model": "gemini/gemini-2.5-flash", **base},
                "model_info": PRICES,
            },
            {"model_name": "embedder", "params": {"model": "gemini/text-embedding-004", **base}},
        ]
    }
    if cache is not None:
        data["litellm_settings"] = {"cache": True, "cache_params": cache}
    config = config_from_data(data)
    router = Router(config=config, transport=Embeddings(AiohttpTransport(), 768))
    return build_pipeline(config, router=router, server=False)


def request(i: int) -> GenerateContentRequest:
    text = f"Question number {i}: what is the capital of country {i}?"
    return GenerateContentRequest.model_validate(
        {"contents": [{"role": "user", "parts": [{"text": text}]}]}
    )


async def timed(pipeline: Pipeline, requests: list[GenerateContentRequest]) -> list[float]:
    times = []
    for req in requests:
        call = Call(Operation.GENERATE, "flash")
        start = time.perf_counter()
        await pipeline.generate(call, req)
        times.append(time.perf_counter() - start)
    if pipeline.cache is not None:
        await pipeline.cache.drain()
    return times


def ms(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"{statistics.median(values) * 1000:.3f} | {p99 * 1000:.3f}"


async def calls(port: int, n: int, redis: str | None) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    warm = [request(-i) for i in range(1, 50)]
    direct = build(port, None)
    await timed(direct, warm)
    rows.append(
        ("direct upstream call (no cache)", ms(await timed(direct, [request(i) for i in range(n)])))
    )
    await direct.aclose()
    kinds: list[tuple[str, dict[str, Any]]] = [("local", {"type": "local"})]
    if redis:
        prefix = f"genroute-bench:{os.getpid()}"
        kinds.append(("redis", {"type": "redis", "url": redis, "namespace": prefix}))
    for name, params in kinds:
        pipeline = build(port, params)
        await pipeline.start()
        await timed(pipeline, warm)
        offset = 1_000_000 if name == "redis" else 0
        fresh = [request(offset + i) for i in range(n)]
        rows.append((f"{name}: exact miss", ms(await timed(pipeline, fresh))))
        rows.append((f"{name}: exact hit", ms(await timed(pipeline, fresh))))
        await pipeline.aclose()
    semantic = build(
        port,
        {"type": "local-semantic", "similarity_threshold": 0.95,
         "redis_semantic_cache_embedding_model": "embedder"},
    )  # fmt: skip
    await timed(semantic, warm)
    fresh = [request(2_000_000 + i) for i in range(n)]
    rows.append(("local-semantic: miss (embedding + search)", ms(await timed(semantic, fresh))))
    await semantic.aclose()
    return rows


class Stub:
    """An inner layer that answers at once (what the cache adds is then all there is)."""

    def __init__(self) -> None:
        self.response = GenerateContentResponse.model_validate(
            {
                "candidates": [
                    {
                        "content": {"role": "model", "parts": [{"text": "Paris. " * 40}]},
                        "finishReason": "STOP",
                    }
                ],
                "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 80},
            }
        )

    async def generate(self, call: Call, request: GenerateContentRequest) -> Any:
        return self.response


async def layer_alone(n: int, redis: str | None) -> list[tuple[str, str]]:
    """The cached layer over an inner layer that answers at once: the time a miss and a
    hit add on the request path, and what a write costs off it."""
    config = config_from_data(
        {"model_list": [{"model_name": "flash", "params": {"model": "demo/x"}}]}
    )
    router = Router(config=config)
    rows: list[tuple[str, str]] = []
    stub = Stub()
    requests = [request(3_000_000 + i) for i in range(n)]
    base = []
    for req in requests:
        start = time.perf_counter()
        await stub.generate(Call(Operation.GENERATE, "flash"), req)
        base.append(time.perf_counter() - start)
    rows.append(("inner layer alone", ms(base)))
    stores: list[tuple[str, Any, Any]] = [("local", LocalStore(100_000, 1 << 30), None)]
    if redis:
        client = Redis.from_url(redis)
        prefix = f"genroute-bench:{os.getpid()}:alone"
        stores.append(("redis", RedisStore(client, prefix, RedisHealth()), client))
    for name, store, client in stores:
        cache = ResponseCache(CacheParams(), store, router, pricer_for([]))
        layer = Cached(stub, cache)  # type: ignore[arg-type]
        for label in ("miss", "hit"):
            times = []
            for req in requests:
                start = time.perf_counter()
                await layer.generate(Call(Operation.GENERATE, "flash"), req)
                times.append(time.perf_counter() - start)
                await asyncio.sleep(0)  # let the write run, as a server's loop would
            rows.append((f"{name}: {label}, cached layer + inner", ms(times)))
            await cache.drain()
            counted = cache.stats["writes" if label == "miss" else "hits"]
            assert counted == n, f"{label}: {dict(cache.stats)}"
        if client is not None:
            await client.aclose()
    return rows


def index_rows(entries: int, dims: list[int], lookups: int) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    rng = np.random.default_rng(7)
    for dim in dims:
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        index = VectorIndex(entries, 1 << 40)
        block = 10_000
        for start in range(0, entries, block):
            vectors = rng.standard_normal((min(block, entries - start), dim)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            for j, vector in enumerate(vectors):
                index.add(hashlib.sha256(b"%d" % (start + j)).hexdigest(), "b", vector, 2e9)
        used = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        queries = rng.standard_normal((lookups, dim)).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        times = []
        for query in queries:
            start_t = time.perf_counter()
            index.search("b", query, 0.9)
            times.append(time.perf_counter() - start_t)
        per_entry = used / entries
        rows.append(
            (
                str(dim),
                f"{entries:,}",
                ms(times),
                f"{per_entry:,.0f}",
                f"{used / (1 << 20):,.0f}",
                f"{int((1 << 30) / per_entry):,}",
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--dims", default="256,768,1536")
    parser.add_argument("--lookups", type=int, default=200)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="'' to skip Redis")
    args = parser.parse_args()
    port = free_port()
    upstream = start_upstream(port)
    alone = asyncio.run(layer_alone(args.calls, args.redis or None))
    print(f"\n{args.calls} calls each, the cached layer over an inner layer answering at once\n")
    print("| call | median ms | p99 ms |\n|---|--:|--:|")
    for name, value in alone:
        print(f"| {name} | {value} |")
    try:
        rows = asyncio.run(calls(port, args.calls, args.redis or None))
    finally:
        upstream.terminate()
        upstream.wait()
    print(f"\n{args.calls} calls each, ms: median | p99\n")
    print("| call | median ms | p99 ms |\n|---|--:|--:|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    dims = [int(d) for d in args.dims.split(",") if d]
    print(f"\nthe semantic index, one bucket, {args.lookups} lookups\n")
    print("| dims | entries | lookup median ms | p99 ms | bytes/entry | MiB | entries per GiB |")
    print("|--:|--:|--:|--:|--:|--:|--:|")
    for row in index_rows(args.entries, dims, args.lookups):
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
