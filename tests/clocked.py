"""Moving a FakeClock under a running collector: one step = every Modbus source polls all its units once,
on the new time.

A source caught mid-cycle by `advance()` would finish that cycle on the old time and then sleep until a
slot past the new one, so each step would stall until something moved the clock again (seen: every step of
the console's warm-up taking a full nudge second). So a step first waits for every source to sit between
cycles, then advances, then waits for one whole cycle per source."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from pumpwatch.collector.sources.modbus import ModbusSource
from pumpwatch.core.clock import FakeClock
from tests.e2e.fleets import wait_until


async def poll_step(
    clock: FakeClock,
    sources: Sequence[ModbusSource],
    seconds: float,
    *,
    physics: Callable[[], object] | None = None,
    limit_s: float = 20.0,
    nudge_after_s: float | None = 1.0,
) -> None:
    """Advance `seconds` (step the simulator's physics too, if given) and wait for a full poll cycle of
    every source. `nudge_after_s`: a source waiting out a reconnect backoff under load is nudged by moving
    the clock one more second now and then (None: never; the step must then complete on its own)."""
    await wait_until(
        lambda: not any(s.in_cycle for s in sources), limit_s, "every source between poll cycles", step=0.002
    )
    before = [s.stats.cycles for s in sources]
    clock.advance(seconds)
    if physics is not None:
        physics()
    t0 = nudged = time.monotonic()
    while any(s.stats.cycles <= b for s, b in zip(sources, before, strict=True)):
        now = time.monotonic()
        if now - t0 > limit_s:
            behind = [s.name for s, b in zip(sources, before, strict=True) if s.stats.cycles <= b]
            raise AssertionError(f"polls stalled after {limit_s} s: {behind}")
        if nudge_after_s is not None and now - nudged > nudge_after_s:
            nudged = now
            clock.advance(1.0)
            if physics is not None:
                physics()
        await asyncio.sleep(0.002)
