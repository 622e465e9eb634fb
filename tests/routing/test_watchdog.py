"""The Watchdog: one timer for many waits, cancelling the task only for a wait that runs
past its own end."""

from __future__ import annotations

import asyncio

import pytest

from genroute.routing.watchdog import Watchdog


async def waits(watchdog: Watchdog, pauses: list[float], limit: float) -> int:
    """Waits one after another, each armed for `limit`; how many ended in time."""
    done = 0
    for pause in pauses:
        watchdog.arm(limit)
        try:
            await asyncio.sleep(pause)
        finally:
            watchdog.disarm()
        done += 1
    return done


async def test_short_waits_add_up_past_the_limit_without_firing() -> None:
    watchdog = Watchdog()
    try:
        assert await waits(watchdog, [0.004] * 10, 0.03) == 10  # 40 ms in all, each 4 ms
    finally:
        watchdog.close()
    assert not watchdog.expired()


async def test_a_long_wait_cancels_the_task_and_is_told_apart() -> None:
    watchdog = Watchdog()
    try:
        with pytest.raises(asyncio.CancelledError):
            await waits(watchdog, [0.001, 0.05], 0.01)
        assert watchdog.expired()
        assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
    finally:
        watchdog.close()
    await asyncio.sleep(0)  # the task runs on, not cancelled


async def test_time_between_waits_does_not_count() -> None:
    watchdog = Watchdog()
    try:
        watchdog.arm(0.04)
        watchdog.disarm()
        await asyncio.sleep(0.05)  # nothing awaited under the watchdog: the timer passes
        # (a 2 ms wait under a 40 ms limit: a loaded machine's late wake-up does not fire it)
        assert await waits(watchdog, [0.002], 0.04) == 1
    finally:
        watchdog.close()
    assert not watchdog.expired()


async def test_a_shorter_limit_moves_the_timer_earlier() -> None:
    watchdog = Watchdog()
    try:
        watchdog.arm(10.0)
        watchdog.disarm()
        with pytest.raises(asyncio.CancelledError):
            await waits(watchdog, [0.05], 0.005)
        assert watchdog.expired()
    finally:
        watchdog.close()


async def test_someone_elses_cancellation_is_not_the_watchdogs() -> None:
    watchdog = Watchdog()
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().call_later(0.005, task.cancel)
    try:
        with pytest.raises(asyncio.CancelledError):
            await waits(watchdog, [0.05], 10.0)
        assert not watchdog.expired()
        task.uncancel()
    finally:
        watchdog.close()
