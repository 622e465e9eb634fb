"""The spend ledger writer: one row per call, written off the request path, in batches, and
never lost or blocked by one bad row or a database outage.

`submit` writes the record to the local journal (`genroute.store.journal`) and queues it in
memory. A background task writes what has queued every `flush_interval` seconds (sooner
when a batch fills): the rows and the spend totals of their keys, teams and end users, in
one transaction, each try bounded by `timeout`.

- A batch the database refuses because of some of its rows (a data or constraint error)
  is bisected under savepoints in one transaction (`write_batch`): the good rows are
  written, each bad row is set aside in the dead-letter file (`dead_lettered`) and written
  again stripped of its descriptive text, so that its spend still counts (`clean_row`
  already makes nearly every row fit; this is for what it cannot foresee, such as a
  trigger or a database encoding).
- A batch that fails because of the database (unreachable, timed out, locked, a missing
  table) turns the journal into a spool: the rows in memory are dropped (they are on
  disk), new rows go only to disk, and the writer retries with backoff (0.1 s to 5 s);
  when a try succeeds it replays the spooled segments and goes back to memory. Without a
  journal the rows wait in memory (`max_queue`, then callers wait) and are retried.
- It adopts and replays segments left by processes that are gone (`Journal.orphans`).
- `aclose` writes what is queued (one bounded try if the database is down), and leaves
  the rest in the journal for the next start or another instance.

`on_commit(totals)` is told the spend of this instance's rows once they are in the
database (the governance cache moves it from "pending" onto the rows it caches);
`on_state(up, error)` whether the database took the last write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from sqlalchemy import text

from genroute.store.journal import DeadLetters, Journal, Orphan, Segment, short_error
from genroute.store.ledger import Row, SpendRecord, Totals, driver_row, write_batch
from genroute.store.repo import Store

__all__ = ["DEFAULT_BATCH", "DEFAULT_QUEUE", "LedgerStats", "LedgerWriter"]

log = logging.getLogger("genroute.ledger")

DEFAULT_QUEUE = 50_000
DEFAULT_BATCH = 1_000
MAX_BACKOFF = 5.0
# A queued record, its journal segment, and its row as the driver takes it (made when it
# is queued, so that a flush on the event loop only joins rows), if it could be made.
Entry = tuple[SpendRecord, Segment | None, Row | None]


@dataclass(slots=True)
class LedgerStats:
    """Counters since start (see `LedgerWriter.metrics` for their exported names)."""

    written: int = 0  # rows inserted
    cleaned: int = 0  # rows with a field clipped or cleaned to fit its column
    dead_lettered: int = 0  # rows set aside in the dead-letter file
    uncounted: int = 0  # of those, rows whose spend could not be written either
    spooled: int = 0  # rows that went to the spool while the database was down
    replayed: int = 0  # rows read back from a spool or an orphaned journal
    failures: int = 0  # failed writes (a batch or a replay)
    journal_errors: int = 0  # records the journal could not take (kept in memory)


class LedgerWriter:
    """Batches SpendRecords onto the database from a background task (module docstring)."""

    def __init__(
        self,
        store: Store,
        *,
        flush_interval: float = 1.0,
        max_queue: int = DEFAULT_QUEUE,
        batch_size: int = DEFAULT_BATCH,
        on_commit: Callable[[Totals], None] | None = None,
        on_state: Callable[[bool, BaseException | None], None] | None = None,
        journal: Journal | None = None,
        dead_letters: DeadLetters | None = None,
        timeout: float = 15.0,
    ) -> None:
        self.store = store
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        self.max_queue = max_queue
        self.on_commit = on_commit
        self.on_state = on_state
        self.journal = journal
        self.dead_letters = dead_letters or DeadLetters(journal.directory if journal else None)
        self.timeout = timeout
        self.stats = LedgerStats()
        self.queue: deque[Entry] = deque()
        self.spooling = False  # the database is down: the journal is the queue
        self.last_error: str | None = None
        self.failing_since: float | None = None
        self._retry_at = 0.0
        self._delay = 0.1
        self._space = asyncio.Condition()
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._closing = False
        self._dialect = store.engine.dialect

    # -- state ---------------------------------------------------------------------------

    @property
    def written(self) -> int:
        """Rows inserted so far."""
        return self.stats.written

    @property
    def writing(self) -> bool:
        """Whether the last write to the database succeeded (False while spooling or
        retrying a failed batch)."""
        return self.failing_since is None

    @property
    def full(self) -> bool:
        """Whether a new row could not be kept without waiting: the journal is over its
        size bound (or, without one, the memory queue is full)."""
        if self.journal is not None:
            return self.journal.full
        return len(self.queue) >= self.max_queue

    def metrics(self) -> dict[str, float]:
        """Counters and gauges, by their exported names."""
        s = self.stats
        journal = self.journal
        return {
            "genroute_ledger_rows_written_total": s.written,
            "genroute_ledger_rows_cleaned_total": s.cleaned,
            "genroute_ledger_rows_dead_lettered_total": s.dead_lettered,
            "genroute_ledger_rows_uncounted_total": s.uncounted,
            "genroute_ledger_rows_spooled_total": s.spooled,
            "genroute_ledger_rows_replayed_total": s.replayed,
            "genroute_ledger_write_failures_total": s.failures,
            "genroute_ledger_journal_errors_total": s.journal_errors,
            "genroute_ledger_queue_rows": len(self.queue),
            "genroute_ledger_spool_rows": journal.backlog if journal is not None else 0,
            "genroute_ledger_spool_bytes": journal.size if journal is not None else 0,
            "genroute_ledger_writing": 1.0 if self.writing else 0.0,
        }

    def _succeeded(self) -> None:
        if self.failing_since is not None:
            log.warning("spend ledger: the database takes writes again")
        self.failing_since = None
        self.last_error = None
        self._delay = 0.1
        if self.on_state is not None:
            self.on_state(True, None)

    def _failed(self, exc: BaseException, what: str) -> None:
        self.stats.failures += 1
        self.last_error = short_error(exc)
        if self.failing_since is None:
            self.failing_since = time.monotonic()
            log.error(
                "spend ledger: %s failed (%s); %s", what, self.last_error,
                "keeping rows in the local spool until the database is back"
                if self.journal is not None else "retrying; rows wait in memory",
            )  # fmt: skip
        else:
            log.debug("spend ledger: %s failed again: %s", what, self.last_error)
        self._retry_at = time.monotonic() + self._delay
        self._delay = min(self._delay * 2, MAX_BACKOFF)
        if self.on_state is not None:
            self.on_state(False, exc)

    # -- the request path ------------------------------------------------------------------

    def start(self) -> None:
        """Start the background flusher (idempotent)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="genroute-ledger")

    async def submit(self, record: SpendRecord) -> None:
        """Journal a record and queue it. It waits only when the record could not be
        journaled and the memory queue is full; a journaled record that finds the
        database down, or the memory queue full, stays on disk for the replay."""
        if self._task is None and not self._closing:
            self.start()
        segment = self._journal(record)
        if segment is not None and (self.spooling or len(self.queue) >= self.max_queue):
            segment.replay = True
            segment.carry.add(Totals.of([record]))
            self.stats.spooled += 1
            return
        if segment is None:
            async with self._space:
                await self._space.wait_for(lambda: len(self.queue) < self.max_queue)
        self.queue.append((record, segment, self._row(record)))
        if len(self.queue) >= self.batch_size:
            self._wake.set()

    def _row(self, record: SpendRecord) -> Row | None:
        try:
            return driver_row(self._dialect, record)
        except Exception:  # made again at the flush, where a row error is set aside
            return None

    def _journal(self, record: SpendRecord) -> Segment | None:
        if self.journal is None:
            return None
        try:
            return self.journal.append(record)
        except Exception as exc:  # a full disk, a removed directory: memory still has it
            self.stats.journal_errors += 1
            if self.stats.journal_errors == 1 or self.stats.journal_errors % 1000 == 0:
                log.error(
                    "spend ledger: the journal cannot take rows (%s); keeping them in memory", exc
                )
            return None

    # -- writing -------------------------------------------------------------------------------

    def _take(self, limit: int | None = None) -> list[Entry]:
        """Up to `batch_size` entries (and at most `limit`) from the front of the queue."""
        size = self.batch_size if limit is None else min(limit, self.batch_size)
        batch: list[Entry] = []
        while self.queue and len(batch) < size:
            batch.append(self.queue.popleft())
        return batch

    async def _notify_space(self) -> None:
        async with self._space:
            self._space.notify_all()

    async def _write(self, records: list[SpendRecord], rows: list[Row] | None = None) -> None:
        """Write records (rows the database refuses are set aside); raises only for a
        failure of the database itself."""
        async with asyncio.timeout(self.timeout):
            written = await write_batch(self.store, records, rows)
        self.stats.written += written.inserted
        self.stats.cleaned += written.cleaned
        for refused in written.refused:
            self.stats.dead_lettered += 1
            self.stats.uncounted += not refused.counted
            self.dead_letters.add(refused.record, refused.error, counted=refused.counted)
            log.error(
                "spend ledger: a row the database refuses was set aside in the dead-letter "
                "file (request %s: %s)%s", refused.record.request_id, short_error(refused.error),
                "" if refused.counted else "; its spend could not be written either",
            )  # fmt: skip

    async def _write_entries(self, batch: list[Entry]) -> bool:
        """Write a batch from memory; False (the batch spooled or put back) on a failure of
        the database."""
        records = [record for record, _, _ in batch]
        made = [row for _, _, row in batch if row is not None]
        try:
            await self._write(records, made if len(made) == len(records) else None)
        except Exception as exc:
            self._failed(exc, f"writing {len(records)} rows")
            self._enter_spool(batch)
            return False
        self._succeeded()
        if self.journal is not None:
            for segment, count in _runs(segment for _, segment, _ in batch):
                self.journal.committed(segment, count)
        if self.on_commit is not None:
            self.on_commit(Totals.of(records))
        await self._notify_space()
        return True

    def _enter_spool(self, failed: list[Entry]) -> None:
        """After a failure: rows on disk leave memory (they will be replayed from their
        segments); rows the journal could not take go back to the front of the queue."""
        entries = failed + list(self.queue)
        self.queue.clear()
        kept: list[Entry] = []
        for record, segment, row in entries:
            if segment is None:
                kept.append((record, segment, row))
            else:
                segment.carry.add(Totals.of([record]))
        self.queue.extend(kept)
        if self.journal is not None:
            if not self.spooling:
                self.stats.spooled += len(entries) - len(kept)
            self.journal.spool()
            self.spooling = True

    async def _replay(self, source: Segment | Orphan) -> bool:
        assert self.journal is not None
        records, torn = self.journal.read(source)
        if torn:
            log.warning("spend ledger: %d torn lines skipped in %s", torn, source.path.name)
        try:
            for start in range(0, len(records), self.batch_size):
                await self._write(records[start : start + self.batch_size])
        except Exception as exc:
            self._failed(exc, f"replaying {source.path.name}")
            return False
        self._succeeded()
        self.stats.replayed += len(records)
        return True

    async def _probe(self) -> bool:
        """Whether the database answers at all (before replaying anything into it)."""
        try:
            async with asyncio.timeout(self.timeout), self.store.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:
            self._failed(exc, "reaching the database")
            return False
        return True

    async def _recover(self) -> bool:
        """Replay this instance's spooled segments, then orphaned ones; False while the
        database is still down."""
        journal = self.journal
        if journal is None:
            return True
        if time.monotonic() < self._retry_at:
            return not (self.spooling or journal.replayable())
        if self.spooling:
            if not await self._probe():
                return False
            self.spooling = False  # new rows go to memory (and a new segment) again
            journal.spool()
        for segment in journal.replayable():
            if not await self._replay(segment):
                self._enter_spool([])
                return False
            if self.on_commit is not None and not segment.carry.empty:
                self.on_commit(segment.carry)
            journal.finished(segment)
        orphans = journal.orphans()
        while orphans:
            orphan = orphans.pop(0)
            if not await self._replay(orphan):
                for left in (orphan, *orphans):
                    journal.abandon(left)
                self._enter_spool([])
                return False
            log.warning(
                "spend ledger: replayed the journal %s, left by a process that is gone",
                orphan.path.name,
            )
            journal.adopted(orphan)
        return True

    async def _cycle(self) -> None:
        async with self._lock:
            if not await self._recover():
                return
            if self.queue and time.monotonic() < self._retry_at:
                return
            # What is queued now, in batches; rows queued while these are written wait
            # for the next cycle (chasing them would turn a busy writer into a stream of
            # tiny transactions, each with the fixed cost of a whole one).
            pending = len(self.queue)
            while pending > 0 and (batch := self._take(pending)):
                pending -= len(batch)
                if not await self._write_entries(batch):
                    return
            if self.journal is not None:
                current = self.journal.current
                if current is not None and current.appended and (current.settled or current.replay):
                    # All its rows written: delete it; or some left memory (it was full):
                    # close it, for the next cycle to replay.
                    self.journal.rotate()
                else:
                    self.journal.collect()  # closed segments written since: deleted
                await self.journal.sync()

    async def _run(self) -> None:
        while not self._stop.is_set():
            deadline = time.monotonic() + self.flush_interval
            while len(self.queue) < self.batch_size and not self._stop.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), min(remaining, 0.05))
            try:
                await self._cycle()
            except Exception:  # never let the writer die
                log.exception("spend ledger: unexpected error in the writer")

    async def flush(self) -> None:
        """Write everything queued (and spooled) now, if the database takes it."""
        self._retry_at = 0.0
        await self._cycle()

    async def aclose(self) -> None:
        """Stop the flusher, write what is queued (one bounded try when the database is
        down), and keep whatever could not be written in the journal."""
        self._closing = True
        self._stop.set()
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self.journal is None or self.failing_since is None:  # else: the rows are on disk
            self._retry_at = 0.0
            with contextlib.suppress(Exception):
                await self._cycle()
        if self.queue:
            await self._last_tries()
        if self.journal is not None:
            self.journal.close()

    async def _last_tries(self, attempts: int = 3) -> None:
        """Rows only in memory (the journal could not take them): a few more tries. Rows
        also on disk stay there, for the next start or another instance."""
        kept = [entry for entry in self.queue if entry[1] is None]
        self.queue.clear()
        self.queue.extend(kept)
        for _ in range(attempts):
            if not self.queue:
                return
            self._retry_at = 0.0
            while batch := self._take():
                if not await self._write_entries(batch):
                    break
            if self.queue:
                await asyncio.sleep(min(self._delay, 1.0))
        lost = [record for record, _, _ in self.queue]
        for record in lost:
            self.dead_letters.add(
                record, RuntimeError("database unreachable at shutdown"), counted=False
            )
        if lost:
            log.error("spend ledger: %d rows could not be written at shutdown", len(lost))
        self.queue.clear()


def _runs(segments: Iterable[Segment | None]) -> Iterator[tuple[Segment, int]]:
    """Each journal segment with how many entries in a row belong to it (a batch's entries
    come in the order they were journaled)."""
    current: Segment | None = None
    count = 0
    for segment in segments:
        if segment is not current:
            if current is not None:
                yield current, count
            current, count = segment, 0
        count += 1
    if current is not None:
        yield current, count
