"""Task supervision (pumpwatch.core.tasks): bounded stop, a failure never silent, restart after a crash."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from pumpwatch.core import tasks


async def test_stop_cancels_a_task_and_waits_for_its_end() -> None:
    cleaned = asyncio.Event()

    async def work() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.set()

    t = asyncio.create_task(work())
    await asyncio.sleep(0)
    assert await tasks.stop(t, 5.0) is True
    assert t.cancelled() and cleaned.is_set()


async def test_stop_cancels_again_a_task_that_swallowed_its_cancellation() -> None:
    swallowed = 0

    async def stubborn() -> None:  # what a wait_for racing with its operation does on Python 3.11
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                swallowed += 1
                if swallowed >= 2:
                    raise

    t = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    assert await tasks.stop(t, 5.0) is True
    assert swallowed == 2 and t.cancelled()


async def test_stop_gives_up_after_its_limit_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    deaf_now = True

    async def deaf() -> None:
        while deaf_now:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(10)

    t = asyncio.create_task(deaf(), name="deaf.task")
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR):
        assert await tasks.stop(t, 0.3) is False
    assert "deaf.task did not stop within 0 s" in caplog.text
    assert not t.done()
    deaf_now = False  # the test's own clean-up: now the next cancellation ends it
    assert await tasks.stop(t) is True


async def test_stop_logs_the_exception_a_task_ended_with(caplog: pytest.LogCaptureFixture) -> None:
    async def broken() -> None:
        raise ValueError("register map wrong")

    t = asyncio.create_task(broken(), name="collector.modbus[gw-1]")
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR):
        assert await tasks.stop(t) is True
    assert "collector.modbus[gw-1] ended with ValueError('register map wrong')" in caplog.text


async def test_the_callers_own_cancellation_goes_on_up() -> None:
    async def slow_to_stop() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(0.2)  # cleans up for a while
            raise

    inner = asyncio.create_task(slow_to_stop())
    await asyncio.sleep(0)
    outer = asyncio.create_task(tasks.stop(inner, 5.0))
    await asyncio.sleep(0.05)
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer
    await tasks.stop(inner)


async def test_log_failure_reports_a_crash_and_not_a_cancellation(caplog: pytest.LogCaptureFixture) -> None:
    async def crash() -> None:
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR):
        t = asyncio.create_task(crash())
        t.add_done_callback(tasks.log_failure(logging.getLogger("x"), "live stream publisher"))
        c = asyncio.create_task(asyncio.sleep(10))
        c.add_done_callback(tasks.log_failure(logging.getLogger("x"), "the cancelled one"))
        await asyncio.sleep(0)
        c.cancel()
        await asyncio.gather(t, c, return_exceptions=True)
        await asyncio.sleep(0)
    assert "live stream publisher ended: RuntimeError('boom')" in caplog.text
    assert "the cancelled one" not in caplog.text


async def test_restarting_runs_again_after_a_crash_until_it_returns(caplog: pytest.LogCaptureFixture) -> None:
    runs = 0

    async def source() -> None:
        nonlocal runs
        runs += 1
        if runs < 3:
            raise ConnectionError("bug")

    with caplog.at_level(logging.ERROR):
        await asyncio.wait_for(tasks.restarting("collector.modbus[gw-2]", source, restart_max_s=0.01), 5)
    assert runs == 3
    assert "collector.modbus[gw-2] crashed (2 times)" in caplog.text


async def test_restarting_ends_on_cancellation() -> None:
    async def forever() -> None:
        await asyncio.sleep(10)

    t = asyncio.create_task(tasks.restarting("x", forever))
    await asyncio.sleep(0)
    assert await tasks.stop(t) is True and t.cancelled()
