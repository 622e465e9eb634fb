"""The semantic cache in process: the vector index, and local-semantic in a pipeline whose
embedding model is a configured group (bag of words), called through the pipeline."""

from __future__ import annotations

import numpy as np
import pytest

from genroute.cache.semantic import (
    BUCKET_OVERHEAD,
    ENTRY_OVERHEAD,
    EXACT_ROWS,
    ROW_OVERHEAD,
    SKETCH_BITS,
    VectorIndex,
    unit_vector,
)
from tests.cache.conftest import Upstream, call, pipeline, request
from tests.fakes.embeddings import bag_of_words

SEMANTIC = {"type": "local-semantic", "similarity_threshold": 0.9,
            "redis_semantic_cache_embedding_model": "embedder"}  # fmt: skip


def vec(text: str) -> np.ndarray:
    vector = unit_vector(bag_of_words(text))
    assert vector is not None
    return vector


def test_the_index_finds_the_nearest_live_vector_at_or_above_the_threshold() -> None:
    now = [100.0]
    index = VectorIndex(100, 1 << 20, clock=lambda: now[0])
    index.add("france", "b", vec("capital of France"), expires=200)
    index.add("spain", "b", vec("capital of Spain"), expires=150)
    index.add("other-bucket", "c", vec("capital of France"), expires=200)
    assert index.search("b", vec("France capital"), 0.9) == ("france", pytest.approx(1.0, abs=1e-3))
    assert index.search("b", vec("bake bread"), 0.5) is None
    assert index.search("nowhere", vec("France capital"), 0.5) is None
    found = index.search("b", vec("capital of Spain"), 0.9)
    assert found is not None and found[0] == "spain"
    now[0] = 160  # spain expired
    assert index.search("b", vec("capital of Spain"), 0.9) is None
    assert index.search("b", vec("capital of France"), 0.9, max_age=30) is None  # too old
    index.remove("france")
    assert index.search("b", vec("capital of France"), 0.9) is None
    assert len(index) == 2


def rand(rng: np.random.Generator, dim: int = 64) -> np.ndarray:
    vector = unit_vector(rng.standard_normal(dim).tolist())
    assert vector is not None
    return vector


def test_the_index_is_bounded_by_entries_and_bytes_oldest_first() -> None:
    rng = np.random.default_rng(1)
    index = VectorIndex(3, 1 << 20)
    for i in range(5):
        index.add(f"e{i}", "b", rand(rng), expires=2e9)
    assert len(index) == 3 and "e0" not in index and "e4" in index
    planes = 64 * SKETCH_BITS * 4
    room = 64 * 2 + ROW_OVERHEAD + ENTRY_OVERHEAD + BUCKET_OVERHEAD  # a bucket of one
    small = VectorIndex(1000, planes + 2 * room)  # two 64-dimension entries in two buckets
    for i in range(5):
        small.add(f"e{i}", f"b{i % 2}", rand(rng), expires=2e9)
    assert len(small) == 2 and small.evicted == 3 and small.nbytes <= small.max_bytes
    assert small.add("x", "b", unit_vector([1.0, 0.0]), expires=2e9) is False  # wrong dim


def test_rows_are_reused_and_buckets_grow() -> None:
    rng = np.random.default_rng(2)
    vectors = [rand(rng) for _ in range(150)]
    index = VectorIndex(10_000, 1 << 30)
    for i in range(100):
        index.add(f"e{i}", "b", vectors[i], expires=2e9)
    for i in range(50):
        index.remove(f"e{i}")
    for i in range(100, 150):
        index.add(f"e{i}", "b", vectors[i], expires=2e9)
    assert len(index) == 100
    assert index.search("b", vectors[10], 0.99) is None  # removed
    found = index.search("b", vectors[120], 0.99)
    assert found is not None and found[0] == "e120"


def test_a_large_bucket_is_searched_by_sketch_then_exactly() -> None:
    rng = np.random.default_rng(3)
    dim = 128
    vectors = rng.standard_normal((EXACT_ROWS + 3000, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = VectorIndex(100_000, 1 << 30)
    for i, vector in enumerate(vectors):
        index.add(f"e{i}", "b", vector, expires=2e9)
    for target in (7, 2500, len(vectors) - 1):
        noisy = unit_vector((vectors[target] + 0.3 * rng.standard_normal(dim) / dim**0.5).tolist())
        assert noisy is not None
        found = index.search("b", noisy, 0.9)
        assert found is not None and found[0] == f"e{target}", target
        assert found[1] == pytest.approx(float(noisy @ vectors[target]), abs=2e-3)
    unrelated = unit_vector(rng.standard_normal(dim).tolist())
    assert unrelated is not None and index.search("b", unrelated, 0.9) is None


async def test_a_paraphrase_is_a_semantic_hit_and_an_unrelated_prompt_a_miss() -> None:
    up = Upstream()
    p = pipeline(up, SEMANTIC)
    first = call()
    await p.generate(first, request("What is the capital of France?"))
    await p.cache.drain()
    paraphrase = call()
    response = await p.generate(paraphrase, request("Tell me France's capital city, please"))
    assert paraphrase.cache.outcome == "semantic-hit"
    assert paraphrase.cache.similarity == pytest.approx(1.0, abs=1e-3)
    assert paraphrase.meter.cost == 0.0 and paraphrase.cache.saved_cost > 0
    assert response.text == Upstream().answer
    unrelated = call()
    await p.generate(unrelated, request("How do I bake bread?"))
    assert unrelated.cache.outcome == "miss"
    assert up.generated == 2
    # one embedding per lookup (the stored entry reuses its lookup's embedding)
    assert up.embedded == [
        "What is the capital of France?",
        "Tell me France's capital city, please",
        "How do I bake bread?",
    ]
    exact = call()
    await p.generate(exact, request("What is the capital of France?"))
    assert exact.cache.outcome == "hit" and len(up.embedded) == 3  # exact first: no embedding
    await p.aclose()


async def test_what_must_match_exactly_for_a_semantic_hit() -> None:
    up = Upstream()
    p = pipeline(up, SEMANTIC)
    await p.generate(call(), request("What is the capital of France?"))
    await p.cache.drain()
    changes = [
        {"systemInstruction": {"parts": [{"text": "Answer in French."}]}},
        {"generationConfig": {"temperature": 0.1}},
        {"tools": [{"functionDeclarations": [{"name": "lookup"}]}]},
    ]
    for fields in changes:
        c = call()
        await p.generate(c, request("Tell me France's capital city", **fields))
        assert c.cache.outcome == "miss", fields
    earlier = request("Tell me France's capital city").model_validate(
        {
            "contents": [
                {"role": "user", "parts": [{"text": "hi"}]},
                {"role": "model", "parts": [{"text": "hello"}]},
                {"role": "user", "parts": [{"text": "Tell me France's capital city"}]},
            ]
        }
    )
    c = call()
    await p.generate(c, earlier)
    assert c.cache.outcome == "miss"  # another conversation before the last turn
    other_team = call(team="x")
    await p.generate(other_team, request("Tell me France's capital city"))
    assert other_team.cache.outcome == "miss"
    await p.aclose()


async def test_a_failing_embedding_model_skips_the_semantic_match_only() -> None:
    up = Upstream(embed_status=400)
    p = pipeline(up, SEMANTIC)
    c = call()
    await p.generate(c, request("What is the capital of France?"))
    await p.cache.drain()
    # one failed embedding per call: the write does not try again what the lookup tried
    assert c.cache.outcome == "miss" and p.cache.stats["embedding_errors"] == 1
    exact = call()
    await p.generate(exact, request("What is the capital of France?"))
    assert exact.cache.outcome == "hit"  # the exact entry was still stored
    await p.aclose()


def _traced(build) -> tuple[int, object]:
    """Bytes held by what `build()` returns (tracemalloc), and that object."""
    import tracemalloc

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        made = build()
        return tracemalloc.get_traced_memory()[0] - before, made
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("per_bucket", [1, 3, 1500])
def test_the_index_holds_about_the_memory_it_counts(per_bucket: int) -> None:
    """Most buckets of a chat gateway hold one entry (a bucket is one conversation so far,
    with its settings); the index's memory stays near what it counts for `max_memory_mb`
    (it allocated 16 rows for every bucket: ten times the count at 1,536 dimensions)."""
    rng = np.random.default_rng(4)
    dim, n = 256, 1500
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = [f"{i:064x}" for i in range(n)]
    buckets = [f"{i // per_bucket:032x}" for i in range(n)]

    def build() -> VectorIndex:
        index = VectorIndex(n, 1 << 40)
        for i in range(n):
            index.add(ids[i], buckets[i], vectors[i], expires=2e9, created=1.0)
        return index

    held, index = _traced(build)
    assert len(index) == n
    assert held <= 1.3 * index.nbytes, (held / n, index.nbytes / n)
    assert index.nbytes <= index.max_bytes


def test_a_bucket_that_shrinks_gives_its_memory_back() -> None:
    rng = np.random.default_rng(5)
    dim, n = 256, 1500
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)

    def build(keep: int) -> VectorIndex:
        index = VectorIndex(n, 1 << 40)
        for i in range(n):
            index.add(f"e{i}", "b", vectors[i], expires=2e9, created=1.0)
        for i in range(n - keep):
            index.remove(f"e{i}")
        return index

    planes = dim * SKETCH_BITS * 4  # the sketch's hyperplanes: the same for any size
    full, _ = _traced(lambda: build(n))
    held, index = _traced(lambda: build(10))
    assert len(index) == 10
    assert held - planes < 0.25 * (full - planes), (held, full)
    assert index.nbytes - planes < 20 * index.entry_bytes
    for i in range(n - 10, n):  # moved rows are still found, under their ids
        found = index.search("b", vectors[i], 0.99)
        assert found is not None and found[0] == f"e{i}"
    index.remove(f"e{n - 1}")
    assert index.search("b", vectors[n - 1], 0.99) is None


def test_the_index_is_bounded_by_the_bytes_of_its_buckets_too() -> None:
    rng = np.random.default_rng(6)
    planes = 64 * SKETCH_BITS * 4
    index = VectorIndex(10_000, planes + 100 * (64 * 2 + ROW_OVERHEAD + ENTRY_OVERHEAD))
    for i in range(1000):
        index.add(f"e{i}", f"b{i}", rand(rng), expires=2e9)
    assert index.nbytes <= index.max_bytes and 10 < len(index) < 100


async def test_a_threshold_of_zero_serves_the_nearest_entry_whatever_it_says() -> None:
    """`similarity_threshold: 0` is a threshold (any nearest entry of the bucket), not
    "unset": it used to be read as 1.0, so only identical prompts were served."""
    up = Upstream()
    p = pipeline(up, {**SEMANTIC, "similarity_threshold": 0})
    await p.generate(call(), request("What is the capital of France?"))
    await p.cache.drain()
    other = call()
    await p.generate(other, request("How do I bake bread?"))
    assert other.cache.outcome == "semantic-hit" and up.generated == 1
    await p.aclose()
