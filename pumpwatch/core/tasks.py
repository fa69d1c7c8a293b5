"""Task supervision: the one home for starting, watching and stopping the process's asyncio tasks
(issue 14: the composition root, the simulators' fleet and MQTT link, the API's live stream and the
collector each had a copy).

- `stop(task, limit_s)`: cancel and wait a bounded time. It cancels again while the task still runs:
  Python 3.11's `wait_for` (inside aiomqtt, pymodbus) can swallow a cancellation that races with the
  awaited operation finishing, and the task would then run on. Shutdown must finish even if a task
  misbehaves, so after `limit_s` it says so (an error in the log) and leaves it. If the caller itself is
  cancelled meanwhile, that cancellation goes on up.
- `log_failure(logger, what)`: a done-callback that logs how a task ended when it ended on an exception
  (a background task nobody awaits would otherwise fail in silence).
- `restarting(name, run, restart_max_s)`: run a coroutine function until it returns; a crash (a bug) is
  logged and the function run again after a doubling pause, so one broken device never stops the rest.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from pumpwatch.core.backoff import exponential

__all__ = ["log_failure", "restarting", "stop"]

log = logging.getLogger(__name__)

RECANCEL_S = 0.5  # how often a task that swallowed its cancellation is cancelled again


async def stop(
    task: asyncio.Task[Any],
    limit_s: float = 10.0,
    *,
    logger: logging.Logger = log,
    failure_level: int = logging.ERROR,
) -> bool:
    """Cancel `task` and wait until it has ended, at most `limit_s` seconds. True when it ended.

    An exception it ended with (other than the cancellation) is logged at `failure_level`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not task.done():
        left = deadline - loop.time()
        if left <= 0:
            logger.error("%s did not stop within %.0f s; leaving it", task.get_name(), limit_s)
            return False
        task.cancel()
        await asyncio.wait({task}, timeout=min(RECANCEL_S, left))
    if not task.cancelled() and task.exception() is not None:
        logger.log(failure_level, "%s ended with %r", task.get_name(), task.exception())
    return True


def log_failure(logger: logging.Logger, what: str) -> Callable[[asyncio.Task[Any]], None]:
    """A done-callback: logs `what` and the exception when the task ended on one (not on cancellation)."""

    def ended(task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and (exc := task.exception()) is not None:
            logger.error("%s ended: %r", what, exc, exc_info=exc)

    return ended


async def restarting(name: str, run: Callable[[], Awaitable[None]], restart_max_s: float = 30.0) -> None:
    """Await `run()` until it returns; after a crash log it and run it again, waiting 1 s, 2 s, 4 s … (at
    most `restart_max_s`) between crashes. Cancellation ends it."""
    failures = 0
    while True:
        try:
            await run()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            failures += 1
            delay = exponential(failures + 1, 0.5, restart_max_s)
            log.exception("%s crashed (%d times); restarting in %.1f s", name, failures, delay)
            await asyncio.sleep(delay)
