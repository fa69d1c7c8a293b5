"""`make bench` (`python -m bench.run`): pumpwatch against floors measured in the same run.

Sections (each figure with its floor and the ratio; the load average is recorded with each, the machine
being shared):
1. collector: fleets of 200, 2,000, 10,000 and 20,000 stations polled every 5 s over Modbus TCP from a light
   simulator in another process; CPU per poll of pumpwatch's ModbusSource (pymodbus, read plan, decoding,
   Sample objects, live snapshot) against the raw-asyncio floor client on the same event loop type; late
   polls; poll latency; memory per station.
2. ingest: rows/s of `historian.write_samples` (binary COPY into a staging table, INSERT … ON CONFLICT DO
   NOTHING, latest-value upsert) against a bare binary COPY of the same rows into the same table; and the
   cost of the rollup job per minute of data.
3. alarms: sample-to-alarm-stored latency p50/p99 under a flood (10 % of 2,000 stations crossing a limit at
   once), into PostgreSQL.
4. live overview: `GET /api/v1/stations` for 10,000 stations from the in-process snapshot: p50/p99, req/s of
   one worker, and the longest the event loop was held (a 1 ms loop-lag probe).
5. trend: 30 days of 1-second data of one point (2.6 M rows): `read_history` with 500 buckets, from the
   rollups, against the same query on raw samples.
6. timescale (`python -m bench.run --only timescale`; TimescaleDB at PUMPWATCH_BENCH_TIMESCALE, default
   127.0.0.1:5433): ingest as in 2 on plain PostgreSQL and into the hypertable, in the same run; the 30-day
   trend from the hourly continuous aggregate against raw samples (row store, then compressed chunks);
   bytes per sample before and after compression for a week of one simulated reference station at 1 Hz.

7. reports (`bench/reports_part.py`): a month's operation report of the seed city's 216 stations (both
   tenants) from the hourly rollups: computing it, then xlsx, CSV and PDF; wall and CPU seconds (goal:
   computing + xlsx under 10 s).

Results: bench/results/latest.json and bench/results/latest.md.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.fleet import bench_fleet

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
LEVELS = [int(x) for x in os.environ.get("BENCH_LEVELS", "200,2000,5000,10000,20000").split(",")]
INTERVAL_S = 5.0
PG_ADMIN = os.environ.get("PUMPWATCH_BENCH_PG", "postgresql://postgres:postgres@127.0.0.1:5432/postgres")
TS_ADMIN = os.environ.get(
    "PUMPWATCH_BENCH_TIMESCALE", "postgresql://postgres:postgres@127.0.0.1:5433/postgres"
)


@dataclass(frozen=True)
class Sizes:
    """How big each section runs. `make bench` uses the defaults; `SMOKE` is the seconds-long run that
    `make test` makes of every section (tests/bench/test_bench_smoke.py: it completes and writes its
    results; no figure of it means anything)."""

    levels: tuple[int, ...] = tuple(LEVELS)
    interval_s: float = INTERVAL_S  # the collector's poll interval
    sim_base_port: int = 10_000  # the light simulators listen from here up (skipping ports in use)
    window_s: float | None = None  # the collector's measuring window (None: 15 s to 10,000, then 10 s)
    ingest_points: int = 20_000  # 1,000 stations × 20 points
    ingest_cycles: int = 20  # polls of every point: 400 k rows
    ingest_rounds: int = 3  # interleaved floor/pumpwatch rounds
    alarm_stations: int = 2000
    alarm_cycles: int = 6
    trend_days: int = 30
    compression_hours: int = 7 * 24
    api_stations: int = 10_000
    api_requests: int = 120  # per endpoint, over `api_concurrency` clients
    api_concurrency: int = 8


FULL = Sizes()
SMOKE = Sizes(
    levels=(4,),
    interval_s=0.5,
    window_s=1.0,
    ingest_points=200,
    ingest_cycles=2,
    ingest_rounds=1,
    alarm_stations=20,
    alarm_cycles=2,
    trend_days=1,
    compression_hours=1,
    api_stations=50,
    api_requests=8,
    api_concurrency=2,
)


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


# --- 1. collector ---------------------------------------------------------------------------------------
PER_PROCESS = 10_000  # one connection per station: this machine allows 20,000 open files per process
PER_SIM = 5_000  # a simulator process holds a listener and a connection per station


def _run_parts(mode: str, n: int, ports: list[int], window: float, tmp: Path, interval_s: float) -> dict:
    """Run `n` stations as ceil(n / PER_PROCESS) collector processes at once (shards), combine figures."""
    k = -(-n // PER_PROCESS)
    size = -(-n // k)
    procs = []
    for i in range(k):
        part_ports = ports[i * size : min(n, (i + 1) * size)]
        pfile = tmp / f"ports-{mode}-{n}-{i}.json"
        pfile.write_text(json.dumps(part_ports))
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.collector_part",
                    mode,
                    str(pfile),
                    str(window),
                    str(tmp),
                    str(n),
                    str(interval_s),
                ],
                stdout=subprocess.PIPE,
                cwd=HERE.parent,
            )
        )
    outs = []
    for p in procs:
        try:
            out, _ = p.communicate(timeout=240)
            outs.append(json.loads(out.decode().strip().splitlines()[-1]))
        except (subprocess.TimeoutExpired, ValueError, IndexError) as exc:
            for q in procs:
                q.kill()
                q.wait()
            return {"error": f"{mode} process failed: {type(exc).__name__}"}
    polls = sum(o["polls_per_s"] for o in outs)
    res = {
        "processes": k,
        "polls_per_s": round(polls, 1),
        "expected_polls_per_s": round(n / interval_s, 1),
        "cpu_us_per_poll": round(
            sum(o["cpu_us_per_poll"] * o["polls_per_s"] for o in outs) / max(polls, 1e-9), 1
        ),
        "cpu_pct_of_core": round(sum(o["cpu_pct_of_core"] for o in outs), 1),
        "late_polls": sum(o["late_polls"] for o in outs),
        "rss_per_station_kb": round(sum(o["rss_per_station_kb"] for o in outs) / k, 2),
        "stations_answered_first_cycle": sum(o["stations_answered_first_cycle"] for o in outs),
    }
    for key in ("poll_latency_p50_ms_le", "poll_latency_p99_ms_le", "missed_polls"):
        if key in outs[0]:
            vals = [o[key] for o in outs]
            res[key] = (
                sum(vals)
                if key == "missed_polls"
                else max(vals, key=lambda v: float("inf") if v == "+Inf" else v)
            )
    return res


def collector_breakdown(tmp: Path) -> dict:
    """Where a pumpwatch poll's CPU goes besides the wire: decoding 20 points into Samples and the live
    snapshot, timed in a tight loop (the rest of the per-poll cost is pymodbus and the event loop)."""
    from pumpwatch.collector.registers import build_read_plan
    from pumpwatch.core.live import LiveSnapshot
    from pumpwatch.core.sample import Sample

    fleet = bench_fleet(tmp / "breakdown", 1)
    plan = build_read_plan(fleet.register_maps["bench-20"])
    block = plan.blocks[0]
    words = list(range(20))
    live = LiveSnapshot()
    now = datetime.now(UTC)
    n = 20_000
    t = time.process_time()
    for _ in range(n):
        out = []
        for p in block.points:
            value, quality = p.decode(words, p.offset)
            out.append(Sample("B00000", p.name, value, now, quality))
    decode_us = (time.process_time() - t) / n * 1e6
    t = time.process_time()
    for _ in range(n):
        live.accept(out)
    live_us = (time.process_time() - t) / n * 1e6
    return {"decode_20_points_to_samples_us": round(decode_us, 1), "live_snapshot_us": round(live_us, 1)}


async def collector_section(tmp: Path, sizes: Sizes = FULL) -> list[dict]:
    sims, ports = [], []
    per_sim = min(PER_SIM, max(sizes.levels))
    for j in range(-(-max(sizes.levels) // per_sim)):
        sim = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.lightsim",
                str(per_sim),
                str(sizes.sim_base_port + j * (PER_SIM + 200)),
            ],
            stdout=subprocess.PIPE,
            cwd=HERE.parent,
        )
        assert sim.stdout is not None
        ports += json.loads(sim.stdout.readline())
        sims.append(sim)
    out = []
    try:
        for n in sizes.levels:
            window = sizes.window_s or (15.0 if n <= 10_000 else 10.0)
            la = load()
            iv = sizes.interval_s
            fl = await asyncio.to_thread(_run_parts, "floor", n, ports, window, tmp, iv)
            pw = await asyncio.to_thread(_run_parts, "pumpwatch", n, ports, window, tmp, iv)
            if "error" in fl or "error" in pw:
                out.append({"stations": n, "window_s": window, "load_avg": la, "floor": fl, "pumpwatch": pw})
                print(f"collector {n}: failed {fl} {pw}", flush=True)
                continue
            row = {
                "stations": n,
                "window_s": window,
                "load_avg": la,
                "floor": fl,
                "pumpwatch": pw,
                "cpu_ratio": round(pw["cpu_us_per_poll"] / fl["cpu_us_per_poll"], 2),
            }
            print(f"collector {n}: {json.dumps(row)}", flush=True)
            out.append(row)
    finally:
        for sim in sims:
            sim.terminate()
            sim.wait(10)
    return out


# --- PostgreSQL helpers ---------------------------------------------------------------------------------


def create_db(admin: str | None = None) -> tuple[str, str]:
    import psycopg

    admin = admin or PG_ADMIN
    name = f"pumpwatch_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    base = admin.rsplit("/", 1)[0]
    return name, f"{base}/{name}"


def drop_db(name: str, admin: str | None = None) -> None:
    import psycopg

    admin = admin or PG_ADMIN
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- 2. ingest ------------------------------------------------------------------------------------------


def ingest_section(url: str, *, timescale: bool = False, sizes: Sizes = FULL) -> dict:
    from pumpwatch.core import historian
    from pumpwatch.core.db import make_engine, upgrade
    from pumpwatch.core.historian_scale import Rollups, roll_up
    from pumpwatch.core.timescale import ensure_timescale

    engine = make_engine(url)
    upgrade(engine)
    if timescale:  # the same rows into the hypertable (with its continuous aggregates' invalidation log)
        features = ensure_timescale(engine)
        assert not features.missing, features.missing
    points, cycles = sizes.ingest_points, sizes.ingest_cycles
    batch = (
        points  # one poll of every point a batch (default 1,000 stations × 20 points, 20 polls: 400 k rows)
    )
    t0 = datetime(2026, 7, 1, tzinfo=UTC)
    rows = [
        (pid, t0 + timedelta(seconds=5 * c), (pid * 7 + c) % 1000 / 10.0, 0)
        for c in range(cycles)
        for pid in range(1, points + 1)
    ]
    batches = [rows[i : i + batch] for i in range(0, len(rows), batch)]

    def reset() -> None:
        with engine.begin() as conn:
            conn.exec_driver_sql("TRUNCATE sample, latest_value, sample_1m, sample_1h")
            conn.exec_driver_sql("CHECKPOINT")

    def bare_copy() -> float:
        reset()
        start = time.perf_counter()
        for b in batches:
            with engine.begin() as conn:
                raw = conn.connection.driver_connection
                with (
                    raw.cursor() as cur,
                    cur.copy(
                        "COPY sample (point_id, observed_at, value, quality) FROM STDIN (FORMAT BINARY)"
                    ) as cp,
                ):
                    cp.set_types(["int4", "timestamptz", "float8", "int2"])
                    for r in b:
                        cp.write_row(r)
        return len(rows) / (time.perf_counter() - start)

    def ours() -> float:
        reset()
        roll = Rollups()
        start = time.perf_counter()
        for b in batches:
            historian.write_samples(engine, b)
            roll.note(b)
        return len(rows) / (time.perf_counter() - start)

    floor_runs, our_runs, la = [], [], load()
    for _ in range(sizes.ingest_rounds):  # interleaved A/B rounds
        floor_runs.append(bare_copy())
        our_runs.append(ours())
    # the rollup job after the last load: the 2 minutes of data above (400 k rows)
    minutes = sorted({(r[1] - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(minutes=1) for r in rows})
    start = time.perf_counter()
    roll_up(engine, minutes)
    roll_s = time.perf_counter() - start
    engine.dispose()
    f, o = statistics.median(floor_runs), statistics.median(our_runs)
    return {
        "rows": len(rows),
        "batch_rows": batch,
        "load_avg": la,
        "floor_bare_copy_rows_per_s": round(f),
        "pumpwatch_rows_per_s": round(o),
        "ratio": round(o / f, 2),
        "runs_floor": [round(x) for x in floor_runs],
        "runs_pumpwatch": [round(x) for x in our_runs],
        "rollup_rows_per_s": round(len(rows) / roll_s),
        "rollup_s_per_minute_of_20k_stations_at_5s": round(roll_s / len(minutes) * 4 * 20 / 20, 2),
    }


# --- 3. alarms ------------------------------------------------------------------------------------------


async def alarm_section(url: str, tmp: Path, sizes: Sizes = FULL) -> dict:
    from pumpwatch.alarms.service import AlarmService
    from pumpwatch.app.system import System
    from pumpwatch.core.clock import SystemClock
    from pumpwatch.core.sample import Sample

    n = sizes.alarm_stations
    fleet = bench_fleet(tmp / "alarm-fleet", n, rules=True)
    clock = SystemClock()
    system = await System.prepare(fleet, url, clock)
    svc = AlarmService(fleet, system.rules, system.engine, clock)
    arrived: dict[tuple[str, str], float] = {}
    lat: list[float] = []
    count = svc._count  # called once an event is committed

    def timed_count(e) -> None:
        count(e)
        t = arrived.pop((e.station, e.kind), None)
        if t is not None:
            lat.append(time.monotonic() - t)

    svc._count = timed_count  # type: ignore[method-assign]
    task = asyncio.create_task(svc.run())
    ids = sorted(fleet.stations)
    flood = ids[: n // 10]
    la = load()
    try:
        for cycle in range(sizes.alarm_cycles):
            high = cycle % 2 == 0
            now = clock.now()
            t = time.monotonic()
            for sid in ids:
                in_flood = sid in flood
                level = 2.5 if (in_flood and high) else 1.0
                if in_flood:
                    arrived[(sid, "raise" if high else "clear")] = t
                svc.accept([Sample(sid, "wet_well_level_m", level, now)])
            await asyncio.wait_for(svc.drain(), 60)
            await asyncio.sleep(0.5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        system.engine.dispose()
    return {
        "stations": n,
        "flood_events_per_cycle": len(flood),
        "events_measured": len(lat),
        "load_avg": la,
        "p50_ms": round(1000 * pct(lat, 0.5), 1),
        "p99_ms": round(1000 * pct(lat, 0.99), 1),
        "max_ms": round(1000 * max(lat), 1) if lat else None,
    }


# --- 4. live overview -----------------------------------------------------------------------------------


BENCH_USER, BENCH_PASSWORD = "bench-viewer", "bench-password-1234"

# Every list endpoint, as a console or a wall display asks for it (key, path); `{n}` is the fleet size
API_LISTS = (
    ("overview", "/api/v1/overview"),
    ("stations_page", "/api/v1/stations?limit=500"),
    ("stations_compact", "/api/v1/stations?limit=1000&fields=id,status,live,data_age_s,active_alarms"),
    ("alarms", "/api/v1/alarms?limit=500"),
    ("dispatch", "/api/v1/dispatch"),
    ("kpis", "/api/v1/kpis?tenant=bench"),
)


class LoopProbe:
    """How long the event loop was held: a task asks to wake every 1 ms and records how late it woke.
    Runs in the same process (and loop) as the API under measurement. Also the longest pause of Python's
    cyclic garbage collector meanwhile (it stops every thread, the loop's too)."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.gc_pauses: list[float] = []
        self._gc_start = 0.0
        self._task: asyncio.Task | None = None

    def _gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        else:
            self.gc_pauses.append(time.perf_counter() - self._gc_start)

    async def _run(self) -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(0.001)
            self.lags.append(time.perf_counter() - t - 0.001)

    async def __aenter__(self) -> LoopProbe:
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0.002)  # running before what it measures starts
        self.lags.clear()
        gc.callbacks.append(self._gc)
        return self

    async def __aexit__(self, *exc) -> None:
        assert self._task is not None
        await asyncio.sleep(0.002)  # it wakes once after the last stall, to see it
        self._task.cancel()
        gc.callbacks.remove(self._gc)

    @property
    def longest_gc_ms(self) -> float:
        return round(1000 * max(self.gc_pauses, default=0.0), 1)

    @property
    def longest_ms(self) -> float | None:
        return round(1000 * max(self.lags), 1) if self.lags else None


async def api_section(tmp: Path, sizes: Sizes = FULL) -> dict:
    """Every list endpoint at `api_stations` stations, one worker, `api_concurrency` clients at once, with
    the loop-lag probe; the live stream's snapshot and its cost per connected browser."""
    import httpx

    from pumpwatch.alarms import store
    from pumpwatch.api.auth.users import create_user
    from pumpwatch.api.context import ApiContext
    from pumpwatch.api.main import create_app
    from pumpwatch.core.clock import SystemClock
    from pumpwatch.core.db import make_engine, upgrade
    from pumpwatch.core.live import LiveSnapshot
    from pumpwatch.core.sample import Sample

    n = sizes.api_stations
    fleet = bench_fleet(tmp / "api-fleet", n)
    engine = make_engine(f"sqlite:///{tmp / 'api.db'}")
    upgrade(engine)
    live = LiveSnapshot()
    now = datetime.now(UTC)
    for sid, pts in fleet.points.items():
        live.accept([Sample(sid, p, 1.0, now) for p in pts])
    # a tenth of the fleet without power: open alarms, a dispatch board and KPIs with something in them
    ids = sorted(fleet.stations)
    flooded = ids[: max(1, n // 10)]
    for sid in flooded:
        store.raise_alarm(
            engine, tenant_id="bench", station_id=sid, name="power_failure", priority="high",
            message="power failure", value=None, at=now - timedelta(minutes=5),
        )  # fmt: skip
    create_user(engine, BENCH_USER, BENCH_PASSWORD, [("bench", "viewer")])  # viewer: no second factor
    ctx = ApiContext(fleet=fleet, engine=engine, clock=SystemClock(), catalog={}, live=live)
    app = create_app(ctx)
    la = load()

    # the collector in the same process: every station brings 20 new values every 5 s (the bench fleet's
    # pace), in batches every 50 ms, so station views change under the requests as they would in service
    churned = 0

    async def churn() -> None:
        nonlocal churned
        per_tick = max(1, round(n * 0.05 / INTERVAL_S))
        k = 0
        while True:
            at = datetime.now(UTC)
            batch = []
            for j in range(per_tick):
                sid = ids[(k + j) % n]
                batch += [Sample(sid, p, float(k % 97), at) for p in fleet.points[sid]]
            live.accept(batch)
            churned += per_tick
            k += per_tick
            await asyncio.sleep(0.05)

    async def measure(client: httpx.AsyncClient, path: str) -> dict:
        r = None
        for _ in range(2):  # warm: the overview's first build, caches
            r = await client.get(path)
            assert r.status_code == 200, f"{path}: {r.status_code} {r.text[:200]}"
        assert r is not None
        size = len(r.content)
        count = r.json().get("count")
        lat: list[float] = []
        per_client = max(1, sizes.api_requests // sizes.api_concurrency)

        async def one_client() -> None:
            for _ in range(per_client):
                t = time.perf_counter()
                got = await client.get(path)
                lat.append(time.perf_counter() - t)
                assert got.status_code == 200, got.text[:200]

        async with LoopProbe() as probe:
            start = time.perf_counter()
            await asyncio.gather(*(one_client() for _ in range(sizes.api_concurrency)))
            total = time.perf_counter() - start
        return {
            "count": count,
            "response_bytes": size,
            "p50_ms": round(1000 * pct(lat, 0.5), 1),
            "p99_ms": round(1000 * pct(lat, 0.99), 1),
            "req_per_s_one_worker": round(len(lat) / total, 1),
            "longest_loop_hold_ms": probe.longest_ms,
            "longest_gc_pause_ms": probe.longest_gc_ms,
        }

    out: dict = {
        "stations": n,
        "open_alarms": len(flooded),
        "concurrency": sizes.api_concurrency,
        "load_avg": la,
    }
    gc.collect()
    gc.freeze()  # as `pumpwatch run` does once the fleet is loaded (pumpwatch/app/cli/run.py)
    churner = asyncio.create_task(churn())
    t_churn = time.perf_counter()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://bench", timeout=120
    ) as client:
        r = await client.post("/api/v1/auth/login", json={"username": BENCH_USER, "password": BENCH_PASSWORD})
        assert r.status_code == 200, r.text
        client.headers["Authorization"] = f"Bearer {r.json()['token']}"
        client.cookies.clear()
        for key, path in API_LISTS:
            out[key] = await measure(client, path)
            print(f"api {key}: {json.dumps(out[key])}", flush=True)
        # the whole station list, page by page (what a client that wants everything does)
        async with LoopProbe() as probe:
            t = time.perf_counter()
            pages, got, cursor = 0, 0, None
            while True:
                params = {"limit": 1000} | ({"cursor": cursor} if cursor else {})
                body = (await client.get("/api/v1/stations", params=params)).json()
                pages, got = pages + 1, got + len(body["data"])
                cursor = body.get("next_cursor")
                if not cursor:
                    break
            out["stations_all_pages"] = {
                "stations": got,
                "pages": pages,
                "total_ms": round(1000 * (time.perf_counter() - t), 1),
                "longest_loop_hold_ms": probe.longest_ms,
            }
    out["stream"] = await _stream_snapshots(app.state.hub, browsers=50 if n >= 1000 else 3)
    churner.cancel()
    out["station_updates_per_s"] = round(churned / (time.perf_counter() - t_churn), 1)
    app.state.hub.close()
    engine.dispose()
    gc.unfreeze()
    return out


async def _stream_snapshots(hub, browsers: int) -> dict:
    """`browsers` clients connect at once and each gets the live stream's snapshot: time until the last
    has it, the loop held meanwhile, and bytes per browser."""
    async with LoopProbe() as probe:
        t = time.perf_counter()
        subs = [hub.subscribe(None, None) for _ in range(browsers)]
        while not all(s.queue for s in subs):
            await asyncio.sleep(0.005)
        total = time.perf_counter() - t
    sizes = [len(s.queue[0][2]) for s in subs]
    assert all(s.queue[0][1] == "snapshot" for s in subs)
    for s in subs:
        hub.unsubscribe(s)
    return {
        "browsers": browsers,
        "all_snapshots_ms": round(1000 * total, 1),
        "ms_per_browser": round(1000 * total / browsers, 2),
        "snapshot_bytes": sizes[0],
        "longest_loop_hold_ms": probe.longest_ms,
    }


# --- 5. trend -------------------------------------------------------------------------------------------


def trend_section(url: str, sizes: Sizes = FULL) -> dict:
    from pumpwatch.core import historian
    from pumpwatch.core.db import make_engine, upgrade
    from pumpwatch.core.historian_scale import roll_up

    engine = make_engine(url)
    upgrade(engine)
    end = datetime(2026, 8, 1, tzinfo=UTC)
    start = end - timedelta(days=sizes.trend_days)
    t = time.perf_counter()
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO sample (point_id, observed_at, value, quality) "
            "SELECT 424242, ts, sin(extract(epoch FROM ts) / 3600.0), 0 "
            "FROM generate_series(%(a)s::timestamptz, %(b)s::timestamptz - interval '1 second', '1 second') ts",
            {"a": start, "b": end},
        )
        conn.exec_driver_sql("ANALYZE sample")
    load_s = time.perf_counter() - t
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    m0, m1 = ((x - epoch) // timedelta(minutes=1) for x in (start, end))
    t = time.perf_counter()
    roll_up(engine, range(m0, m1), [424242])
    roll_s = time.perf_counter() - t

    def timed(fn) -> list[float]:
        out = []
        for _ in range(7):
            t = time.perf_counter()
            res = fn()
            out.append(time.perf_counter() - t)
            assert len(res) > 400
        return out

    la = load()
    ours = timed(lambda: historian.read_history(engine, 424242, start, end, 500))
    raw = timed(lambda: historian.read_history(engine, 424242, start, end, 500, use_rollups=False))
    engine.dispose()
    return {
        "rows": sizes.trend_days * 86400,
        "days": sizes.trend_days,
        "load_avg": la,
        "load_s": round(load_s, 1),
        "rollup_job_s": round(roll_s, 1),
        "p50_ms": round(1000 * statistics.median(ours), 1),
        "max_ms": round(1000 * max(ours), 1),
        "raw_p50_ms": round(1000 * statistics.median(raw), 1),
        "speedup": round(statistics.median(raw) / statistics.median(ours), 1),
    }


# --- 6. TimescaleDB ------------------------------------------------------------------------------------


def _reference_week(engine, hours: int = 7 * 24) -> tuple[int, datetime]:
    """`hours` of one simulated manhole pump station of the demo fleet at 1 Hz (its 32 points as the
    collector stores them: booleans 0/1, registers at their map's resolution), by binary COPY into
    `sample`, ending 8 days ago (so every chunk is old enough to compress). Returns (rows, first instant)."""
    from pumpwatch.core.config import load_fleet
    from pumpwatch.simulators.kinds import make_station

    fleet = load_fleet(HERE.parent / "deploy" / "config" / "demo")
    sid = "KITA-MP-01"
    points = fleet.points[sid]
    start = (datetime.now(UTC) - timedelta(days=8, hours=hours)).replace(minute=0, second=0, microsecond=0)
    station = make_station(fleet.stations[sid], 7, start)
    quant = {}
    for i, (name, sp) in enumerate(sorted(points.items()), start=1):
        scale = sp.spec.scale or 1.0
        quant[name] = (i, None if sp.spec.type == "bool" else scale)
    n = 0
    for h in range(hours):  # an hour a COPY: 115 k rows in memory at a time
        rows = []
        for s in range(3600):
            t = start + timedelta(hours=h, seconds=s)
            station.step(t)
            for name, v in station.point_values().items():
                pid, scale = quant[name]
                if v is None:
                    rows.append((pid, t, None, 0))
                elif scale is None:
                    rows.append((pid, t, float(bool(v)), 0))
                else:
                    rows.append((pid, t, round(float(v) / scale) * scale, 0))
        with engine.begin() as conn:
            raw = conn.connection.driver_connection
            with (
                raw.cursor() as cur,
                cur.copy(
                    "COPY sample (point_id, observed_at, value, quality) FROM STDIN (FORMAT BINARY)"
                ) as cp,
            ):
                cp.set_types(["int4", "timestamptz", "float8", "int2"])
                for r in rows:
                    cp.write_row(r)
        n += len(rows)
    return n, start


def timescale_section(sizes: Sizes = FULL) -> dict:
    """Ingest on both databases (same rows, same run); a month's trend from the continuous aggregate;
    compression of a week of the reference station's data."""
    from pumpwatch.core import historian
    from pumpwatch.core.db import make_engine, upgrade
    from pumpwatch.core.timescale import ensure_timescale, job_health, run_job

    out: dict = {"load_avg_start": load()}
    for label, admin, ts in (("postgresql", PG_ADMIN, False), ("timescaledb", TS_ADMIN, True)):
        name, url = create_db(admin)
        try:
            out[f"ingest_{label}"] = ingest_section(url, timescale=ts, sizes=sizes)
        finally:
            drop_db(name, admin)
        print(f"timescale: ingest {label}", json.dumps(out[f"ingest_{label}"]), flush=True)

    name, url = create_db(TS_ADMIN)
    engine = make_engine(url)
    try:
        upgrade(engine)
        features = ensure_timescale(engine)
        assert not features.missing, features.missing
        jobs = {(j.proc, j.relation): j.job_id for j in job_health(engine)[1]}

        # a month of one point at 1 Hz, ending yesterday (inside the aggregates' refresh window)
        end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
        start = end - timedelta(days=sizes.trend_days)
        t = time.perf_counter()
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO sample (point_id, observed_at, value, quality) "
                "SELECT 424242, ts, sin(extract(epoch FROM ts) / 3600.0), 0 FROM generate_series("
                "%(a)s::timestamptz, %(b)s::timestamptz - interval '1 second', '1 second') ts",
                {"a": start, "b": end},
            )
            conn.exec_driver_sql("ANALYZE sample")
        load_s = time.perf_counter() - t
        t = time.perf_counter()
        run_job(engine, jobs[("policy_refresh_continuous_aggregate", "sample_1h_cagg")])
        refresh_s = time.perf_counter() - t

        def timed(fn, n: int = 7) -> list[float]:
            res = []
            for _ in range(n):
                t = time.perf_counter()
                got = fn()
                res.append(time.perf_counter() - t)
                assert len(got) > 400
            return res

        la = load()
        cagg = timed(lambda: historian.read_history(engine, 424242, start, end, 500))
        raw_row = timed(lambda: historian.read_history(engine, 424242, start, end, 500, use_rollups=False), 3)
        t = time.perf_counter()
        run_job(engine, jobs[("policy_compression", "sample")])
        compress_month_s = time.perf_counter() - t
        raw_col = timed(lambda: historian.read_history(engine, 424242, start, end, 500, use_rollups=False), 3)
        cagg_col = timed(lambda: historian.read_history(engine, 424242, start, end, 500))
        out["trend"] = {
            "rows": sizes.trend_days * 86400,
            "days": sizes.trend_days,
            "load_avg": la,
            "load_s": round(load_s, 1),
            "refresh_s": round(refresh_s, 1),
            "cagg_p50_ms": round(1000 * statistics.median(cagg), 1),
            "cagg_max_ms": round(1000 * max(cagg), 1),
            "cagg_compressed_p50_ms": round(1000 * statistics.median(cagg_col), 1),
            "raw_p50_ms": round(1000 * statistics.median(raw_row), 1),
            "raw_compressed_p50_ms": round(1000 * statistics.median(raw_col), 1),
            "speedup": round(statistics.median(raw_row) / statistics.median(cagg), 1),
            "compress_month_s": round(compress_month_s, 1),
        }
        print("timescale: trend", json.dumps(out["trend"]), flush=True)

        # a week of the reference station, row store then columnstore
        with engine.begin() as conn:
            conn.exec_driver_sql("TRUNCATE sample")
        t = time.perf_counter()
        rows, _first = _reference_week(engine, sizes.compression_hours)
        load_s = time.perf_counter() - t
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE sample")
            before = conn.exec_driver_sql("SELECT hypertable_size('sample')").scalar()
        t = time.perf_counter()
        run_job(engine, jobs[("policy_compression", "sample")])  # every chunk is older than 7 days
        compress_s = time.perf_counter() - t
        with engine.begin() as conn:
            after = conn.exec_driver_sql("SELECT hypertable_size('sample')").scalar()
            chunks = conn.exec_driver_sql(
                "SELECT count(*), count(*) FILTER (WHERE is_compressed) FROM timescaledb_information.chunks "
                "WHERE hypertable_name = 'sample'"
            ).one()
        out["compression"] = {
            "rows": rows,
            "points": 32,
            "hours": sizes.compression_hours,
            "chunks": chunks[0],
            "compressed_chunks": chunks[1],
            "load_s": round(load_s, 1),
            "compress_s": round(compress_s, 1),
            "bytes_before": before,
            "bytes_after": after,
            "bytes_per_sample_before": round(before / rows, 2),
            "bytes_per_sample_after": round(after / rows, 2),
            "ratio": round(before / after, 1),
        }
        print("timescale: compression", json.dumps(out["compression"]), flush=True)
    finally:
        engine.dispose()
        drop_db(name, TS_ADMIN)
    out["load_avg_end"] = load()
    return out


def timescale_markdown(ts: dict) -> list[str]:
    lines = [
        "",
        "## TimescaleDB 2.28.3 (PostgreSQL 15, same run)",
        "",
        "| ingest into | rows | bare binary COPY rows/s (floor) | pumpwatch write_samples rows/s | ratio (goal ≥ 0.8) "
        "| load |",
        "|---|---|---|---|---|---|",
    ]
    for label, key in (
        ("plain `sample` table", "ingest_postgresql"),
        ("`sample` hypertable", "ingest_timescaledb"),
    ):
        i = ts.get(key)
        if i:
            lines.append(
                f"| {label} | {i['rows']:,} | {i['floor_bare_copy_rows_per_s']:,} | {i['pumpwatch_rows_per_s']:,} "
                f"| **{i['ratio']}** | {i['load_avg'][0]} |"
            )
    t = ts.get("trend")
    if t:
        lines += [
            "",
            f"{t.get('days', 30)}-day trend of one point ({t['rows']:,} rows of 1-s data), 500 buckets:",
            "",
            "| from the hourly continuous aggregate p50 ms (goal ≤ 200) | max ms | raw p50 ms | speed-up "
            "| aggregate, chunks compressed p50 ms | raw, chunks compressed p50 ms | refresh of the month s |",
            "|---|---|---|---|---|---|---|",
            f"| **{t['cagg_p50_ms']}** | {t['cagg_max_ms']} | {t['raw_p50_ms']} | {t['speedup']}× "
            f"| {t['cagg_compressed_p50_ms']} | {t['raw_compressed_p50_ms']} | {t['refresh_s']} |",
        ]
    c = ts.get("compression")
    if c:
        lines += [
            "",
            f"Compression, {c.get('hours', 168)} hours of one reference station ({c['points']} points at 1 Hz, "
            f"{c['rows']:,} samples, "
            f"{c['compressed_chunks']} of {c['chunks']} daily chunks compressed in {c['compress_s']} s):",
            "",
            "| bytes/sample before (row store + indexes) | after (columnstore) | ratio |",
            "|---|---|---|",
            f"| {c['bytes_per_sample_before']} | **{c['bytes_per_sample_after']}** | {c['ratio']}× |",
        ]
    return lines


# --- report ---------------------------------------------------------------------------------------------


def markdown(res: dict) -> str:
    lines = [
        f"# pumpwatch bench — {res['started_at']}",
        "",
        f"Machine: {res['machine']}; load average at start {res['load_avg_start']} (shared machine). "
        f"Command: `{res.get('command', 'make bench')}` ({res['elapsed_s']:.0f} s).",
        "",
    ]
    if res.get("collector"):
        lines += [
            "## Collector (Modbus TCP, one FC3 × 20 registers per station every 5 s, asyncio loop)",
            "",
            "| stations | polls/s (expected) | floor CPU µs/poll | pumpwatch CPU µs/poll | ratio (goal ≤ 1.3) "
            "| pumpwatch % of a core | late polls (goal 0) | poll p99 ≤ ms | memory/station kB (goal ≤ 50) | load |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
    for r in res.get("collector", []):
        f, p = r["floor"], r["pumpwatch"]
        if "error" in f or "error" in p:
            lines.append(f"| {r['stations']:,} | failed: {f.get('error', '')} {p.get('error', '')} |")
            continue
        lines.append(
            f"| {r['stations']:,} | {p['polls_per_s']:,} ({p['expected_polls_per_s']:,}) | {f['cpu_us_per_poll']} "
            f"| {p['cpu_us_per_poll']} | **{r['cpu_ratio']}** | {p['cpu_pct_of_core']} | {p['late_polls']} "
            f"| {p['poll_latency_p99_ms_le']} | {p['rss_per_station_kb']} | {r['load_avg'][0]} |"
        )
    b = res.get("collector_breakdown")
    if b:
        lines.append(
            f"\nOf pumpwatch's CPU per poll: decoding 20 points into Samples {b['decode_20_points_to_samples_us']} µs, "
            f"the live snapshot {b['live_snapshot_us']} µs; the rest is pymodbus's client and the event loop."
        )
    i = res.get("ingest")
    if i:
        lines += [
            "",
            "## Ingest into PostgreSQL",
            "",
            "| rows | batch | bare binary COPY rows/s (floor) | pumpwatch write_samples rows/s | ratio (goal ≥ 0.8) "
            "| rollup job rows/s |",
            "|---|---|---|---|---|---|",
            f"| {i['rows']:,} | {i['batch_rows']:,} | {i['floor_bare_copy_rows_per_s']:,} "
            f"| {i['pumpwatch_rows_per_s']:,} | **{i['ratio']}** | {i['rollup_rows_per_s']:,} |",
        ]
    a = res.get("alarms")
    if a:
        lines += [
            "",
            "## Sample → alarm stored (PostgreSQL)",
            "",
            "| stations | flood (events at once) | p50 ms | p99 ms (goal ≤ 1000) | max ms |",
            "|---|---|---|---|---|",
            f"| {a['stations']:,} | {a['flood_events_per_cycle']} | {a['p50_ms']} | **{a['p99_ms']}** "
            f"| {a['max_ms']} |",
        ]
    o = res.get("api")
    if o:
        lines += [
            "",
            f"## API, {o['stations']:,} stations, one worker ({o['concurrency']} clients at once, in-process ASGI, "
            f"1 ms loop-lag probe in the same loop; {o['open_alarms']:,} open alarms; an in-process collector "
            f"bringing {o.get('station_updates_per_s', 0):,} stations' new values a second)",
            "",
            "| endpoint | items | p50 ms | p99 ms (goal ≤ 100) | req/s (goal ≥ 150) "
            "| longest loop hold ms (goal ≤ 20) | longest GC pause ms | bytes |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for key, path in API_LISTS:
            e = o.get(key)
            if e:
                lines.append(
                    f"| `{path}` | {e['count']} | {e['p50_ms']} | **{e['p99_ms']}** | **{e['req_per_s_one_worker']}** "
                    f"| **{e['longest_loop_hold_ms']}** | {e.get('longest_gc_pause_ms', '–')} "
                    f"| {e['response_bytes']:,} |"
                )
        p = o.get("stations_all_pages")
        if p:
            lines.append(
                f"\nThe whole `/api/v1/stations` list in pages of 1,000: {p['stations']:,} stations in {p['pages']} "
                f"pages, {p['total_ms']} ms, the loop held at most {p['longest_loop_hold_ms']} ms."
            )
        st = o.get("stream")
        if st:
            lines.append(
                f"\nLive stream: {st['browsers']} browsers connecting at once all had their snapshot "
                f"({st['snapshot_bytes']:,} bytes) after {st['all_snapshots_ms']} ms ({st['ms_per_browser']} ms per "
                f"browser); the loop held at most {st['longest_loop_hold_ms']} ms."
            )
    ts = res.get("timescale")
    if ts:
        lines += timescale_markdown(ts)
    t = res.get("trend")
    if t:
        lines += [
            "",
            f"## {t.get('days', 30)}-day trend of one point ({t['rows']:,} rows of 1-s data), 500 buckets",
            "",
            "| from rollups p50 ms (goal ≤ 200) | max ms | raw samples p50 ms (floor to beat) | speed-up "
            "| rollup job for the month s |",
            "|---|---|---|---|---|",
            f"| **{t['p50_ms']}** | {t['max_ms']} | {t['raw_p50_ms']} | {t['speedup']}× | {t['rollup_job_s']} |",
        ]
    r = res.get("reports")
    if r:
        w, c = r["wall_s"], r["cpu_s"]
        lines += [
            "",
            f"## Operation reports: a month ({r['period']}) of the city's {r['stations']} stations, from "
            f"{r['rollup_rows']:,} hourly rollup rows",
            "",
            "| | compute | xlsx | CSV | PDF | compute + xlsx (goal ≤ 10 s) | load |",
            "|---|---|---|---|---|---|---|",
            f"| wall s | {w['compute']} | {w['xlsx']} | {w['csv']} | {w.get('pdf')} | **{r['compute_and_xlsx_s']}** "
            f"| {r.get('load')} |",
            f"| CPU s (this process) | {c['compute']} | {c['xlsx']} | {c['csv']} | {c.get('pdf')} "
            f"| {round(c['compute'] + c['xlsx'], 2)} | |",
        ]
    return "\n".join(lines) + "\n"


SECTIONS = ("collector", "ingest", "alarms", "trend", "timescale", "api", "reports")


async def main(
    only: set[str] | None = None, sizes: Sizes = FULL, results: Path = RESULTS, *, echo: bool = True
) -> dict:
    """Run the sections (`only`, or all) at `sizes`; write `results`/latest.{json,md} (latest-<sections>
    for a partial run, so a full run's figures stay). Returns the results."""
    only = only or set(filter(None, os.environ.get("BENCH_ONLY", "").split(",")))
    res: dict = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {os.cpu_count()} CPU, Python {platform.python_version()}",
        "load_avg_start": load(),
        "command": "make bench" if not only else f"python -m bench.run --only {','.join(sorted(only))}",
    }
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pumpwatch-bench-") as d:
        tmp = Path(d)
        if not only or "collector" in only:
            res["collector"] = await collector_section(tmp, sizes)
            res["collector_breakdown"] = collector_breakdown(tmp)
        name, url = create_db() if not only or only & {"ingest", "alarms", "trend"} else (None, "")
        try:
            if not only or "ingest" in only:
                res["ingest"] = await asyncio.to_thread(ingest_section, url, sizes=sizes)
                print("ingest:", json.dumps(res["ingest"]), flush=True)
            if not only or "alarms" in only:
                res["alarms"] = await alarm_section(url, tmp, sizes)
                print("alarms:", json.dumps(res["alarms"]), flush=True)
            if not only or "trend" in only:
                res["trend"] = await asyncio.to_thread(trend_section, url, sizes)
                print("trend:", json.dumps(res["trend"]), flush=True)
        finally:
            if name is not None:
                drop_db(name)
        if not only or "timescale" in only:
            res["timescale"] = await asyncio.to_thread(timescale_section, sizes)
            print("timescale:", json.dumps(res["timescale"]), flush=True)
        if not only or "api" in only:
            res["api"] = await api_section(tmp, sizes)
            print("api:", json.dumps(res["api"]), flush=True)
        if not only or "reports" in only:
            from bench.reports_part import report_section, smoke_section

            rname, rurl = create_db()
            try:  # the smoke size: a day of the city, not a month
                section = smoke_section if sizes is SMOKE else report_section
                res["reports"] = await asyncio.to_thread(section, rurl)
                res["reports"]["load"] = load()
            finally:
                drop_db(rname)
            print("reports:", json.dumps(res["reports"]), flush=True)
    res["elapsed_s"] = round(time.monotonic() - t0, 1)
    res["load_avg_end"] = load()
    results.mkdir(parents=True, exist_ok=True)
    stem = "latest" if not only else "latest-" + "-".join(sorted(only))  # a partial run keeps the full one
    (results / f"{stem}.json").write_text(json.dumps(res, indent=2) + "\n")
    (results / f"{stem}.md").write_text(markdown(res))
    if echo:
        print(markdown(res))
    return res


if __name__ == "__main__":
    import argparse
    import logging

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--only", default="", help=f"comma-separated sections of {', '.join(SECTIONS)} (default: all)"
    )
    only = set(filter(None, ap.parse_args().only.split(",")))
    if only - set(SECTIONS):
        ap.error(f"unknown section(s): {', '.join(sorted(only - set(SECTIONS)))}")
    logging.basicConfig(level="WARNING")
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    asyncio.run(main(only))
