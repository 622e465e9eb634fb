"""Stopping background tasks: a loop whose client library turns its cancellation into an
ordinary error still stops, and `stop` never hangs on a task that will not."""

from __future__ import annotations

import asyncio
import logging

import pytest

from genroute.tasks import cancel_requested, raise_if_cancelled, stop


async def swallowing_read() -> None:
    """A read that, cancelled, raises ConnectionError instead (as redis-py can)."""
    try:
        await asyncio.Event().wait()  # until cancelled
    except asyncio.CancelledError:
        raise ConnectionError("Error while reading") from None


async def retry_loop(checks: bool, tries: list[int]) -> None:
    while True:
        try:
            await swallowing_read()
        except ConnectionError as exc:
            tries.append(1)
            if checks:
                raise_if_cancelled(exc)
            await swallowing_read()  # "try again later", itself a swallowing wait


async def test_a_loop_that_checks_stops_at_the_first_cancel() -> None:
    tries: list[int] = []
    task = asyncio.create_task(retry_loop(True, tries))
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.wait((task,), timeout=1)
    assert task.cancelled() and tries == [1]
    assert not cancel_requested()  # this task was not asked to stop


async def test_stop_cancels_again_a_task_that_swallowed_its_cancellation() -> None:
    tries: list[int] = []
    task = asyncio.create_task(retry_loop(False, tries), name="swallower")
    await asyncio.sleep(0)
    task.cancel()  # swallowed: the loop goes on
    await asyncio.sleep(0.01)
    assert not task.done() and tries == [1]
    await stop(task, grace=0.01, bound=1.0)
    # The second cancel lands in the retry's wait, whose ConnectionError leaves the loop.
    assert task.done() and isinstance(task.exception(), ConnectionError)


async def test_stop_gives_up_after_its_bound_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    async def immortal() -> None:
        while True:
            try:
                await asyncio.Event().wait()  # until cancelled
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(immortal(), name="immortal")
    await asyncio.sleep(0)
    with caplog.at_level(logging.WARNING, logger="genroute"):
        await stop(task, grace=0.005, bound=0.03)
    assert not task.done()
    assert "immortal did not stop within 0.03s" in caplog.text
    task.get_coro().close()  # type: ignore[union-attr]  # end it without the event loop
    await stop(task, grace=0.005, bound=0.01)


async def test_stop_logs_what_the_task_ended_with(caplog: pytest.LogCaptureFixture) -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    task = asyncio.create_task(fails(), name="failing")
    await asyncio.sleep(0)
    with caplog.at_level(logging.WARNING, logger="genroute"):
        await stop(task)
    assert "failing ended with RuntimeError: boom" in caplog.text
    await stop(None)  # nothing to stop
