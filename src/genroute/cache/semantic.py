"""The semantic index: the embeddings of cached prompts, searched by cosine similarity.

`VectorIndex` keeps, per bucket (one model group, scope, conversation and settings: see
`genroute.cache.keys.semantic_prompt`), the unit vectors (float16: 2 bytes a dimension),
a 256-bit sign sketch of each (SimHash: on which side of 256 random hyperplanes it lies)
and their expiry and age. A lookup compares the query's sketch with every live row's
(XOR and popcount over 32 bytes a row), takes the `CANDIDATES` nearest by Hamming
distance, and scores those exactly (cosine similarity in float32): the best at or above the
threshold wins. A vector at cosine 0.9 differs from the query in about 14% of the bits, an
unrelated one in half, so a near match is always among the candidates. A bucket of up to
`EXACT_ROWS` rows is scored exactly without the sketch. A bucket starts with one row, grows
by half when full and is compacted when under a third of its rows are live (most buckets
hold one entry: one conversation so far). The index holds at most `max_entries` vectors
and `max_bytes` bytes (`nbytes`: its rows, free ones included, its bookkeeping and its
buckets), dropping the oldest first (docs/cache.md has the measured memory per entry and
lookup times).

`SharedIndex` keeps every instance's index in step through one Redis stream,
`{prefix}:s` (plain Redis 7: XADD, XREAD; no search module): each stored entry is
published as (id, bucket, expiry, creation time, vector), trimmed to about `max_entries`
items; the stream key expires with the longest-lived entry it carries (EXPIRE NX, then GT:
Redis 7). An instance reads the stream from its start when it starts (catching up on what
others cached) and then follows it; after a Redis outage it goes on from the last item it
read.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from genroute.cache.store import RedisHealth
from genroute.errors import redis_errors
from genroute.tasks import raise_if_cancelled, stop

__all__ = ["ENTRY_OVERHEAD", "SharedIndex", "VectorIndex", "unit_vector"]

log = logging.getLogger("genroute.cache")

SKETCH_BITS = 256
CANDIDATES = 64
EXACT_ROWS = 2048
_WORDS = SKETCH_BITS // 64
ROW_OVERHEAD = _WORDS * 8 + 8 + 8 + 8  # a row besides its vector: sketch, expiry, time, id slot
ENTRY_OVERHEAD = 280  # an entry's bookkeeping besides its row: its place, its id (measured)
BUCKET_OVERHEAD = 760  # a bucket's arrays and lists, empty (measured)
_GROWTH = 1.5
_SHRINK = 3  # a bucket whose live rows are under a third of its rows is compacted


def unit_vector(values: Sequence[float] | bytes) -> np.ndarray | None:
    """The values as a float32 unit vector (None for a zero or non-finite one)."""
    if isinstance(values, bytes):
        vector = np.frombuffer(values, dtype=np.float32).copy()
    else:
        vector = np.asarray(values, dtype=np.float32)
    if vector.ndim != 1 or vector.size == 0:
        return None
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm == 0.0:
        return None
    vector /= norm
    return vector


def _sketch(planes: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """The vector's side of each hyperplane, as `_WORDS` uint64 words."""
    return np.packbits((vector @ planes) > 0).view(np.uint64)


class _Bucket:
    """The rows of one bucket: vectors, sketches, expiry and creation times, ids, free
    rows."""

    __slots__ = ("created", "expires", "free", "ids", "matrix", "sketches", "used")

    def __init__(self, dim: int, rows: int = 1) -> None:
        self.matrix = np.zeros((rows, dim), dtype=np.float16)
        self.sketches = np.zeros((rows, _WORDS), dtype=np.uint64)
        self.expires = np.zeros(rows, dtype=np.float64)  # 0: a free row
        self.created = np.zeros(rows, dtype=np.float64)
        self.ids: list[str | None] = [None] * rows
        self.used = 0  # rows handed out since the last compaction (the high-water mark)
        self.free: list[int] = []

    @property
    def rows(self) -> int:
        """Rows allocated."""
        return len(self.ids)

    def add(
        self, ident: str, vector: np.ndarray, sketch: np.ndarray, expires: float, created: float
    ) -> int:
        if self.free:
            row = self.free.pop()
        else:
            row = self.used
            if row == len(self.ids):
                self._grow()
            self.used += 1
        self.matrix[row] = vector
        self.sketches[row] = sketch
        self.expires[row] = expires
        self.created[row] = created
        self.ids[row] = ident
        return row

    def _grow(self) -> None:
        rows = max(len(self.ids) + 1, int(len(self.ids) * _GROWTH))
        matrix = np.zeros((rows, self.matrix.shape[1]), dtype=np.float16)
        matrix[: self.used] = self.matrix[: self.used]
        self.matrix = matrix
        sketches = np.zeros((rows, _WORDS), dtype=np.uint64)
        sketches[: self.used] = self.sketches[: self.used]
        self.sketches = sketches
        self.expires = np.resize(self.expires, rows)
        self.expires[self.used :] = 0.0
        self.created = np.resize(self.created, rows)
        self.ids.extend([None] * (rows - len(self.ids)))

    def remove(self, row: int) -> None:
        self.expires[row] = 0.0
        self.ids[row] = None
        self.free.append(row)

    @property
    def sparse(self) -> bool:
        """Whether most of its rows are free (then `compact` it)."""
        return self.live * _SHRINK < len(self.ids)

    def compact(self) -> list[tuple[str, int]]:
        """Keep only the live rows (in their order), with room to grow by half; the new
        row of each id."""
        keep = [r for r in range(self.used) if self.ids[r] is not None]
        live = len(keep)
        smaller = _Bucket(self.matrix.shape[1], max(1, live + live // 2))
        at = np.asarray(keep, dtype=np.intp)
        smaller.matrix[:live] = self.matrix[at]
        smaller.sketches[:live] = self.sketches[at]
        smaller.expires[:live] = self.expires[at]
        smaller.created[:live] = self.created[at]
        ids = [self.ids[r] for r in keep]
        smaller.ids[:live] = ids
        smaller.used = live
        for name in self.__slots__:
            setattr(self, name, getattr(smaller, name))
        return [(ident, row) for row, ident in enumerate(ids) if ident is not None]

    @property
    def live(self) -> int:
        return self.used - len(self.free)


class VectorIndex:
    """Unit vectors by bucket, searched by cosine similarity (see the module docstring)."""

    def __init__(
        self, max_entries: int, max_bytes: int, clock: Callable[[], float] = time.time
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.clock = clock
        self.dim: int | None = None
        self._planes: np.ndarray | None = None
        self._buckets: dict[str, _Bucket] = {}
        self._where: OrderedDict[str, tuple[str, int]] = OrderedDict()  # oldest first
        self._rows = 0  # rows allocated in every bucket
        self.evicted = 0
        self.refused = 0  # vectors of another dimension than the index's

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, ident: str) -> bool:
        return ident in self._where

    @property
    def entry_bytes(self) -> int:
        """What one entry takes in a bucket with no free rows (its vector, its row's
        sketch, times and id slot, and its bookkeeping)."""
        return self._row_bytes + ENTRY_OVERHEAD

    @property
    def _row_bytes(self) -> int:
        return (self.dim or 0) * 2 + ROW_OVERHEAD

    @property
    def nbytes(self) -> int:
        """What the index holds: its rows (free ones included), its entries' bookkeeping,
        its buckets and the sketch's hyperplanes; `max_bytes` bounds it."""
        return (
            (0 if self._planes is None else self._planes.nbytes)
            + self._rows * self._row_bytes
            + len(self._where) * ENTRY_OVERHEAD
            + len(self._buckets) * BUCKET_OVERHEAD
        )

    def add(
        self,
        ident: str,
        bucket: str,
        vector: np.ndarray,
        expires: float,
        created: float | None = None,
    ) -> bool:
        """Index `vector` (a unit vector) as `ident` until `expires`; False when its
        dimension is not the index's or it has expired."""
        if expires <= self.clock():
            return False
        if self.dim is None:
            self.dim = int(vector.shape[0])
            rng = np.random.default_rng(0x9E3779B9)
            self._planes = rng.standard_normal((self.dim, SKETCH_BITS)).astype(np.float32)
        elif vector.shape[0] != self.dim:
            self.refused += 1
            return False
        self.remove(ident)
        rows = self._buckets.get(bucket)
        if rows is None:
            rows = self._buckets[bucket] = _Bucket(self.dim)
            self._rows += rows.rows
        assert self._planes is not None
        sketch = _sketch(self._planes, vector)
        before = rows.rows
        row = rows.add(ident, vector, sketch, expires, self.clock() if created is None else created)
        self._rows += rows.rows - before
        self._where[ident] = (bucket, row)
        while self._where and (len(self._where) > self.max_entries or self.nbytes > self.max_bytes):
            oldest = next(iter(self._where))
            self.remove(oldest)
            self.evicted += 1
        return ident in self._where

    def remove(self, ident: str) -> None:
        """Forget `ident` (nothing if it is not there)."""
        place = self._where.pop(ident, None)
        if place is None:
            return
        bucket, row = place
        rows = self._buckets[bucket]
        rows.remove(row)
        if rows.live == 0:
            del self._buckets[bucket]
            self._rows -= rows.rows
        elif rows.sparse:
            before = rows.rows
            for moved, at in rows.compact():
                self._where[moved] = (bucket, at)  # keeps its place in the age order
            self._rows -= before - rows.rows

    def search(
        self, bucket: str, vector: np.ndarray, threshold: float, max_age: float | None = None
    ) -> tuple[str, float] | None:
        """The id and similarity of the nearest live vector of `bucket` at or above
        `threshold` (and at most `max_age` seconds old), or None."""
        rows = self._buckets.get(bucket)
        if rows is None or vector.shape[0] != self.dim:
            return None
        used = rows.used
        now = self.clock()
        dead = rows.expires[:used] <= now
        if max_age is not None:
            dead |= rows.created[:used] < now - max_age
        if used <= EXACT_ROWS:
            candidates = np.flatnonzero(~dead)
        else:
            assert self._planes is not None
            query = _sketch(self._planes, vector)
            distance = np.bitwise_count(rows.sketches[:used] ^ query).sum(axis=1, dtype=np.int32)
            distance[dead] = SKETCH_BITS + 1
            nearest = np.argpartition(distance, CANDIDATES)[:CANDIDATES]
            candidates = nearest[distance[nearest] <= SKETCH_BITS]
        if candidates.size == 0:
            return None
        scores = rows.matrix[candidates].astype(np.float32) @ vector
        best = int(np.argmax(scores))
        score = float(scores[best])
        if score < threshold:
            return None
        ident = rows.ids[int(candidates[best])]
        return None if ident is None else (ident, min(score, 1.0))

    def clear(self) -> None:
        """Forget every vector."""
        self._buckets.clear()
        self._where.clear()
        self._rows = 0


class SharedIndex:
    """Keeps a VectorIndex in step with every instance's through a Redis stream."""

    def __init__(
        self,
        index: VectorIndex,
        client: Any,
        reader: Any,
        prefix: str,
        health: RedisHealth,
        *,
        block_ms: int = 1000,
    ) -> None:
        self.index = index
        self.client = client
        self.reader = reader  # a connection of its own: XREAD blocks
        self.stream = f"{prefix}:s"
        self.health = health
        self.block_ms = block_ms
        self.last_id = "0-0"
        self.received = 0
        self.caught_up = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def publish(
        self, ident: str, bucket: str, vector: np.ndarray, expires: float, created: float
    ) -> bool:
        """Tell every instance (this one included) about a new entry."""
        if not self.health.usable():
            return False
        fields = {
            "i": ident,
            "b": bucket,
            "x": repr(expires),
            "c": repr(created),
            "v": vector.astype(np.float32).tobytes(),
        }
        ttl = max(1, math.ceil(expires - created))
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.xadd(self.stream, fields, maxlen=self.index.max_entries, approximate=True)
                pipe.expire(self.stream, ttl, nx=True)  # a new stream
                pipe.expire(self.stream, ttl, gt=True)  # lives as long as its last entry
                await pipe.execute()
        except redis_errors() as exc:
            self.health.erred(exc)
            return False
        self.health.succeeded()
        return True

    def start(self) -> None:
        """Catch up from the stream's start, then follow it (in the background)."""
        if self._task is None:
            self._task = asyncio.create_task(self._follow(), name="genroute-cache-index")

    async def aclose(self) -> None:
        """Stop following."""
        task, self._task = self._task, None
        await stop(task)

    def _apply(self, items: list[tuple[Any, dict[Any, Any]]]) -> None:
        for item_id, fields in items:
            self.last_id = item_id.decode() if isinstance(item_id, bytes) else str(item_id)
            self.received += 1
            try:
                vector = unit_vector(fields[b"v"])
                if vector is None:
                    continue
                self.index.add(
                    fields[b"i"].decode(),
                    fields[b"b"].decode(),
                    vector,
                    float(fields[b"x"]),
                    float(fields[b"c"]),
                )
            except (KeyError, ValueError, UnicodeDecodeError):
                log.warning("response cache: ignoring a malformed index item %s", self.last_id)

    async def _follow(self) -> None:
        delay = 0.05
        while True:
            try:
                reply = await self.reader.xread(
                    {self.stream: self.last_id}, count=1000, block=self.block_ms
                )
            except redis_errors() as exc:
                raise_if_cancelled(exc)  # redis-py can turn a cancellation into an error
                self.health.erred(exc)  # refused: the stream key is of another type
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self.health.succeeded()
            delay = 0.05
            items = reply[0][1] if reply else []
            self._apply(items)
            if len(items) < 1000:
                self.caught_up.set()
