"""TimescaleDB for real (2.28.3 on PostgreSQL 15): every feature pumpwatch sets up, exercised.

TimescaleDB's policies reason about the database's own `now()`, so these tests place data relative to it
(no sleeping: each policy runs when the test says, `CALL run_job`; the template pauses them for the
background scheduler, tests.services).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import Engine, text

from pumpwatch.api.main import create_app
from pumpwatch.api.webconfig import WebConfig
from pumpwatch.app.system import System, historian_setup
from pumpwatch.core import historian
from pumpwatch.core.clock import FakeClock
from pumpwatch.core.config import load_fleet
from pumpwatch.core.db import make_engine, rls, upgrade
from pumpwatch.core.historian_scale import Rollups
from pumpwatch.core.spool import Spool
from pumpwatch.core.timescale import (
    FEATURES,
    JobWatch,
    TimescalePlan,
    daily_name,
    ensure_timescale,
    job_health,
    run_job,
)
from pumpwatch.core.writer import HistorianWriter, encode_rows
from tests.auth import add_user, bearer, token
from tests.conftest import DEMO_FLEET

pytestmark = pytest.mark.postgres

JST = timezone(timedelta(hours=9))
HOUR = timedelta(hours=1)


@pytest.fixture
def engine(ts_url: str) -> Iterator[Engine]:
    eng = make_engine(ts_url)
    upgrade(eng)  # a no-op: the template is migrated and set up
    try:
        yield eng
    finally:
        eng.dispose()


def db_now(engine: Engine) -> datetime:
    with engine.connect() as conn:
        return conn.execute(text("SELECT now()")).scalar_one()


def job(engine: Engine, proc: str, relation: str = "sample") -> int:
    (j,) = [j for j in job_health(engine)[1] if j.proc == proc and j.relation == relation]
    return j.job_id


def refresh_caggs(engine: Engine) -> None:
    for j in job_health(engine)[1]:
        if j.proc == "policy_refresh_continuous_aggregate":
            run_job(engine, j.job_id)


def chunks(engine: Engine) -> list[tuple[datetime, datetime, bool]]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text(
                    "SELECT range_start, range_end, is_compressed FROM timescaledb_information.chunks "
                    "WHERE hypertable_name = 'sample' ORDER BY range_start"
                )
            )
        ]


def minutes(pid: int, start: datetime, n: int, seed: int) -> list[tuple]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        q = 0 if rnd.random() > 0.05 else 3
        out.append((pid, start + timedelta(minutes=i), None if q else round(rnd.uniform(0, 5), 3), q))
    return out


def expected(rows: list[tuple], start: datetime, width: timedelta) -> dict[datetime, tuple]:
    acc: dict[datetime, list] = {}
    for _pid, t, v, q in rows:
        a = acc.setdefault(start + ((t - start) // width) * width, [0.0, None, None, 0, 0])
        a[3] += 1
        if q == 0:
            a[0] += v
            a[1] = v if a[1] is None else min(a[1], v)
            a[2] = v if a[2] is None else max(a[2], v)
            a[4] += 1
    return {b: (s / g if g else None, lo, hi, n, g) for b, (s, lo, hi, n, g) in acc.items()}


def same(points: list[historian.HistoryPoint], want: dict[datetime, tuple]) -> None:
    got = {p.t: (p.value, p.min, p.max, p.count, p.good) for p in points}
    assert got.keys() == want.keys()
    for b, (v, lo, hi, n, g) in want.items():
        gv, glo, ghi, gn, gg = got[b]
        assert (gn, gg, glo, ghi) == (n, g, lo, hi), b
        assert (gv is None and v is None) or abs(gv - v) < 1e-9, b


def statements(engine: Engine) -> list[str]:
    """Every SQL statement `engine` sends from now on."""
    from sqlalchemy import event

    seen: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda c, cur, sql, *a: seen.append(sql))
    return seen


# --- set-up -------------------------------------------------------------------------------------------------


def test_set_up_is_complete_idempotent_and_follows_the_plan(engine: Engine) -> None:
    f = ensure_timescale(engine)  # again, on the template's finished set-up
    assert f.shape == "timescaledb" and f.version == "2.28.3" and f.license == "timescale"
    assert f.missing == {} and set(f.present) == set(FEATURES)
    assert f.trend_source == "cagg" and not f.rollup_job and f.problems == []
    with engine.connect() as conn:
        q = lambda sql: conn.execute(text(sql)).all()  # noqa: E731
        assert q(
            "SELECT time_interval FROM timescaledb_information.dimensions WHERE hypertable_name = 'sample'"
        ) == [(timedelta(days=1),)]
        assert q(
            "SELECT segmentby, orderby FROM timescaledb_information.hypertable_columnstore_settings "
            "WHERE hypertable = 'sample'::regclass"
        ) == [("point_id", "observed_at")]
        jobs = dict(
            q("SELECT proc_name, config FROM timescaledb_information.jobs WHERE hypertable_name = 'sample'")
        )
        assert jobs["policy_compression"]["compress_after"] == "7 days"
        assert jobs["policy_retention"]["drop_after"] == "400 days"
        caggs = dict(
            q("SELECT view_name, materialized_only FROM timescaledb_information.continuous_aggregates")
        )
        assert caggs == {"sample_1h_cagg": False, daily_name("Asia/Tokyo"): False}  # real-time
        # no index beyond the key and the BRIN one (the drift test compares the rest)
        assert {r[0] for r in q("SELECT indexname FROM pg_indexes WHERE tablename = 'sample'")} == {
            "pk_sample",
            "ix_sample_observed_at",
        }
    # another plan replaces the policies instead of keeping the old ones silently
    f2 = ensure_timescale(engine, TimescalePlan(retain_days=90, compress_after_days=3))
    assert f2.missing == {}
    with engine.connect() as conn:
        jobs = dict(
            conn.execute(
                text(
                    "SELECT proc_name, config FROM timescaledb_information.jobs "
                    "WHERE hypertable_name = 'sample'"
                )
            ).all()
        )
        assert jobs["policy_compression"]["compress_after"] == "3 days"
        assert jobs["policy_retention"]["drop_after"] == "90 days"
        refresh = [
            j["start_offset"]
            for (j,) in conn.execute(
                text(
                    "SELECT config FROM timescaledb_information.jobs "
                    "WHERE proc_name = 'policy_refresh_continuous_aggregate'"
                )
            )
        ]
        assert refresh == ["89 days", "89 days"]  # a day short of the retention, which it follows


def test_apache_licence_is_partial_set_up_reported_and_trends_still_served(ts_apache_url: str) -> None:
    """timescaledb.license = 'apache' (compression, continuous aggregates and policies are Timescale
    License features): the system says which features are missing and why, keeps the plain rollups, and a
    30-day trend through the API answers (it was an HTTP 500 from a continuous aggregate never made)."""
    fleet = load_fleet(DEMO_FLEET)
    t0 = datetime(2026, 11, 1, tzinfo=UTC)

    async def body() -> None:
        system = await System.prepare(fleet, ts_apache_url, FakeClock(t0 + timedelta(days=30)))
        try:
            f = system.historian_features
            assert f is not None and f.shape == "timescaledb" and f.license == "apache"
            assert set(f.missing) == {"compression", "retention", "cagg_1h", "cagg_1d"}
            assert all("apache" in why for why in f.missing.values()), f.missing
            assert {"timescaledb", "hypertable", "rollups"} <= set(f.present)
            assert f.trend_source == "rollups" and f.rollup_job
            assert len(f.problems) == 4 and "compression missing" in f.problems[0]
            with system.engine.connect() as conn:
                assert conn.execute(text("SELECT to_regclass('sample_1h_cagg')")).scalar() is None
            # the collector keeps the plain rollups (their job runs), which then serve the trend
            await system.start_collecting(stations=[])
            assert system.writer is not None and system.writer.rollups is not None
            pid = system.catalog[("KITA-MP-01", "wet_well_level_m")]
            rows = [(pid, t0 + timedelta(minutes=m), float(m % 60), 0) for m in range(30 * 1440)]
            for i in range(0, len(rows), 20_000):
                historian.write_samples(system.engine, rows[i : i + 20_000])
            job = Rollups()  # the shard's own job covers its stations (here: none); this one all points
            job.note(rows)
            job.run(system.engine, everything=True)
            seen = statements(system.engine)
            add_user(system.engine, "centre", [(t, "viewer") for t in fleet.tenants])
            # /metrics on the API's port needs its token (api.exposure)
            ctx = system.api_context(web=WebConfig(metrics_token="scrape-token"))
            transport = httpx.ASGITransport(app=create_app(ctx))
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                h = bearer(await token(c, "centre"))
                r = await c.get(
                    "/api/v1/stations/KITA-MP-01/points/wet_well_level_m/history",
                    params={"start": t0.isoformat(), "end": (t0 + timedelta(days=30)).isoformat()},
                    headers=h,
                )
                assert r.status_code == 200, r.text
                data = r.json()["data"]
                assert sum(p["count"] for p in data) == len(rows) and len(data) == 500
                assert any("FROM sample_1h" in s for s in seen)  # the plain hourly rollup
                assert not any("sample_1h_cagg" in s for s in seen if "to_regclass" not in s)
                # what is missing is shown where operators look
                ready = (await c.get("/readyz")).json()
                assert set(ready["detail"]["historian_features"]["missing"]) == set(f.missing)
                status = (await c.get("/api/v1/system/status", headers=h)).json()
                assert status["process"]["historian_features"]["trend_source"] == "rollups"
                metrics = (await c.get("/metrics", headers={"Authorization": "Bearer scrape-token"})).text
                assert 'pumpwatch_historian_feature{feature="compression"} 0.0' in metrics
                assert 'pumpwatch_historian_feature{feature="hypertable"} 1.0' in metrics
        finally:
            await system.stop()

    asyncio.run(body())


def test_installed_but_not_preloaded_is_plain_postgres_and_says_so(pg_url: str) -> None:
    """This machine's main cluster has TimescaleDB's files but does not preload it: `CREATE EXTENSION`
    would end the connection (FATAL), so it is not tried; the plain shape, nothing missing, one note."""
    eng = make_engine(pg_url)
    try:
        upgrade(eng)
        with eng.connect() as conn:
            if not conn.execute(
                text("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
            ).scalar():
                pytest.skip("TimescaleDB is not installed on this server at all")
        f = historian_setup(eng)
        assert (f.shape, f.present, f.missing, f.trend_source) == ("postgresql", ["rollups"], {}, "rollups")
        assert f.note is not None and "shared_preload_libraries" in f.note
        with eng.connect() as conn:
            assert (
                conn.execute(text("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'")).scalar()
                == 0
            )
    finally:
        eng.dispose()


# --- compression, late samples, replays ---------------------------------------------------------------------


def test_compressed_chunks_serve_trends_and_take_late_samples_and_replays(
    engine: Engine, tmp_path: Path
) -> None:
    now = db_now(engine)
    start = (now - timedelta(days=10)).replace(minute=0, second=0, microsecond=0)
    a = minutes(11, start, 10 * 1440, seed=1)  # ten days of one sample a minute, two points
    b = minutes(12, start, 10 * 1440, seed=2)
    historian.write_samples(engine, a + b)
    assert not any(c for *_, c in chunks(engine))
    with engine.connect() as conn:
        raw_bytes = conn.execute(text("SELECT hypertable_size('sample')")).scalar()

    run_job(engine, job(engine, "policy_compression"))
    cutoff = now - timedelta(days=7)
    ch = chunks(engine)
    assert [c for lo, hi, c in ch if hi <= cutoff] and all(c for lo, hi, c in ch if hi <= cutoff)
    assert not any(c for lo, hi, c in ch if hi > cutoff)  # the newest week stays row-store
    with engine.connect() as conn:
        after = conn.execute(text("SELECT hypertable_size('sample')")).scalar()
    assert after < raw_bytes  # (the figures per sample: `python -m bench.run --only timescale`)

    # trends across compressed and uncompressed chunks: raw, bucketed raw, and the aggregate agree
    end = start + timedelta(days=10)
    for max_points in (240, 120):  # 1-hour and 2-hour buckets (whole aggregate periods)
        want = expected(a, start, (end - start) / max_points)
        same(historian.read_history(engine, 11, start, end, max_points, use_rollups=False), want)
        same(historian.read_history(engine, 11, start, end, max_points), want)  # real-time aggregate
    refresh_caggs(engine)
    seen = statements(engine)
    same(historian.read_history(engine, 11, start, end, 240), expected(a, start, HOUR))
    assert any("FROM sample_1h_cagg" in s for s in seen)

    # a late sample into a compressed chunk lands; a replayed instant keeps the first value
    old = start + timedelta(days=1, seconds=30)  # between two stored minutes, in a compressed chunk
    stored = a[1440]
    assert historian.write_samples(engine, [(11, old, 99.0, 0), (11, stored[1], -1.0, 0)]) == 2
    got = historian.read_history(engine, 11, old - timedelta(minutes=1), old + timedelta(minutes=1))
    assert [(p.t, p.value) for p in got] == [(stored[1], stored[2]), (old, 99.0), (a[1441][1], a[1441][2])]
    # ... and reaches the aggregate at its next refresh (the refresh window reaches back 399 days)
    refresh_caggs(engine)
    day = historian.read_history(engine, 11, start + timedelta(days=1), start + timedelta(days=2), 24)
    assert day[0].count == 61 and day[0].max == 99.0

    # an ingest replay (a spool drained after an outage) overlapping stored rows, in both chunk kinds:
    # every row once, the first value of each instant kept
    spool = Spool(tmp_path / "spool")
    overlap = [(p, t, -5.0, 0) for p, t, _v, _q in a[-2000:-1000]]  # stored (newest days, row-store)
    overlap += [(p, t, -5.0, 0) for p, t, _v, _q in b[100:300]]  # stored, compressed
    fresh = [(11, end + timedelta(minutes=m), 1.0, 0) for m in range(50)]  # new
    spool.append(encode_rows(overlap + fresh), len(overlap) + len(fresh))
    writer = HistorianWriter(engine, {}, spool=spool)
    asyncio.run(writer.flush())
    spool.close()
    assert writer.written == len(overlap) + len(fresh) and writer.spooled == 0
    with engine.connect() as conn:
        n, neg = conn.execute(
            text("SELECT count(*), count(*) FILTER (WHERE value = -5) FROM sample WHERE point_id IN (11, 12)")
        ).one()
    assert (n, neg) == (len(a) + len(b) + 1 + len(fresh), 0)
    assert historian.read_latest(engine, [11])[11][0] == fresh[-1][1]


# --- retention ----------------------------------------------------------------------------------------------


def test_retention_drops_old_chunks_and_keeps_their_aggregates(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = TimescalePlan(retain_days=30)
    assert ensure_timescale(engine, plan).missing == {}
    monkeypatch.setattr(historian, "_CAGG_PLAN", plan)  # the reader knows the plan set up
    now = db_now(engine)
    old = (now - timedelta(days=35)).replace(hour=0, minute=0, second=0, microsecond=0)
    young = (now - timedelta(days=5)).replace(hour=0, minute=0, second=0, microsecond=0)
    rows = minutes(21, old, 1440, seed=3) + minutes(21, young, 1440, seed=4)
    historian.write_samples(engine, rows)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        # materialized while it was young (here: by hand, as the policy did back then)
        conn.execute(
            text("CALL refresh_continuous_aggregate('sample_1h_cagg', :a, :b)"),
            {"a": old, "b": old + timedelta(days=1)},
        )
    run_job(engine, job(engine, "policy_retention"))
    assert all(lo >= now - timedelta(days=31) for lo, _hi, _c in chunks(engine))  # the old chunk is gone
    refresh_caggs(engine)  # its window (29 days) never reaches the dropped region: nothing is emptied
    with engine.connect() as conn:
        assert (
            conn.execute(text("SELECT count(*) FROM sample WHERE observed_at < :t"), {"t": young}).scalar()
            == 0
        )
        kept = conn.execute(
            text("SELECT sum(n) FROM sample_1h_cagg WHERE point_id = 21 AND bucket_at < :t"), {"t": young}
        ).scalar()
    assert kept == 1440  # the aggregates outlive the raw samples
    got = historian.read_history(engine, 21, old, old + timedelta(days=1), 24)
    assert sum(p.count for p in got) == 1440 and len(got) == 24


# --- continuous aggregates ----------------------------------------------------------------------------------


def _catalog(engine: Engine, tenants: dict[str, str]) -> dict[str, int]:
    """One station with one point per tenant (id → time zone); returns tenant → point id."""
    out = {}
    with engine.begin() as conn:
        for tid, tz in tenants.items():
            conn.execute(
                text("INSERT INTO tenant (id, name, timezone) VALUES (:t, :t, :tz)"), {"t": tid, "tz": tz}
            )
            conn.execute(
                text(
                    "INSERT INTO station (id, tenant_id, name, kind, updated_at) "
                    "VALUES (:s, :t, :s, 'manhole_pump', now())"
                ),
                {"s": f"{tid}-1", "t": tid},
            )
            out[tid] = conn.execute(
                text(
                    "INSERT INTO point (station_id, name, kind) VALUES (:s, 'level_m', 'analog') RETURNING id"
                ),
                {"s": f"{tid}-1"},
            ).scalar_one()
    return out


def test_daily_aggregates_start_days_at_the_tenants_midnight(engine: Engine) -> None:
    pids = _catalog(engine, {"kita": "Asia/Tokyo", "york": "Europe/London"})
    f = ensure_timescale(engine)  # a second time zone: a second daily aggregate
    assert f.missing == {} and f.day_timezones == ["Asia/Tokyo", "Europe/London"]
    d = (datetime.now(JST) - timedelta(days=20)).date()  # inside the refresh window
    day = datetime(d.year, d.month, d.day, tzinfo=JST)
    at = [day + timedelta(hours=23, minutes=30), day + timedelta(hours=24, minutes=30)]  # 23:30, 00:30 JST
    historian.write_samples(engine, [(pid, t, 1.0, 0) for pid in pids.values() for t in at])
    london_day = datetime(d.year, d.month, d.day, tzinfo=ZoneInfo("Europe/London"))

    def days(relation: str, pid: int) -> dict[datetime, int]:
        with engine.connect() as conn:
            sql = f"SELECT bucket_at, n FROM {relation} WHERE point_id = :p ORDER BY 1"
            return {b: n for b, n in conn.execute(text(sql), {"p": pid})}

    for materialized in (False, True):  # real-time first, then from the refreshed aggregate
        if materialized:
            refresh_caggs(engine)
        # the sample at 23:30 JST is in that JST day; the one at 00:30 JST in the next
        assert days("sample_1d", pids["kita"]) == {day: 1, day + timedelta(days=1): 1}
        # the same instants (14:30 and 15:30 UTC) are one London day, from London's midnight
        assert days("sample_1d", pids["york"]) == {london_day: 2}
    # the app role sees only its tenants' days, and only through the scoped view
    with engine.begin() as conn:
        conn.execute(text(f"SET LOCAL ROLE {rls.APP_ROLE}"))
        conn.execute(text("SELECT set_config('pumpwatch.tenants', 'kita', true)"))
        assert (
            conn.execute(text("SELECT point_id FROM scoped.sample_1d")).scalars().all() == [pids["kita"]] * 2
        )
        assert conn.execute(text("SELECT count(*) FROM scoped.sample_1h_cagg")).scalar() == 2


def test_real_time_aggregation_never_misses_the_newest_hour(engine: Engine) -> None:
    now = db_now(engine)
    start = (now - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    rows = minutes(31, start, 2 * 1440 - 120, seed=5)  # up to two hours ago: the newest are alone
    historian.write_samples(engine, rows)
    refresh_caggs(engine)  # materialized up to the hour that began before `now - 1 h`
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    last_hour = this_hour - HOUR  # above the materialized part: the aggregate computes it from raw
    newest = [(31, last_hour + timedelta(minutes=m, seconds=30), 4.5, 0) for m in range(0, 60, 10)]
    newest += [(31, now - timedelta(seconds=s), 4.5, 0) for s in range(10, 70, 10)]  # the last minute
    historian.write_samples(engine, newest)
    with engine.connect() as conn:
        n = conn.execute(
            text("SELECT n FROM sample_1h_cagg WHERE point_id = 31 AND bucket_at = :b"), {"b": last_hour}
        ).scalar()
    assert n == sum(1 for r in rows + newest if last_hour <= r[1] < this_hour)  # no refresh needed
    end = now + timedelta(seconds=1)
    got = historian.read_history(engine, 31, start, end, 40)  # buckets over an hour: the aggregate
    assert sum(p.count for p in got) == len(rows) + len(newest)
    assert got[-1].max == 4.5


def test_trend_reader_picks_raw_or_the_aggregate_and_never_a_missing_one(engine: Engine) -> None:
    now = db_now(engine)
    start = (now - timedelta(days=30)).replace(minute=0, second=0, microsecond=0)
    rows = minutes(41, start, 30 * 1440, seed=6)
    historian.write_samples(engine, rows)
    end = start + timedelta(days=30)
    seen = statements(engine)
    short = historian.read_history(engine, 41, end - HOUR, end)  # 60 samples: raw
    assert len(short) == 60 and not any("sample_1h_cagg" in s for s in seen if "to_regclass" not in s)
    month = historian.read_history(engine, 41, start, end, 360)  # 2-hour buckets
    assert any("FROM sample_1h_cagg" in s for s in seen)
    want = expected(rows, start, 2 * HOUR)
    same(month, want)
    # the aggregate disappears (a set-up that failed, a DBA's DROP): the reader falls back, no error
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("DROP MATERIALIZED VIEW sample_1h_cagg CASCADE")
    seen.clear()
    same(historian.read_history(engine, 41, start, end, 360), want)  # plain rollups: none kept → raw
    assert not any("FROM sample_1h_cagg" in s for s in seen)
    f = ensure_timescale(engine)  # the next start makes it again
    assert "cagg_1h" in f.present


def test_jobs_the_scheduler_fails_are_reported_and_run_by_the_collector(engine: Engine) -> None:
    """A day on, no background run of any historian job has succeeded (here TimescaleDB 2.28.3 fails them
    all on PostgreSQL 15.20; elsewhere: a stopped scheduler): the watch says so and runs them itself."""
    now = db_now(engine)
    start = (now - timedelta(days=9)).replace(hour=0, minute=0, second=0, microsecond=0)
    historian.write_samples(engine, minutes(51, start, 2 * 1440, seed=7))  # two days, compressible
    watch = JobWatch(engine)
    watch.check(now)
    assert all("paused" in p for p in watch.problems()) and not watch.ran  # the template pauses them
    with engine.begin() as conn:  # scheduled, as ensure_timescale makes them
        conn.exec_driver_sql("SELECT alter_job(job_id, scheduled => true) FROM timescaledb_information.jobs")
    watch.check(now)
    watch.check(now + timedelta(days=2))  # the database's now, two days on
    procs = {j.proc for j in watch.jobs}
    assert procs == {"policy_compression", "policy_retention", "policy_refresh_continuous_aggregate"}
    assert watch.failing_ids == {j.job_id for j in watch.jobs}  # overdue, or failed in the background
    assert all(err is None for _at, err in watch.ran.values()) and set(watch.ran) == watch.failing_ids
    assert chunks(engine)[0][2]  # the compression policy ran: the oldest chunk is compressed
    with engine.connect() as conn:
        assert conn.execute(
            text("SELECT count(*) FROM _timescaledb_catalog.continuous_aggs_watermark")
        ).scalar()
    problems = watch.problems()
    assert len(problems) == len(watch.jobs) and all("run here at" in p and ": ok" in p for p in problems)
    first = dict(watch.ran)
    watch.check(now + timedelta(days=2, minutes=5))  # within every interval: nothing runs again
    assert watch.ran == first
    status = watch.status()
    assert {j["background"] for j in status["jobs"]} == {"failing"} and status["error"] is None


def test_a_job_whose_times_are_unset_is_read_and_not_called_overdue(engine: Engine) -> None:
    """TimescaleDB marks "not set" with -infinity (a run under way: next_start; never succeeded:
    last_successful_finish), which no Python datetime holds (seen in CI: job_health failed with "timestamp
    too small"). Read as unset, and a job under way is overdue only counted from that run's start."""
    (j, *_rest) = job_health(engine)[1]
    with engine.begin() as conn:  # a run under way, as the scheduler's mark_start leaves it
        conn.exec_driver_sql(
            "UPDATE _timescaledb_internal.bgw_job_stat SET next_start = '-infinity', "
            "last_successful_finish = '-infinity', last_start = now(), last_run_success = true "
            "WHERE job_id = %(j)s",
            {"j": j.job_id},
        )
        conn.exec_driver_sql(
            "INSERT INTO _timescaledb_internal.bgw_job_stat (job_id, last_start, last_finish, next_start, "
            "last_successful_finish, last_run_success, total_runs, total_duration, "
            "total_duration_failures, total_successes, total_failures, total_crashes, consecutive_failures, "
            "consecutive_crashes, flags) SELECT %(j)s, now(), '-infinity', '-infinity', '-infinity', true, "
            "1, '0', '0', 0, 0, 0, 0, 0, 0 WHERE NOT EXISTS "
            "(SELECT 1 FROM _timescaledb_internal.bgw_job_stat WHERE job_id = %(j)s)",
            {"j": j.job_id},
        )
    now, jobs = job_health(engine)
    (read,) = [x for x in jobs if x.job_id == j.job_id]
    assert read.next_start is None and read.last_success is None
    assert read.last_start is not None and abs((read.last_start - now).total_seconds()) < 60
    assert not read.failing(now, first_seen=now - timedelta(days=1))  # under way since just now
    assert read.failing(now + timedelta(days=2), first_seen=now - timedelta(days=1))  # stuck for days


def test_a_database_left_by_the_old_set_up_is_repaired(tmp_path: Path) -> None:
    """Before migration 0008, `sample` had row-level security: start-up made it a hypertable, then
    compression failed ("columnstore cannot be used on table with row security") and nothing else was
    made. 0008 and the next start finish the job; the history stays."""
    from tests.services import create_database, drop_database

    name, url = create_database("timescale")
    eng = make_engine(url)
    try:
        upgrade(eng, "0006_latest_value_hot")
        pid = historian.sync_catalog(eng, load_fleet(DEMO_FLEET))[("KITA-MP-01", "wet_well_level_m")]
        t0 = datetime(2026, 7, 1, tzinfo=UTC)
        historian.write_samples(eng, [(pid, t0 + timedelta(minutes=m), 1.0, 0) for m in range(3000)])
        with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            x = conn.exec_driver_sql
            x("ALTER TABLE sample ENABLE ROW LEVEL SECURITY")  # as 0004 left it before 0008
            x("ALTER TABLE sample FORCE ROW LEVEL SECURITY")
            x(f"CREATE POLICY tenant_scope ON sample TO PUBLIC USING ({rls.POINT_SCOPE})")
            x("CREATE POLICY system_all ON sample TO CURRENT_USER USING (true)")
            x("CREATE EXTENSION timescaledb")
            x("SELECT create_hypertable('sample', by_range('observed_at'), migrate_data => true)")
            with pytest.raises(Exception, match="row security"):  # the old set-up's failure
                x(
                    "ALTER TABLE sample SET (timescaledb.compress, "
                    "timescaledb.compress_segmentby = 'point_id')"
                )
        upgrade(eng)
        f = ensure_timescale(eng)
        assert f.missing == {} and set(f.present) == set(FEATURES)
        got = historian.read_history(eng, pid, t0, t0 + timedelta(days=3), 50)
        assert sum(p.count for p in got) == 3000
    finally:
        eng.dispose()
        drop_database(name, "timescale")
