"""Stopping background tasks for sure, even when a library swallows their cancellation.

Every long-lived loop in genroute (following the cache's shared index, the invalidation
channel, migrations retried in the background, sweepers, lease renewers) catches the errors
of the service it talks to and tries again later. A cancellation is not such an error, but
a client library can turn one into one: redis-py, cancelled in the middle of a read or a
reconnect, can raise `ConnectionError` or `TimeoutError` instead of `CancelledError` (seen
with the cache's index follower, whose `aclose` then waited forever). Two defences:

- `raise_if_cancelled(exc)`, first in a loop's `except` clause: the task was asked to stop
  (`cancel_requested()`), so whatever the error says, it stops (`CancelledError`).
- `stop(task)`: cancel, wait a little, and cancel again while the task still runs, up to a
  bound; a task that never ends is logged and left, so that shutting down cannot hang.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

__all__ = ["cancel_requested", "raise_if_cancelled", "stop"]

log = logging.getLogger("genroute")


def cancel_requested() -> bool:
    """Whether the running task has been asked to stop and has not taken the request back
    (`Task.cancelling()`), whatever exception the cancellation became on its way up."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def raise_if_cancelled(exc: BaseException) -> None:
    """Raise CancelledError (from `exc`) if the running task was asked to stop: for the
    `except` clause of a loop that retries on errors."""
    if cancel_requested():
        raise asyncio.CancelledError from exc


async def stop(task: asyncio.Task[Any] | None, *, grace: float = 0.5, bound: float = 10.0) -> None:
    """Cancel `task` and wait until it has ended: cancelled again every `grace` seconds
    while it runs on (its cancellation swallowed), for at most `bound` seconds in all.

    An exception the task ended with is logged, not raised: the caller is shutting down
    and has more to close. A cancellation of the caller itself propagates as usual."""
    if task is None:
        return
    if not task.done():
        loop = asyncio.get_running_loop()
        deadline = loop.time() + bound
        while not task.done():
            remaining = deadline - loop.time()
            if remaining <= 0:
                log.warning("background task %s did not stop within %gs", task.get_name(), bound)
                return
            task.cancel()
            await asyncio.wait((task,), timeout=min(grace, remaining))
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.warning(
            "background task %s ended with %s: %s", task.get_name(), type(exc).__name__, exc
        )
