"""A deadline for each of many short waits, at the cost of two attribute writes per wait.

A stream waits for each upstream chunk (at most `stream_timeout` between two) and for the
client to take each chunk it is sent (at most `response_write_timeout`). An
`asyncio.timeout` per wait schedules and cancels a timer every time, several microseconds a
chunk. A `Watchdog` keeps one timer for all the waits of one task: `arm(seconds)` notes
when the current wait must end, `disarm()` that it ended; the timer, when it fires, cancels
the task only if a wait is still running past its end, and otherwise sets itself for the
current wait's end (or not at all while nothing is awaited).

    watchdog = Watchdog()
    try:
        watchdog.arm(30.0)
        try:
            chunk = await anext(chunks)
        finally:
            watchdog.disarm()
    except asyncio.CancelledError:
        if watchdog.expired():  # our cancellation, taken back: the wait took too long
            raise TimeoutError from None
        raise
    finally:
        watchdog.close()
"""

from __future__ import annotations

import asyncio

__all__ = ["Watchdog"]

_EARLY = 0.001  # libuv keeps its timers in milliseconds


class Watchdog:
    """Cancels the current task when a wait it was told of (`arm`) runs past its end."""

    __slots__ = ("_fired", "_handle", "_loop", "_task", "_uncancelled", "_until")

    def __init__(self) -> None:
        task = asyncio.current_task()
        assert task is not None, "a Watchdog watches the task it is made in"
        self._task = task
        self._loop = asyncio.get_running_loop()
        self._handle: asyncio.TimerHandle | None = None
        self._until: float | None = None  # loop time the current wait must end by
        self._fired = False
        self._uncancelled = False

    def arm(self, seconds: float) -> None:
        """A wait begins: it must end within `seconds`."""
        until = self._loop.time() + seconds
        self._until = until
        handle = self._handle
        if handle is None:
            self._handle = self._loop.call_at(until, self._check)
        elif handle.when() > until:  # this wait must end sooner than the timer is set for
            handle.cancel()
            self._handle = self._loop.call_at(until, self._check)

    def disarm(self) -> None:
        """The wait ended (in time, or not)."""
        self._until = None

    def _check(self) -> None:
        self._handle = None
        until = self._until
        if until is None or self._fired:
            return  # nothing awaited: no timer until the next `arm`
        if self._loop.time() + _EARLY >= until:  # a timer may fire a little early
            self._fired = True
            self._task.cancel()
        else:
            self._handle = self._loop.call_at(until, self._check)

    def expired(self) -> bool:
        """Whether a wait ran past its end, so that the task's cancellation was this
        watchdog's; the cancellation is taken back (`Task.uncancel`) the first time."""
        if self._fired and not self._uncancelled:
            self._uncancelled = True
            self._task.uncancel()
        return self._fired

    def close(self) -> None:
        """Stop watching (idempotent)."""
        self._until = None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
