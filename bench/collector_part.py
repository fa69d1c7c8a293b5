"""One collector process of the benchmark: `python -m bench.collector_part MODE PORTS_FILE WINDOW TMP LEVEL
[INTERVAL]`.

MODE `floor` runs the raw-asyncio client, `pumpwatch` the collector's ModbusSources (pymodbus, read plan,
decoding, Sample objects, live snapshot), over the stations on PORTS_FILE's ports, each polled every INTERVAL
seconds (default 5) with starts staggered over the interval; prints one JSON line of figures. A fresh
process per run keeps the memory figure clean.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import time
from pathlib import Path

from bench.fleet import bench_fleet
from bench.floor import FloorStats, poll_forever
from bench.lightsim import raise_fd_limit

INTERVAL_S = 5.0


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def _measure(n: int, start_tasks, polls, late, window_s: float) -> dict:
    gc.collect()
    rss0 = rss_bytes()
    tasks = start_tasks()
    deadline = time.monotonic() + INTERVAL_S * 4 + n / 2000
    while polls() < n and time.monotonic() < deadline:  # every station answered once
        await asyncio.sleep(0.2)
    first = polls()
    await asyncio.sleep(INTERVAL_S)  # one settled cycle
    rss1 = rss_bytes()
    cpu0, p0, l0, t0 = time.process_time(), polls(), late(), time.monotonic()
    await asyncio.sleep(window_s)
    cpu1, p1, l1, t1 = time.process_time(), polls(), late(), time.monotonic()
    for t in tasks:
        t.cancel()
    await asyncio.wait(tasks, timeout=5)  # the process exits next anyway
    done = p1 - p0
    return {
        "stations_answered_first_cycle": first,
        "polls_per_s": round(done / (t1 - t0), 1),
        "expected_polls_per_s": round(n / INTERVAL_S, 1),
        "cpu_us_per_poll": round(1e6 * (cpu1 - cpu0) / max(done, 1), 1),
        "cpu_pct_of_core": round(100 * (cpu1 - cpu0) / (t1 - t0), 1),
        "late_polls": l1 - l0,
        "rss_per_station_kb": round((rss1 - rss0) / n / 1024, 2),
    }


async def floor_level(n: int, ports: list[int], window_s: float, tmp: Path, level: int) -> dict:
    stats = FloorStats()

    def sink(words):
        return [w * 0.1 for w in words]

    def start():
        return [
            asyncio.create_task(poll_forever(ports[i], INTERVAL_S, i * INTERVAL_S / n, stats, sink))
            for i in range(n)
        ]

    return await _measure(n, start, lambda: stats.polls, lambda: stats.late, window_s)


async def pumpwatch_level(n: int, ports: list[int], window_s: float, tmp: Path, level: int) -> dict:
    from pumpwatch.collector.fleet import build_modbus_sources
    from pumpwatch.core.clock import SystemClock
    from pumpwatch.core.live import LiveSnapshot

    fleet = bench_fleet(tmp / f"fleet-{level}-{ports[0]}", n, ports[:n], interval_s=INTERVAL_S)
    live = LiveSnapshot()
    sources = []

    async def staggered(src, off: float) -> None:
        await asyncio.sleep(off)
        await src.run()

    def start():
        sources[:] = build_modbus_sources(fleet, SystemClock(), live.accept)
        return [asyncio.create_task(staggered(s, i * INTERVAL_S / n)) for i, s in enumerate(sources)]

    out = await _measure(
        n,
        start,
        lambda: sum(s.stats.answered for s in sources),
        lambda: sum(s.stats.late_cycles for s in sources),
        window_s,
    )
    buckets, _ = sources[0].stats.latency.merged([s.stats.latency for s in sources])
    total = buckets[-1][1]
    for q, key in ((0.5, "poll_latency_p50_ms_le"), (0.99, "poll_latency_p99_ms_le")):
        bound = next((b for b, c in buckets if c >= q * total), "+Inf")
        out[key] = bound if bound == "+Inf" else round(float(bound) * 1000, 1)
    out["missed_polls"] = sum(s.stats.missed for s in sources)
    sources.clear()
    return out


async def main() -> None:
    import logging

    logging.basicConfig(level="ERROR")
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    raise_fd_limit()
    global INTERVAL_S
    mode, pfile, window, tmp, level = sys.argv[1:6]
    if len(sys.argv) > 6:
        INTERVAL_S = float(sys.argv[6])
    ports = json.loads(Path(pfile).read_text())
    fn = floor_level if mode == "floor" else pumpwatch_level
    res = await fn(len(ports), ports, float(window), Path(tmp), int(level))
    print(json.dumps(res), flush=True)
    os._exit(0)  # do not wait for thousands of sockets to close politely


if __name__ == "__main__":
    asyncio.run(main())
