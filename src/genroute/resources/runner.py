"""The batch runner: runs batches in the background, through the whole pipeline.

Each instance runs one `BatchRunner`. It takes the lease of an open batch
(`BatchRepo.claim`: atomic, so two instances never run one batch), renews it while it
works, and runs the batch's pending requests, each as a generateContent call of the key,
team and end user that made the batch: governed (model lists, budgets, rate limits) and
priced like any call, with its own spend-ledger row carrying the batch's name.

It yields to interactive traffic, by two rules that are simple to measure:

- **Bounded concurrency that shrinks while clients wait.** At most `batches.concurrency`
  requests of batches are in flight on an instance, and at most `batches.busy_concurrency`
  (1) while any interactive call (a client's generateContent or stream, counted by the
  resources layer in `Traffic`) is in flight on it. A request already started finishes; no
  new one starts above the limit.
- **Back-off when rate limited.** A request refused with a 429 or 503 that says when to
  retry (a key's or team's rpm/tpm/parallel limit, every deployment of the group rate
  limited or cooling down, an upstream's 429 with retry-after) is put back, and no request
  of any batch starts on the instance until that time has passed (at most
  `batches.max_backoff_seconds`); the same request is retried up to
  `batches.rate_limit_retries` times, then failed with the 429. A 429 that gives no time (a
  budget spent) fails the request at once.

Every answer (or error) is written as it comes, so an instance that stops leaves only what
was in flight: on a graceful stop it finishes those first and hands the lease back; if it
dies, the next holder fails them rather than run them twice. A cancelled batch starts no
more requests (a cancel on this instance is seen at once, one on another instance at the
next lease renewal or cancel check, `CANCEL_CHECK` seconds); those in flight finish and
keep their answers, then the batch is CANCELLED. When every request has an answer the
batch has SUCCEEDED (its failed requests carry their errors); for a file of requests the
answers are written to a JSONL file of the Files API (`files/batch-{id}`), owned as the batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import orjson

from genroute.call import Call, ModelAPI, Operation, ResourceRecord
from genroute.errors import GenrouteError
from genroute.resources.batches import ENDED, BatchService, caller_of
from genroute.resources.files import NewFile
from genroute.resources.owners import Access
from genroute.store.batches import BatchItem, BatchRow
from genroute.tasks import raise_if_cancelled, stop
from genroute.wire import GenerateContentRequest, dump_json

__all__ = ["CANCEL_CHECK", "BatchRunner", "Traffic"]

log = logging.getLogger("genroute.resources.batches")

INTERRUPTED = {
    "code": 500,
    "status": "ABORTED",
    "message": "the instance running this request stopped before it answered; it is not run "
    "again, so that it is never run twice",
}
STOP_GRACE = 10.0  # seconds a stopping instance waits for its requests in flight
CANCEL_CHECK = 1.0  # seconds between two looks at a running batch's cancel flag
_WAKE_EVERY = 0.25  # seconds a waiting runner looks again even if nothing told it to


class Traffic:
    """The interactive calls in flight on this instance (the resources layer counts them),
    and a wake-up for a batch runner waiting for them to end."""

    __slots__ = ("_quiet", "in_flight")

    def __init__(self) -> None:
        self.in_flight = 0
        self._quiet: asyncio.Event | None = None

    def enter(self) -> None:
        """An interactive call started."""
        self.in_flight += 1

    def leave(self) -> None:
        """An interactive call ended."""
        self.in_flight -= 1
        if self.in_flight == 0 and self._quiet is not None:
            self._quiet.set()

    async def quiet(self) -> None:
        """Wait until no interactive call is in flight."""
        if self.in_flight == 0:
            return
        if self._quiet is None:
            self._quiet = asyncio.Event()
        self._quiet.clear()
        await self._quiet.wait()


class _Run:
    """The state of one batch being run: cancelled, lease lost, when the flag was read."""

    __slots__ = ("batch", "cancel", "checked", "lost", "retries")

    def __init__(self, batch: BatchRow) -> None:
        self.batch = batch
        self.cancel = batch.cancel_requested
        self.lost = False
        self.checked = time.monotonic()
        self.retries: dict[int, int] = {}  # rate-limited tries per request index


class BatchRunner:
    """Runs batches; see the module docstring. `api` is the pipeline (set once built)."""

    def __init__(self, service: BatchService, traffic: Traffic | None = None) -> None:
        self.service = service
        self.settings = service.settings
        self.traffic = traffic or Traffic()
        self.api: ModelAPI | None = None
        self.instance = secrets.token_hex(8)
        self.in_flight = 0  # requests of batches in flight on this instance
        self.resume_at = 0.0  # monotonic time before which no request starts (back-off)
        self._wake = asyncio.Event()
        self._slot_free = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._runs: dict[str, _Run] = {}
        service.wake = self._wake.set
        service.on_cancel = self._cancelled

    def start(self) -> None:
        """Start the background loop (once the pipeline is set)."""
        if self._task is None and self.api is not None and self.settings.enabled:
            self._task = asyncio.create_task(self._loop(), name="genroute-batches")

    async def aclose(self) -> None:
        """Stop taking requests, let those in flight finish (a while), hand leases back."""
        self._stopping = True
        self._wake.set()
        self._slot_free.set()
        if self._task is None:
            return
        try:
            async with asyncio.timeout(STOP_GRACE):
                await asyncio.shield(self._task)
        except (TimeoutError, asyncio.CancelledError):
            await stop(self._task)

    def _cancelled(self, batch_id: str) -> None:
        """A cancel of a batch reached this instance: if it runs it, start nothing more."""
        run = self._runs.get(batch_id)
        if run is not None:
            run.cancel = True
            self._slot_free.set()

    def limit(self) -> int:
        """How many batch requests may be in flight now: fewer while clients wait."""
        if self.traffic.in_flight > 0:
            return self.settings.busy_concurrency
        return self.settings.concurrency

    async def _loop(self) -> None:
        failures = 0
        while not self._stopping:
            # Cleared before looking, not after: a wake while the claim is in flight (a new
            # batch, or aclose) then ends the wait below at once instead of a poll later.
            self._wake.clear()
            now = self.service.now()
            try:
                until = now + timedelta(seconds=self.settings.lease_seconds)
                batch = await self.service.repo.claim(self.instance, now, until)
                failures = 0
            except Exception as exc:  # the database is down: look again later
                raise_if_cancelled(exc)
                failures += 1
                if failures == 1:
                    log.warning("looking for batches to run failed: %s", exc)
                batch = None
            if batch is None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.settings.poll_interval):
                        await self._wake.wait()
                continue
            try:
                await self._run(batch)
            except Exception:
                log.exception("batch %s: running it failed; another look soon", batch.batch_id)

    async def _renew(self, run: _Run) -> None:
        """Keep the lease while the batch runs; note a cancel or a lost lease."""
        every = self.settings.lease_seconds / 3
        repo = self.service.repo
        batch_id = run.batch.batch_id
        while True:
            await asyncio.sleep(every)
            until = self.service.now() + timedelta(seconds=self.settings.lease_seconds)
            try:
                found = await repo.renew(batch_id, self.instance, until)
            except Exception as exc:
                raise_if_cancelled(exc)
                log.warning("batch %s: renewing its lease failed: %s", batch_id, exc)
                continue
            if found is None:
                run.lost = True
                return
            if found.cancel_requested:
                run.cancel = True

    async def _stopped(self, run: _Run) -> bool:
        """Whether the batch must start no more requests (stopping, cancelled, lease lost);
        reads the cancel flag every CANCEL_CHECK seconds (a cancel sent to another
        instance)."""
        if self._stopping or run.cancel or run.lost:
            return True
        if time.monotonic() - run.checked >= CANCEL_CHECK:
            run.checked = time.monotonic()
            found = await self.service.repo.get(run.batch.batch_id)
            run.cancel = found is None or found.cancel_requested or found.state in ENDED
        return run.cancel

    async def _slot(self, run: _Run) -> bool:
        """Wait until one more request may start (under the limit, past any back-off);
        False if the batch must stop instead."""
        while True:
            if await self._stopped(run):
                return False
            wait = self.resume_at - time.monotonic()
            if wait > 0:
                self._slot_free.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(wait, _WAKE_EVERY)):
                        await self._slot_free.wait()
                continue
            if self.in_flight < self.limit():
                self.in_flight += 1
                return True
            self._slot_free.clear()
            waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._slot_free.wait())]
            if self.traffic.in_flight > 0:
                waits.append(asyncio.ensure_future(self.traffic.quiet()))
            _, pending = await asyncio.wait(
                waits, timeout=_WAKE_EVERY, return_when=asyncio.FIRST_COMPLETED
            )
            for task in pending:
                task.cancel()

    def _done(self) -> None:
        self.in_flight -= 1
        self._slot_free.set()

    async def _run(self, batch: BatchRow) -> None:
        repo = self.service.repo
        for item in await repo.items(batch.batch_id, ("RUNNING",)):
            await repo.set_item(batch.batch_id, item.idx, state="FAILED", error=INTERRUPTED)
        run = _Run(batch)
        self._runs[batch.batch_id] = run
        renewer = asyncio.create_task(self._renew(run))
        try:
            while not await self._stopped(run):
                pending = await repo.items(batch.batch_id, ("PENDING",))
                if not pending:
                    break
                await self._round(run, pending)
        finally:
            self._runs.pop(batch.batch_id, None)
            await stop(renewer)
        if run.lost:
            return
        if self._stopping and not run.cancel:
            await repo.set(batch.batch_id, lease_owner=None, lease_until=None)
            return
        await self._finish(batch, cancelled=run.cancel)

    async def _round(self, run: _Run, pending: list[BatchItem]) -> None:
        """Start the pending requests one by one as slots free up; wait for all started."""
        started: list[asyncio.Task[None]] = []
        try:
            for item in pending:
                if not await self._slot(run):
                    break
                started.append(asyncio.create_task(self._one(run, item)))
        finally:
            if started:
                await asyncio.gather(*started, return_exceptions=True)

    async def _one(self, run: _Run, item: BatchItem) -> None:
        try:
            await self._request(run, item)
        except Exception:  # the database is down, say: the request is looked at again
            log.exception("batch %s: request %d failed", run.batch.batch_id, item.idx)
            self.resume_at = max(self.resume_at, time.monotonic() + _WAKE_EVERY * 4)
        finally:
            self._done()

    def _back_off(self, run: _Run, item: BatchItem, exc: GenrouteError) -> bool:
        """Whether a refused request is put back for later (rate limited, with a time to
        retry, and tries left); if so, no request starts before that time."""
        if exc.code not in (429, 503) or exc.retry_after is None:
            return False
        tries = run.retries.get(item.idx, 0) + 1
        if tries > self.settings.rate_limit_retries:
            return False
        run.retries[item.idx] = tries
        wait = min(max(exc.retry_after, 0.0), self.settings.max_backoff_seconds)
        self.resume_at = max(self.resume_at, time.monotonic() + wait)
        log.info(
            "batch %s: request %d rate limited (%s); no batch request starts for %.2f s",
            run.batch.batch_id,
            item.idx,
            exc.message,
            wait,
        )
        return True

    async def _request(self, run: _Run, item: BatchItem) -> None:
        repo = self.service.repo
        batch = run.batch
        assert self.api is not None
        await repo.set_item(batch.batch_id, item.idx, state="RUNNING")
        call = Call(
            Operation.GENERATE,
            batch.model,
            caller_of(batch),
            request_id=f"batch-{batch.batch_id}-{item.idx}",
            resources=ResourceRecord(batch=f"batches/{batch.batch_id}"),
        )
        try:
            request = GenerateContentRequest.model_validate(item.request)
            response = await self.api.generate(call, request)
        except GenrouteError as exc:
            if self._back_off(run, item, exc):
                await repo.set_item(batch.batch_id, item.idx, state="PENDING")
                return
            error = exc.to_body()["error"]
            await repo.set_item(batch.batch_id, item.idx, state="FAILED", error=error)
            return
        answer = orjson.loads(dump_json(response))
        await repo.set_item(batch.batch_id, item.idx, state="DONE", response=answer)

    async def _finish(self, batch: BatchRow, *, cancelled: bool) -> None:
        repo = self.service.repo
        output = None
        if batch.input_file is not None:
            output = await self._write_output(batch)
        now = self.service.now()
        await repo.set(
            batch.batch_id,
            state="BATCH_STATE_CANCELLED" if cancelled else "BATCH_STATE_SUCCEEDED",
            output_file=output,
            updated_at=now,
            ended_at=now,
            lease_owner=None,
            lease_until=None,
        )

    async def _write_output(self, batch: BatchRow) -> str:
        """The answers as a JSONL file of the batch's owner: one line per request, in order,
        `{"key", "response"}` or `{"key", "error"}`."""
        files = self.service.files
        items = await self.service.repo.items(batch.batch_id, ("DONE", "FAILED"))

        async def lines() -> AsyncIterator[bytes]:
            for item in items:
                line: dict[str, Any] = {"key": item.key} if item.key is not None else {}
                if item.state == "DONE":
                    line["response"] = item.response
                else:
                    line["error"] = item.error
                yield orjson.dumps(line) + b"\n"

        new = NewFile(
            "application/jsonl",
            None,
            f"batch {batch.batch_id} responses",
            f"batch-{batch.batch_id}",
        )
        owner = Access(batch.owner)
        row = await files.start(owner, batch.caller.get("key_hash"), new, checked=False)
        await files.receive(row, 0, lines(), finalize=True)
        return row.file_id
