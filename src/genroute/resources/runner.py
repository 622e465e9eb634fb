"""The batch runner: runs batches in the background, through the whole pipeline.

Each instance runs one `BatchRunner`. It takes the lease of an open batch
(`BatchRepo.claim`: atomic, so two instances never run one batch), renews it while it
works, and runs the batch's pending requests `batches.concurrency` at a time, each as a
generateContent call of the key, team and end user that made the batch: governed (model
lists, budgets, rate limits: a request over them fails with that error) and priced like
any call, with its own spend-ledger row. Every answer (or error) is written as it comes, so
an instance that stops leaves only what was in flight: on a graceful stop it finishes those
first and hands the lease back; if it dies, the next holder fails them rather than run them
twice. A cancelled batch starts no more requests. When every request has an answer the
batch has SUCCEEDED (its failed requests carry their errors); for a file of requests the
answers are written to a JSONL file of the Files API (`files/batch-{id}`), owned as the batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import orjson

from genroute.call import Call, ModelAPI, Operation
from genroute.errors import GenrouteError
from genroute.resources.batches import BatchService, caller_of
from genroute.resources.files import NewFile
from genroute.resources.owners import Access
from genroute.store.batches import BatchItem, BatchRow
from genroute.wire import GenerateContentRequest, dump_json

__all__ = ["BatchRunner"]

log = logging.getLogger("genroute.resources.batches")

INTERRUPTED = {
    "code": 500,
    "status": "ABORTED",
    "message": "the instance running this request stopped before it answered; it is not run "
    "again, so that it is never run twice",
}
STOP_GRACE = 10.0  # seconds a stopping instance waits for its requests in flight


class BatchRunner:
    """Runs batches; see the module docstring. `api` is the pipeline (set once built)."""

    def __init__(self, service: BatchService) -> None:
        self.service = service
        self.settings = service.settings
        self.api: ModelAPI | None = None
        self.instance = secrets.token_hex(8)
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        service.wake = self._wake.set

    def start(self) -> None:
        """Start the background loop (once the pipeline is set)."""
        if self._task is None and self.api is not None and self.settings.enabled:
            self._task = asyncio.create_task(self._loop(), name="genroute-batches")

    async def aclose(self) -> None:
        """Stop taking requests, let those in flight finish (a while), hand leases back."""
        self._stopping = True
        self._wake.set()
        if self._task is None:
            return
        try:
            async with asyncio.timeout(STOP_GRACE):
                await asyncio.shield(self._task)
        except (TimeoutError, asyncio.CancelledError):
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        failures = 0
        while not self._stopping:
            now = self.service.now()
            try:
                until = now + timedelta(seconds=self.settings.lease_seconds)
                batch = await self.service.repo.claim(self.instance, now, until)
                failures = 0
            except Exception as exc:  # the database is down: look again later
                failures += 1
                if failures == 1:
                    log.warning("looking for batches to run failed: %s", exc)
                batch = None
            if batch is None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.settings.poll_interval):
                        await self._wake.wait()
                continue
            try:
                await self._run(batch)
            except Exception:
                log.exception("batch %s: running it failed; another look soon", batch.batch_id)

    async def _renew(self, batch: BatchRow, state: dict[str, bool]) -> None:
        """Keep the lease while the batch runs; note a cancel or a lost lease."""
        every = self.settings.lease_seconds / 3
        repo = self.service.repo
        while True:
            await asyncio.sleep(every)
            until = self.service.now() + timedelta(seconds=self.settings.lease_seconds)
            try:
                found = await repo.renew(batch.batch_id, self.instance, until)
            except Exception as exc:
                log.warning("batch %s: renewing its lease failed: %s", batch.batch_id, exc)
                continue
            if found is None:
                state["lost"] = True
                return
            if found.cancel_requested:
                state["cancel"] = True

    async def _run(self, batch: BatchRow) -> None:
        repo = self.service.repo
        for item in await repo.items(batch.batch_id, ("RUNNING",)):
            await repo.set_item(batch.batch_id, item.idx, state="FAILED", error=INTERRUPTED)
        pending = await repo.items(batch.batch_id, ("PENDING",))
        state = {"cancel": batch.cancel_requested, "lost": False}
        renewer = asyncio.create_task(self._renew(batch, state))
        gate = asyncio.Semaphore(self.settings.concurrency)

        async def one(item: BatchItem) -> None:
            async with gate:
                if self._stopping or state["cancel"] or state["lost"]:
                    return
                await self._request(batch, item)

        try:
            await asyncio.gather(*(one(item) for item in pending))
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
        if state["lost"]:
            return
        if self._stopping and not state["cancel"]:
            await repo.set(batch.batch_id, lease_owner=None, lease_until=None)
            return
        await self._finish(batch, cancelled=state["cancel"])

    async def _request(self, batch: BatchRow, item: BatchItem) -> None:
        repo = self.service.repo
        assert self.api is not None
        await repo.set_item(batch.batch_id, item.idx, state="RUNNING")
        call = Call(
            Operation.GENERATE,
            batch.model,
            caller_of(batch),
            request_id=f"batch-{batch.batch_id}-{item.idx}",
        )
        try:
            request = GenerateContentRequest.model_validate(item.request)
            response = await self.api.generate(call, request)
        except GenrouteError as exc:
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
