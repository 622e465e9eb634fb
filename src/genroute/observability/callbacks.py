"""Callbacks: user code told about every finished call, off the request path.

A callback is any object with some of these methods (sync or async), or a plain function
taking a `CallRecord` (called for every event):

    class MyCallback(genroute.observability.Callback):
        async def on_success(self, record): ...      # a call completed
        async def on_failure(self, record): ...      # a call failed
        async def on_stream_end(self, record): ...   # a stream ended; default: one of the two

Each callback has its own bounded queue and worker task. The request only enqueues (never
waits); when a queue is full the event is dropped, counted (`genroute_callback_events_
dropped_total`) and logged. A callback that raises or runs past `callback_timeout` is
logged and counted; sync callbacks run in a thread. Queues are drained on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from genroute.observability.records import CallRecord
from genroute.tasks import raise_if_cancelled, stop

__all__ = [
    "DROP_LOG_INTERVAL",
    "BatchCallback",
    "Callback",
    "Dispatcher",
    "Sink",
    "deliver",
    "load_object",
]

log = logging.getLogger("genroute.observability")
DROP_LOG_INTERVAL = 10.0


class Callback:
    """Base class for callbacks; override what you need. Methods may be sync or async."""

    async def on_success(self, record: CallRecord) -> None:
        """A call completed."""

    async def on_failure(self, record: CallRecord) -> None:
        """A call failed (or a stream was cut off: `record.status_code == 499`)."""

    async def on_stream_end(self, record: CallRecord) -> None:
        """A stream ended, however it ended; by default `on_success` or `on_failure`."""
        await (self.on_success(record) if record.success else self.on_failure(record))

    async def aclose(self) -> None:
        """Release resources at shutdown (after the last event)."""


class BatchCallback(Protocol):
    """A callback that takes records in batches (the built-in file and webhook sinks)."""

    batch_size: int
    flush_interval: float

    async def handle_batch(self, records: list[CallRecord]) -> None: ...

    async def aclose(self) -> None: ...


def load_object(path: str) -> Any:
    """The object named by `module:attr.attr`; ValueError saying what is wrong."""
    module_name, _, attr = path.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"callback {path!r}: cannot import {module_name!r}: {exc}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"callback {path!r}: {module_name} has no {attr!r}") from None
    if inspect.isclass(obj):
        obj = obj()
    if not callable(obj) and not any(
        hasattr(obj, m) for m in ("on_success", "on_failure", "on_stream_end")
    ):
        raise ValueError(
            f"callback {path!r} is neither callable nor has on_success/on_failure/on_stream_end"
        )
    return obj


async def _call(fn: Callable[..., Any], record: CallRecord) -> None:
    if inspect.iscoroutinefunction(fn):
        await fn(record)
        return
    result = await asyncio.to_thread(fn, record)
    if inspect.isawaitable(result):
        await result


async def deliver(target: Any, record: CallRecord) -> None:
    """Call the right method of a callback object (or the function) for one record."""
    if not any(hasattr(target, m) for m in ("on_success", "on_failure", "on_stream_end")):
        await _call(target, record)
        return
    method = None
    if record.stream:
        method = getattr(target, "on_stream_end", None)
    if method is None:
        method = getattr(target, "on_success" if record.success else "on_failure", None)
    if method is not None:
        await _call(method, record)


class Sink:
    """One callback with its bounded queue and worker task."""

    def __init__(
        self,
        name: str,
        target: Any,
        *,
        events: str = "all",
        queue_size: int = 1000,
        timeout: float = 30.0,
        on_drop: Callable[[str], None] | None = None,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.name = name
        self.target = target
        self.events = events
        self.queue_size = queue_size
        self.timeout = timeout
        self.dropped = 0
        self.errors = 0
        self._on_drop = on_drop
        self._on_error = on_error
        self._queue: asyncio.Queue[CallRecord] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_drop_log = 0.0
        self._batch = hasattr(target, "handle_batch")

    def wants(self, record: CallRecord) -> bool:
        """Whether this sink subscribes to the record's kind of event."""
        if self.events == "all":
            return True
        return record.success == (self.events == "success")

    def emit(self, record: CallRecord) -> None:
        """Enqueue without waiting; drop (and count) when the queue is full."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._start(loop)
        assert self._queue is not None
        try:
            self._queue.put_nowait(record)
        except asyncio.QueueFull:
            self._dropped()

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue = asyncio.Queue(self.queue_size)
        self._worker = loop.create_task(
            self._run(self._queue), name=f"genroute-callback-{self.name}"
        )

    def _dropped(self) -> None:
        self.dropped += 1
        if self._on_drop is not None:
            self._on_drop(self.name)
        now = time.monotonic()
        if now - self._last_drop_log >= DROP_LOG_INTERVAL:
            self._last_drop_log = now
            log.warning(
                "callback %s is not keeping up: its queue of %d is full; %d events dropped so far",
                self.name,
                self.queue_size,
                self.dropped,
            )

    def _failed(self, what: str) -> None:
        self.errors += 1
        if self._on_error is not None:
            self._on_error(self.name)
        log.warning("callback %s failed: %s", self.name, what)

    async def _run(self, queue: asyncio.Queue[CallRecord]) -> None:
        while True:
            first = await queue.get()
            batch = [first]
            if self._batch:
                await self._fill(queue, batch)
            try:
                async with asyncio.timeout(self.timeout):
                    if self._batch:
                        await self.target.handle_batch(batch)
                    else:
                        await deliver(self.target, first)
            except TimeoutError:
                self._failed(f"took longer than {self.timeout:g}s")
            except Exception as exc:
                raise_if_cancelled(exc)
                self._failed(f"{type(exc).__name__}: {exc}")
            finally:
                for _ in batch:
                    queue.task_done()

    async def _fill(self, queue: asyncio.Queue[CallRecord], batch: list[CallRecord]) -> None:
        size: int = self.target.batch_size
        deadline = time.monotonic() + float(self.target.flush_interval)
        while len(batch) < size:
            if not queue.empty():
                batch.append(queue.get_nowait())
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._closing:
                return
            try:
                async with asyncio.timeout(remaining):
                    batch.append(await queue.get())
            except TimeoutError:
                return

    _closing = False

    async def aclose(self, drain_seconds: float = 10.0) -> None:
        """Deliver what is queued (for up to `drain_seconds`), then stop and close the callback."""
        self._closing = True
        queue, worker = self._queue, self._worker
        if queue is not None and worker is not None and not worker.done():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(drain_seconds):
                    await queue.join()
            await stop(worker)
        if queue is not None and queue.qsize():
            log.warning(
                "callback %s: %d events not delivered at shutdown", self.name, queue.qsize()
            )
        close = getattr(self.target, "aclose", None)
        if close is not None:
            try:
                await _call_noarg(close)
            except Exception as exc:
                log.warning("callback %s failed to close: %s", self.name, exc)


async def _call_noarg(fn: Callable[[], Any]) -> None:
    result = fn()
    if inspect.isawaitable(result):
        await result


class Dispatcher:
    """Fans each record out to every subscribed sink."""

    def __init__(self, sinks: Sequence[Sink]) -> None:
        self.sinks = list(sinks)

    def emit(self, record: CallRecord) -> None:
        """Enqueue the record for every sink that wants it; never blocks, never raises."""
        for sink in self.sinks:
            if sink.wants(record):
                try:
                    sink.emit(record)
                except Exception:
                    log.exception("callback %s: could not enqueue", sink.name)

    async def aclose(self, drain_seconds: float = 10.0) -> None:
        """Flush and close every sink."""
        await asyncio.gather(*(sink.aclose(drain_seconds) for sink in self.sinks))
