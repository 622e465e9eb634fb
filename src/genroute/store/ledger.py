"""The spend ledger writer: one row per call, written off the request path, in batches.

`submit` puts a `SpendRecord` on a bounded queue (waiting only when the queue is full, which
is back-pressure, never loss). A background task writes what has queued every
`flush_interval` seconds (sooner when a batch fills): the rows and the spend totals of
their keys, teams and end users, in one transaction. A failed write is retried with the
same rows; `aclose` (ASGI lifespan shutdown, which uvicorn runs on SIGTERM after the
in-flight requests finish) writes everything still queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime

from sqlalchemy import bindparam, insert, update

from genroute.call import Call
from genroute.cost import Tokens
from genroute.store.models import EndUser, SpendLog, Team, VirtualKey
from genroute.store.repo import Store, utcnow

__all__ = [
    "DEFAULT_BATCH",
    "DEFAULT_QUEUE",
    "INSERT_SLICE",
    "LedgerWriter",
    "SpendRecord",
    "Totals",
    "write_batch",
]

log = logging.getLogger("genroute.ledger")

DEFAULT_QUEUE = 50_000
DEFAULT_BATCH = 1_000
INSERT_SLICE = 100  # rows per INSERT statement


@dataclass(slots=True)
class SpendRecord:
    """What the ledger keeps of one call."""

    request_id: str
    start_time: datetime
    operation: str
    status_code: int
    key_hash: str | None = None
    key_alias: str | None = None
    team_id: str | None = None
    user_id: str | None = None
    end_user: str | None = None
    model_group: str | None = None
    deployment_id: str | None = None
    provider: str | None = None
    provider_model: str | None = None
    error_status: str | None = None
    prompt_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0
    cached_tokens: int = 0
    cost: float = 0.0
    cost_estimated: bool = False
    latency_ms: float | None = None
    ttft_ms: float | None = None
    stream: bool = False

    @classmethod
    def of(
        cls,
        call: Call,
        *,
        status_code: int,
        error_status: str | None,
        finished: float,
    ) -> SpendRecord:
        """The record of a finished call (`finished`: its perf_counter end time)."""
        meter, route, caller = call.meter, call.route, call.caller
        tokens = Tokens.from_usage(meter.usage)
        latency = finished - call.started
        ttft = None if meter.first_chunk_at is None else meter.first_chunk_at - call.started
        elapsed = time.perf_counter() - call.started
        return cls(
            request_id=call.request_id,
            start_time=datetime.fromtimestamp(time.time() - elapsed, utcnow().tzinfo),
            operation=call.operation.value,
            status_code=status_code,
            key_hash=caller.key_hash,
            key_alias=caller.key_alias,
            team_id=caller.team_id,
            user_id=caller.user_id,
            end_user=caller.end_user,
            model_group=route.group or call.model,
            deployment_id=route.deployment_id,
            provider=route.provider,
            provider_model=route.provider_model,
            error_status=error_status,
            prompt_tokens=tokens.input_total,
            output_tokens=tokens.output,
            thinking_tokens=tokens.thinking,
            cached_tokens=tokens.cached,
            cost=meter.cost or 0.0,
            cost_estimated=meter.cost_estimated,
            latency_ms=latency * 1000,
            ttft_ms=None if ttft is None else ttft * 1000,
            stream=call.stream,
        )


@dataclass(slots=True)
class Totals:
    """Spend per key hash, team and end user in one batch."""

    key: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    team: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    end_user: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    @classmethod
    def of(cls, records: list[SpendRecord]) -> Totals:
        """Add up a batch."""
        totals = cls()
        for record in records:
            if not record.cost:
                continue
            if record.key_hash:
                totals.key[record.key_hash] += record.cost
            if record.team_id:
                totals.team[record.team_id] += record.cost
            if record.end_user:
                totals.end_user[record.end_user] += record.cost
        return totals


async def write_batch(store: Store, records: list[SpendRecord]) -> Totals:
    """Insert the rows and add their cost to the totals, in one transaction."""
    totals = Totals.of(records)
    async with store.session.begin() as session:
        # Rows go in slices: SQLAlchemy prepares each statement's parameters on the event
        # loop's thread, so one statement of thousands of rows would stall every request.
        for start in range(0, len(records), INSERT_SLICE):
            rows = [asdict(r) for r in records[start : start + INSERT_SLICE]]
            await session.execute(insert(SpendLog), rows)
            await asyncio.sleep(0)
        for table, pk, amounts in (
            (VirtualKey, VirtualKey.token, totals.key),
            (Team, Team.team_id, totals.team),
            (EndUser, EndUser.end_user_id, totals.end_user),
        ):
            if not amounts:
                continue
            statement = (
                update(table.__table__)  # type: ignore[arg-type]
                .where(table.__table__.c[pk.key] == bindparam("ident"))
                .values(spend=table.__table__.c.spend + bindparam("amount"))
            )
            conn = await session.connection()
            await conn.execute(
                statement, [{"ident": k, "amount": v} for k, v in sorted(amounts.items())]
            )
    return totals


class LedgerWriter:
    """Batches SpendRecords onto the database from a background task."""

    def __init__(
        self,
        store: Store,
        *,
        flush_interval: float = 1.0,
        max_queue: int = DEFAULT_QUEUE,
        batch_size: int = DEFAULT_BATCH,
        on_commit: Callable[[Totals], None] | None = None,
    ) -> None:
        self.store = store
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        self.on_commit = on_commit
        self.queue: asyncio.Queue[SpendRecord] = asyncio.Queue(max_queue)
        self.written = 0
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._stop = asyncio.Event()

    def start(self) -> None:
        """Start the background flusher (idempotent)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="genroute-ledger")

    async def submit(self, record: SpendRecord) -> None:
        """Queue a record; waits only while the queue is full."""
        if self._task is None and not self._closing:
            self.start()
        await self.queue.put(record)

    def _take(self) -> list[SpendRecord]:
        batch: list[SpendRecord] = []
        while len(batch) < self.batch_size:
            try:
                batch.append(self.queue.get_nowait())
            except asyncio.QueueEmpty:
                break
        return batch

    async def _write(self, batch: list[SpendRecord], attempts: int | None = None) -> None:
        delay, attempt = 0.1, 0
        while True:
            attempt += 1
            try:
                totals = await write_batch(self.store, batch)
            except Exception:
                if attempt >= (attempts or (20 if self._stop.is_set() else 1 << 30)):
                    log.exception(
                        "spend ledger: dropping %d rows after %d tries", len(batch), attempt
                    )
                    return
                log.exception("spend ledger: writing %d rows failed; retrying", len(batch))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self.written += len(batch)
            if self.on_commit is not None:
                self.on_commit(totals)
            return

    async def _run(self) -> None:
        while not self._stop.is_set():
            deadline = time.monotonic() + self.flush_interval
            while self.queue.qsize() < self.batch_size and not self._stop.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), min(remaining, 0.05))
            while batch := self._take():
                await self._write(batch)

    async def flush(self) -> None:
        """Write everything queued now."""
        while batch := self._take():
            await self._write(batch)

    async def aclose(self) -> None:
        """Stop the flusher and write everything still queued."""
        self._closing = True
        self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None
        while batch := self._take():
            await self._write(batch, attempts=20)
