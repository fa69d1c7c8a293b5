"""Benchmark (not a test): the live stream publisher's cost per round on the city fleet (216 stations).

    .venv/bin/python -m tests.browser.bench_stream

Prints the milliseconds one publisher round takes when every station changed, when one second's worth
changed (216 stations polled every 5 s ≈ 44), and for the 5-second sweep when nothing changed.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from pumpwatch.api.main import create_app
from pumpwatch.app.system import System
from pumpwatch.core.clock import FakeClock
from pumpwatch.core.config import load_fleet
from pumpwatch.core.sample import Quality, Sample

CITY = Path(__file__).resolve().parents[2] / "deploy" / "config" / "city"


async def main() -> None:
    fleet = load_fleet(CITY)
    clock = FakeClock(datetime(2026, 8, 1, tzinfo=UTC))
    with tempfile.TemporaryDirectory() as tmp:
        system = await System.prepare(fleet, f"sqlite:///{tmp}/bench.db", clock)
        hub = create_app(system.api_context()).state.hub
        every = [Sample(sid, n, 1.0, clock.now(), Quality.GOOD) for sid, p in fleet.points.items() for n in p]

        async def timed(what: str) -> None:
            t0 = time.perf_counter()
            await hub._round()
            print(f"{what}: {1000 * (time.perf_counter() - t0):.1f} ms")

        def samples(value: float, stations: set[str] | None = None) -> None:
            clock.advance(1)
            system.live.accept(
                [
                    Sample(s.station, s.point, value, clock.now(), Quality.GOOD)
                    for s in every
                    if stations is None or s.station in stations
                ]
            )

        await hub._refresh_alarms()
        print(f"{len(fleet.stations)} stations, {len(every)} points")
        for k in range(3):
            samples(1.0 + k)
            hub._last_sweep = time.monotonic()
            await timed("round, every station changed")
        for k in range(3):
            samples(5.0 + k, set(list(fleet.stations)[:44]))
            await timed("round, 44 stations changed (one second at 5 s polls)")
        hub._last_sweep = 0
        await timed("sweep round, nothing changed")
        system.engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
