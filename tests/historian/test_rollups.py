"""Long trends agree with the raw samples on both PostgreSQL shapes: from the plain rollups (kept by the
rollup job) and from TimescaleDB's hourly continuous aggregate (refreshed by its policy's job)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from pumpwatch.core import historian
from pumpwatch.core.db import make_engine, upgrade
from pumpwatch.core.historian_scale import Rollups
from pumpwatch.core.timescale import job_health, run_job, timescale_active

pytestmark = pytest.mark.postgres

# a month ago: inside the window TimescaleDB's refresh policies keep (a fixed date would age out of it)
T0 = (datetime.now(UTC) - timedelta(days=30)).replace(hour=0, minute=0, second=0, microsecond=0)


def _rows(pid: int, start: datetime, seconds: int, seed: int) -> list[tuple]:
    rnd = random.Random(seed)
    out = []
    for i in range(seconds):
        q = 0 if rnd.random() > 0.05 else 3
        out.append((pid, start + timedelta(seconds=i), None if q else round(rnd.uniform(0, 5), 3), q))
    return out


def _expected(rows: list[tuple], start: datetime, width: timedelta) -> dict[datetime, tuple]:
    acc: dict[datetime, list] = {}
    for _pid, t, v, q in rows:
        b = start + ((t - start) // width) * width
        a = acc.setdefault(b, [0.0, None, None, 0, 0])
        a[3] += 1
        if q == 0:
            a[0] += v
            a[1] = v if a[1] is None else min(a[1], v)
            a[2] = v if a[2] is None else max(a[2], v)
            a[4] += 1
    return {b: (s / g if g else None, lo, hi, n, g) for b, (s, lo, hi, n, g) in acc.items()}


def _got(points: list[historian.HistoryPoint]) -> dict[datetime, tuple]:
    return {p.t: (p.value, p.min, p.max, p.count, p.good) for p in points}


def _same(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for b, (v, lo, hi, n, g) in want.items():
        gv, glo, ghi, gn, gg = got[b]
        assert (gn, gg, glo, ghi) == (n, g, lo, hi), b
        assert (gv is None and v is None) or abs(gv - v) < 1e-9, b


def refresh_caggs(engine) -> int:
    """Run the continuous aggregates' refresh policies now (what the background scheduler does)."""
    jobs = [j for j in job_health(engine)[1] if j.proc == "policy_refresh_continuous_aggregate"]
    for j in jobs:
        run_job(engine, j.job_id)
    return len(jobs)


def test_trend_from_rollups_equals_raw_and_reads_the_unrolled_tail(pg_both_url: str) -> None:
    engine = make_engine(pg_both_url)
    try:
        upgrade(engine)
        timescale = timescale_active(engine)
        rows = _rows(7, T0, 3 * 3600, seed=1)
        other = _rows(8, T0, 3 * 3600, seed=2)  # another point: must not leak into point 7's trend
        historian.write_samples(engine, rows + other)
        roll = Rollups()
        roll.note(rows + other)
        if timescale:  # the aggregates, and not the plain rollups, serve long trends
            assert refresh_caggs(engine) == 2  # hourly and daily (one tenant time zone)
        else:
            assert roll.run(engine, everything=True) == 2 * 180
        # 2 h 50 min later more data arrives that no rollup has seen yet
        late = _rows(7, T0 + timedelta(hours=3), 600, seed=3)
        historian.write_samples(engine, late)

        # Hour-aligned 4-hour window, 5-minute buckets: minute rollups + raw tail, exact.
        end = T0 + timedelta(hours=4)
        got = historian.read_history(engine, 7, T0, end, max_points=48)
        _same(_got(got), _expected(rows + late, T0, timedelta(minutes=5)))
        # 1-hour buckets come from the hourly rollup
        got = historian.read_history(engine, 7, T0, end, max_points=4)
        _same(_got(got), _expected(rows + late, T0, timedelta(hours=1)))
        # An unaligned start: the edge comes from raw samples, nothing is counted twice or lost.
        s = T0 + timedelta(minutes=7, seconds=13)
        got = historian.read_history(engine, 7, s, end, max_points=40)
        assert sum(p.count for p in got) == sum(1 for r in rows + late if r[1] >= s)
        # Replaying a batch (a spool drained twice) and rolling up again changes nothing.
        historian.write_samples(engine, rows[:500])
        roll.note(rows[:500])
        if timescale:
            refresh_caggs(engine)
        else:
            roll.run(engine, everything=True)
        got = historian.read_history(engine, 7, T0, end, max_points=48)
        _same(_got(got), _expected(rows + late, T0, timedelta(minutes=5)))
    finally:
        engine.dispose()


def test_newest_minute_waits_until_the_writer_is_past_it() -> None:
    roll = Rollups()
    roll.note([(1, T0 + timedelta(seconds=30), 1.0, 0)])
    assert roll.due() == []  # still filling
    roll.note([(1, T0 + timedelta(seconds=61), 1.0, 0)])
    first = (T0 - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(minutes=1)
    assert roll.due() == [first]
    assert roll.due(everything=True) == [first + 1]
