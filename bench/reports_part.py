"""Bench section `reports`: a month's operation report of the seed city's 216 stations (both tenants), from
the hourly rollups of plain PostgreSQL, as the API and `pumpwatch report` compute it.

The history is written straight into `sample_1h` (a month of hourly rollup rows for every point a report
reads: 2 million rows, the shape the rollup job leaves), so the figure is the report's own cost, not the
ingest's. Timed: computing the reports (`build_report`), rendering xlsx, CSV and PDF. Goal: computing plus
xlsx under 10 s. `smoke(url)` is the same on two days, for `make test`.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from pumpwatch.core import historian
from pumpwatch.core.config.loader import Fleet, load_fleet
from pumpwatch.core.db import make_engine, upgrade
from pumpwatch.reports.compute import build_report
from pumpwatch.reports.definitions import load_definitions
from pumpwatch.reports.periods import Period
from pumpwatch.reports.render_csv import render_csv
from pumpwatch.reports.render_pdf import render_pdf
from pumpwatch.reports.render_xlsx import render_xlsx

REPO = Path(__file__).resolve().parent.parent
CITY = REPO / "deploy" / "config" / "city"
STATE = ("_running", "hwl_float", "mains_failed")
COUNTER = ("_starts", "rain_total_mm", "pumped_volume_m3", "energy_kwh")
ANALOG = (
    "wet_well_level_m", "well_level_1_m", "inner_level_m", "outer_level_m", "influent_flow_m3_h",
    "effluent_flow_m3_h", "rainfall_mm_h", "effluent_bod_mg_l", "effluent_ss_mg_l", "do_mg_l",
)  # fmt: skip


def _kind(name: str) -> str | None:
    if name.endswith("_running") or name in STATE:
        return "state"
    if name.endswith("_starts") or name in COUNTER:
        return "counter"
    return "analog" if name in ANALOG else None


def fill_rollups(engine, fleet: Fleet, start: datetime, hours: int, seed: int = 19) -> int:
    """Hourly rollup rows for every report point of the fleet from `start`; returns how many."""
    ids = historian.sync_catalog(engine, fleet)
    rnd = random.Random(seed)
    rows = []
    for (sid, name), pid in ids.items():
        kind = _kind(name)
        if kind is None:
            continue
        n = int(3600 / min(c.expected_interval_s for c in fleet.controllers_of(sid)))
        total = rnd.randint(0, 10_000)
        for h in range(hours):
            at = start + timedelta(hours=h)
            if kind == "state":
                frac = 0.0 if name == "mains_failed" and rnd.random() > 0.01 else rnd.uniform(0, 0.4)
                on = round(frac * n)
                rows.append((pid, at, n, n, float(on), 0.0, 1.0 if on else 0.0))
            elif kind == "counter":
                rise = rnd.randint(0, 6)
                rows.append((pid, at, n, n, float(total * n), float(total), float(total + rise)))
                total += rise
            else:
                lo, hi = sorted((rnd.uniform(0.3, 1.2), rnd.uniform(0.3, 1.2)))
                rows.append((pid, at, n, n, (lo + hi) / 2 * n, lo, hi))
    raw = engine.raw_connection()
    try:
        with (
            raw.cursor() as cur,
            cur.copy(
                "COPY sample_1h (point_id, bucket_at, n, good, sum, min, max) FROM STDIN (FORMAT BINARY)"
            ) as copy,
        ):
            copy.set_types(["int4", "timestamptz", "int4", "int4", "float8", "float8", "float8"])
            for r in rows:
                copy.write_row(r)
        raw.commit()
    finally:
        raw.close()
    return len(rows)


def _timed(fn, *args):
    """(result, wall s, CPU s of this process): the machine is shared, so both are kept (the database
    server's own CPU is in the wall time only)."""
    w, c = time.perf_counter(), time.process_time()
    r = fn(*args)
    return r, time.perf_counter() - w, time.process_time() - c


def run(url: str, period: Period, *, pdf: bool = True) -> dict:
    upgrade(url)
    engine = make_engine(url)
    fleet = load_fleet(CITY)
    defs = load_definitions(REPO / "deploy" / "config" / "reports")
    hours = int((period.end - period.start).total_seconds() // 3600)
    n, fill_s, _ = _timed(fill_rollups, engine, fleet, period.start, hours)
    now = period.end + timedelta(hours=6)
    out: dict = {"rollup_rows": n, "fill_s": round(fill_s, 2), "period": period.name, "tenants": {}}
    acc = dict.fromkeys(("compute", "xlsx", "csv", "pdf"), 0.0)
    cpu = dict.fromkeys(acc, 0.0)
    for tenant in sorted(fleet.tenants):
        if fleet.tenants[tenant].centre:
            continue
        rep, w, c = _timed(build_report, engine, fleet, defs, tenant, period, now)
        acc["compute"] += w
        cpu["compute"] += c
        sizes = {}
        for fmt, fn in (("xlsx", render_xlsx), ("csv", render_csv), ("pdf", render_pdf)):
            if fmt == "pdf" and not pdf:
                continue
            data, w, c = _timed(fn, rep, "ja") if fmt != "csv" else _timed(fn, rep)
            acc[fmt] += w
            cpu[fmt] += c
            sizes[f"{fmt}_bytes"] = len(data)
        out["tenants"][tenant] = {
            "stations": len(rep.stations), "source": sorted({s.source for s in rep.stations}), **sizes,
        }  # fmt: skip
    engine.dispose()
    out["stations"] = sum(t["stations"] for t in out["tenants"].values())
    out["wall_s"] = {k: round(v, 2) for k, v in acc.items()}
    out["cpu_s"] = {k: round(v, 2) for k, v in cpu.items()}
    out["compute_and_xlsx_s"] = round(acc["compute"] + acc["xlsx"], 2)
    out["goal_s"] = 10.0
    return out


def report_section(url: str) -> dict:
    """A whole month (November 2026, JST) of the city."""
    return run(url, Period("month", date(2026, 11, 1), "Asia/Tokyo"))


def smoke_section(url: str) -> dict:
    """`make test`'s smoke of this section: one day (a day's report of the city), the same code path."""
    return run(url, Period("day", date(2026, 11, 1), "Asia/Tokyo"))


def smoke(url: str) -> dict:
    """Two days of the city, the month's report of them (the rest of the month is gaps): seconds."""
    p = Period("month", date(2026, 11, 1), "Asia/Tokyo")
    short = Period("day", date(2026, 11, 1), "Asia/Tokyo")
    upgrade(url)
    engine = make_engine(url)
    fleet = load_fleet(CITY)
    defs = load_definitions(REPO / "deploy" / "config" / "reports")
    n = fill_rollups(engine, fleet, short.start, 48)
    t0 = time.perf_counter()
    reps = [build_report(engine, fleet, defs, t, p, p.end) for t in ("hanamizu", "yamabe")]
    xs = [render_xlsx(r, "ja") for r in reps]
    elapsed = time.perf_counter() - t0
    engine.dispose()
    return {"rollup_rows": n, "stations": sum(len(r.stations) for r in reps), "elapsed_s": elapsed,
            "reports": reps, "xlsx": xs, "at": datetime.now(UTC)}  # fmt: skip
