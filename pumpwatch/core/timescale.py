"""TimescaleDB for the historian, set up step by step, and what the historian can use as a result.

`ensure_timescale(engine, plan)` runs at every start (after the migrations and the catalogue sync), on
PostgreSQL whose server preloads the `timescaledb` extension (one that only has its files gets the plain
shape and a note: `CREATE EXTENSION` there would end the connection), idempotently and under an advisory
lock (collector shards start together). Each feature is its own step; a step that fails (an Apache-only
licence, a permission, an old version) is recorded with the database's own words and the steps that need
it are skipped, so the result never claims what is not there:

- `timescaledb`: `CREATE EXTENSION timescaledb`, version ≥ 2.13 (needs the server to preload it).
- `hypertable`: `sample` in 1-day chunks (`create_hypertable … migrate_data`).
- `compression`: columnstore segmented by point, ordered by time; policy: chunks older than 7 days.
- `retention`: policy dropping raw chunks older than 400 days (the aggregates stay).
- `cagg_1h`: `sample_1h_cagg`, hourly, real-time, refreshed every 15 min.
- `cagg_1d`: `sample_1d_cagg_<zone>` per tenant time zone, days from local midnight, real-time, refreshed
  hourly; the view `sample_1d` joins them, each point in its own tenant's zone.
- `job_scheduler`: `timescaledb.max_background_workers` > 0, so the policies run by themselves.

Every feature after `hypertable` needs it, and all of them need the Timescale License (an Apache-only
build or `timescaledb.license = 'apache'` has none of them).

A continuous aggregate whose refresh policy cannot be added is dropped again: a half-made one would be
recomputed from raw samples on every read. The app role reads the aggregates only through
`scoped.sample_1h_cagg` and `scoped.sample_1d` (`pumpwatch.core.db.rls`).

Refresh windows reach back to one day short of the retention (the whole history without one): a late
sample, even a week old in a compressed chunk, is in the aggregates after the next refresh, and a
refresh never sees the region that retention dropped (that would empty the aggregates there). History
already older than that window when an aggregate is made is materialized once, at once.

`HistorianFeatures` says what is present, what is missing and why, and where trends come from
(`trend_source`): `cagg` (the hourly continuous aggregate), `rollups` (plain PostgreSQL's `sample_1m` /
`sample_1h`, kept by the collector's rollup job, which must then run) or `raw`. `pumpwatch.core.historian`
checks for itself, per read, that the aggregate it would read exists and is readable.

`JobWatch` checks how TimescaleDB's own jobs for `sample` and the aggregates fare, and runs in the
collector any job that its background scheduler fails (e.g. TimescaleDB 2.28.3 on PostgreSQL 15.20, where
every background job fails with "cannot drop portal "" while it is being set up"), reporting it.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, text

from pumpwatch.core.db import rls

log = logging.getLogger(__name__)

MIN_VERSION = (2, 13)  # by_range() dimensions; INSERT … ON CONFLICT into compressed chunks since 2.11
_LOCK_KEY = 0x7077_7473  # "pwts": one set-up at a time per database
FEATURES = ("timescaledb", "hypertable", "compression", "retention", "cagg_1h", "cagg_1d", "job_scheduler")
TSL_HINT = (
    "this server runs TimescaleDB under timescaledb.license = 'apache'; compression, continuous aggregates "
    "and policies need the Timescale License (the default, free to self-host)"
)

HOURLY = "sample_1h_cagg"
DAILY = "sample_1d"  # a view over the per-zone daily aggregates
_AGG_COLUMNS = (
    "point_id, {bucket} AS bucket_at, count(*) AS n, count(*) FILTER (WHERE quality = 0) AS good, "
    "sum(value) FILTER (WHERE quality = 0) AS sum, min(value) FILTER (WHERE quality = 0) AS min, "
    "max(value) FILTER (WHERE quality = 0) AS max"
)


@dataclass(frozen=True)
class TimescalePlan:
    chunk_days: int = 1
    compress_after_days: int = 7
    retain_days: int | None = 400  # raw samples; the aggregates stay (None: keep them forever)
    hourly_every: str = "15 minutes"
    daily_every: str = "1 hour"
    default_timezone: str = "Asia/Tokyo"  # for the daily aggregate while no tenant is known

    @property
    def chunk(self) -> str:
        return f"{self.chunk_days} days"

    @property
    def compress_after(self) -> str:
        return f"{self.compress_after_days} days"

    @property
    def retain(self) -> str | None:
        return None if self.retain_days is None else f"{self.retain_days} days"

    @property
    def refresh_start(self) -> timedelta | None:
        """How far back the aggregates' refresh policies reach: a day short of the retention, so a refresh
        never sees the region retention dropped (None: the whole history)."""
        return None if self.retain_days is None else timedelta(days=self.retain_days - 1)

    def raw_retained_from(self, now: datetime) -> datetime | None:
        """Raw samples older than this may have been dropped (None: all are kept)."""
        return None if self.retain_days is None else now - timedelta(days=self.retain_days)


PLAN = TimescalePlan()  # what ensure_timescale sets up unless told otherwise (and what readers assume)


@dataclass(frozen=True)
class HistorianFeatures:
    """What the historian's database offers. `missing`: feature → why it is not there (the database's
    message); only what was wanted and failed is missing (plain PostgreSQL without the extension on the
    server lacks nothing: it is the `postgresql` shape)."""

    shape: str  # sqlite | postgresql | timescaledb
    present: list[str] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)
    version: str | None = None
    license: str | None = None
    day_timezones: list[str] = field(default_factory=list)
    note: str | None = None  # e.g. the server has TimescaleDB installed but does not preload it

    @property
    def trend_source(self) -> str:
        if "cagg_1h" in self.present:
            return "cagg"
        return "rollups" if self.shape != "sqlite" else "raw"

    @property
    def rollup_job(self) -> bool:
        """The collector must keep the plain rollups: no hourly continuous aggregate to read instead."""
        return self.trend_source == "rollups"

    @property
    def problems(self) -> list[str]:
        """One line per missing feature, for logs and the centre's system alarm."""
        return [f"historian: TimescaleDB {name} missing: {why}" for name, why in self.missing.items()]

    def as_dict(self) -> dict[str, Any]:
        return {
            "shape": self.shape,
            "version": self.version,
            "license": self.license,
            "present": list(self.present),
            "missing": dict(self.missing),
            "trend_source": self.trend_source,
            "rollup_job": self.rollup_job,
            "day_timezones": list(self.day_timezones),
            "note": self.note,
        }


def plain_features(engine: Engine, note: str | None = None) -> HistorianFeatures:
    if engine.dialect.name == "sqlite":
        return HistorianFeatures("sqlite")
    return HistorianFeatures("postgresql", present=["rollups"], note=note)


def _error(exc: BaseException) -> str:
    """The database's message, one line, without SQLAlchemy's statement dump."""
    orig = getattr(exc, "orig", None) or exc
    msg = " ".join(str(orig).split("\n")[0].split())
    diag = getattr(orig, "diag", None)
    hint = getattr(diag, "message_hint", None) if diag is not None else None
    return f"{type(orig).__name__}: {msg}" + (f" (hint: {hint})" if hint else "")


def _slug(tz: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", tz.lower()).strip("_")


def daily_name(tz: str) -> str:
    return f"sample_1d_cagg_{_slug(tz)}"[:63]


def _q(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


class _Setup:
    """One set-up run on an AUTOCOMMIT connection: each step records success or why it failed."""

    def __init__(self, conn: Connection, plan: TimescalePlan) -> None:
        self.conn = conn
        self.plan = plan
        self.present: list[str] = []
        self.missing: dict[str, str] = {}
        self.license: str | None = None

    def one(self, sql: str, **params: Any) -> Any:
        return self.conn.execute(text(sql), params).scalar()

    def run(self, sql: str) -> None:
        self.conn.exec_driver_sql(sql)

    def fail(self, feature: str, exc: BaseException | str) -> None:
        why = exc if isinstance(exc, str) else _error(exc)
        if self.license == "apache" and "license" in why.lower():
            why = f"{why.split(' (hint:')[0]}; {TSL_HINT}"
        self.missing[feature] = why

    def job(self, proc: str, relation: str) -> tuple[int, dict[str, Any]] | None:
        """Our policy job of `proc` on `relation` (the hypertable, or a continuous aggregate's view)."""
        row = self.conn.execute(
            text(
                "SELECT j.job_id, j.config FROM timescaledb_information.jobs j "
                "LEFT JOIN timescaledb_information.continuous_aggregates c "
                "  ON c.materialization_hypertable_schema = j.hypertable_schema "
                " AND c.materialization_hypertable_name = j.hypertable_name "
                "WHERE j.proc_name = :proc AND coalesce(c.view_name, j.hypertable_name) = :rel"
            ),
            {"proc": proc, "rel": relation},
        ).first()
        return (int(row[0]), dict(row[1] or {})) if row else None

    # --- steps ---------------------------------------------------------------------------------------

    def extension(self) -> str | None:
        try:
            self.run("CREATE EXTENSION IF NOT EXISTS timescaledb")
            version = str(self.one("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"))
            self.license = self.one("SELECT current_setting('timescaledb.license', true)")
        except Exception as exc:
            self.fail("timescaledb", exc)
            return None
        parts = tuple(int(p) for p in re.findall(r"\d+", version)[:2])
        if parts < MIN_VERSION:
            self.fail("timescaledb", f"version {version} is older than {'.'.join(map(str, MIN_VERSION))}")
            return version
        self.present.append("timescaledb")
        return version

    def hypertable(self) -> bool:
        p = self.plan
        try:
            if not self.one(
                "SELECT count(*) FROM timescaledb_information.hypertables "
                "WHERE hypertable_schema = 'public' AND hypertable_name = 'sample'"
            ):
                # no default index on time: the key (point_id, observed_at) and the BRIN index serve
                self.run(
                    f"SELECT create_hypertable('sample', by_range('observed_at', INTERVAL {_q(p.chunk)}), "
                    "create_default_indexes => false, migrate_data => true)"
                )
                log.info("TimescaleDB: sample is now a hypertable (%d-day chunks)", p.chunk_days)
            elif not self.one(
                "SELECT time_interval = CAST(:want AS interval) FROM timescaledb_information.dimensions "
                "WHERE hypertable_schema = 'public' AND hypertable_name = 'sample' "
                "AND column_name = 'observed_at'",
                want=p.chunk,
            ):
                self.run(f"SELECT set_chunk_time_interval('sample', INTERVAL {_q(p.chunk)})")  # new chunks
        except Exception as exc:
            self.fail("hypertable", exc)
            return False
        self.present.append("hypertable")
        return True

    def compression(self) -> None:
        p = self.plan
        try:
            seg = self.conn.execute(
                text(
                    "SELECT segmentby, orderby FROM timescaledb_information.hypertable_columnstore_settings "
                    "WHERE hypertable = CAST('public.sample' AS regclass)"
                )
            ).first()
            if seg is None or seg[0] != "point_id":
                self.run(
                    "ALTER TABLE sample SET (timescaledb.compress, timescaledb.compress_segmentby = "
                    "'point_id', timescaledb.compress_orderby = 'observed_at')"
                )
            self._policy(
                "policy_compression",
                "sample",
                "compress_after",
                p.compress_after,
                f"SELECT add_compression_policy('sample', INTERVAL {_q(p.compress_after)})",
                "SELECT remove_compression_policy('sample')",
            )
        except Exception as exc:
            self.fail("compression", exc)
            return
        self.present.append("compression")

    def retention(self) -> None:
        p = self.plan
        try:
            if p.retain is None:
                self.run("SELECT remove_retention_policy('sample', if_exists => true)")
                return  # nothing wanted, nothing missing
            self._policy(
                "policy_retention",
                "sample",
                "drop_after",
                p.retain,
                f"SELECT add_retention_policy('sample', INTERVAL {_q(p.retain)})",
                "SELECT remove_retention_policy('sample')",
            )
        except Exception as exc:
            self.fail("retention", exc)
            return
        self.present.append("retention")

    def _policy(self, proc: str, rel: str, key: str, want: str, add: str, remove: str) -> None:
        """Add the policy, or replace it when its setting differs from the plan (`if_not_exists` would
        keep an old one silently)."""
        have = self.job(proc, rel)
        if have is not None:
            same = self.one(
                "SELECT CAST(:have AS interval) = CAST(:want AS interval)",
                have=str(have[1].get(key)),
                want=want,
            )
            if same:
                return
            log.warning("TimescaleDB: %s of %s changes from %s to %s", proc, rel, have[1].get(key), want)
            self.run(remove)
        self.run(add)

    def aggregate(self, name: str, bucket: str, end: str, every: str) -> bool:
        """A real-time continuous aggregate of `sample` and its refresh policy; dropped again if the
        policy cannot be added."""
        p = self.plan
        cols = _AGG_COLUMNS.format(bucket=bucket)
        start = "NULL" if p.refresh_start is None else f"INTERVAL '{p.refresh_start.days} days'"
        created = False
        try:
            if not self.one("SELECT to_regclass(:n) IS NOT NULL", n=f"public.{name}"):
                self.run(
                    f"CREATE MATERIALIZED VIEW {name} WITH (timescaledb.continuous, "
                    f"timescaledb.materialized_only = false) AS SELECT {cols} FROM sample "
                    "GROUP BY point_id, bucket_at WITH NO DATA"
                )
                created = True
            self.run(f"REVOKE ALL ON {name} FROM {rls.APP_ROLE}")
            have = self.job("policy_refresh_continuous_aggregate", name)
            if have is not None and not self.one(
                # the window must follow the retention: a refresh reaching the dropped region empties it
                "SELECT CAST(:have AS interval) IS NOT DISTINCT FROM CAST(:want AS interval)",
                have=have[1].get("start_offset"),
                want=None if p.refresh_start is None else f"{p.refresh_start.days} days",
            ):
                log.warning("TimescaleDB: the refresh window of %s follows the new retention", name)
                self.run(f"SELECT remove_continuous_aggregate_policy('{name}')")
                have = None
            if have is None:
                self.run(
                    f"SELECT add_continuous_aggregate_policy('{name}', start_offset => {start}, "
                    f"end_offset => INTERVAL {_q(end)}, schedule_interval => INTERVAL {_q(every)})"
                )
            if created:
                self._backfill(name)
                log.info("TimescaleDB: continuous aggregate %s created (refreshed by its policy)", name)
        except Exception:
            if created:  # never an existing one: its data may reach past the raw samples' retention
                self._drop(name)
            raise
        return True

    def _backfill(self, name: str) -> None:
        """History older than the refresh window (a database that had samples before TimescaleDB) is
        materialized once now: no policy run will ever reach it, and real-time aggregation covers only
        what lies past the materialized part."""
        start = self.plan.refresh_start
        if start is None or not self.one(
            "SELECT EXISTS (SELECT 1 FROM sample WHERE observed_at < now() - CAST(:w AS interval))",
            w=f"{start.days} days",
        ):
            return
        log.info("TimescaleDB: materializing %s for the history older than %d days", name, start.days)
        self.run(
            f"CALL refresh_continuous_aggregate('{name}', NULL, now() - INTERVAL '{start.days - 1} days')"
        )

    def _drop(self, name: str) -> None:
        try:
            self.run(f"DROP MATERIALIZED VIEW IF EXISTS {name} CASCADE")
        except Exception:
            log.exception("TimescaleDB: could not drop the half-made continuous aggregate %s", name)

    def hourly(self) -> None:
        try:
            self.aggregate(
                HOURLY, "time_bucket(INTERVAL '1 hour', observed_at)", "1 hour", self.plan.hourly_every
            )
            for sql in rls.scoped_view_sql(HOURLY):
                self.run(sql)
        except Exception as exc:
            self.fail("cagg_1h", exc)
            return
        self.present.append("cagg_1h")

    def daily(self, zones: list[str]) -> None:
        made: list[str] = []
        failed: list[str] = []
        for tz in zones:
            name = daily_name(tz)
            try:
                self.one("SELECT now() AT TIME ZONE :tz", tz=tz)  # a zone this server knows
                bucket = f"time_bucket(INTERVAL '1 day', observed_at, {_q(tz)})"
                self.aggregate(name, bucket, "1 day", self.plan.daily_every)
                made.append(tz)
            except Exception as exc:
                failed.append(f"{tz}: {_error(exc)}")
        try:
            if made:
                # each point's days in its own tenant's zone
                union = " UNION ALL ".join(
                    f"SELECT c.* FROM {daily_name(tz)} c WHERE c.point_id IN (SELECT p.id FROM point p "
                    f"JOIN station s ON s.id = p.station_id JOIN tenant t ON t.id = s.tenant_id "
                    f"WHERE t.timezone = {_q(tz)})"
                    for tz in made
                )
                self.run(f"CREATE OR REPLACE VIEW public.{DAILY} AS {union}")
                for sql in rls.scoped_view_sql(DAILY):
                    self.run(sql)
        except Exception as exc:
            failed.append(f"view {DAILY}: {_error(exc)}")
        if failed:
            self.fail("cagg_1d", "; ".join(failed))
        else:
            self.present.append("cagg_1d")

    def scheduler(self) -> None:
        workers = self.one("SELECT current_setting('timescaledb.max_background_workers', true)")
        if str(workers) == "0":
            self.fail(
                "job_scheduler",
                "timescaledb.max_background_workers = 0: compression, retention and aggregate refreshes "
                "never run by themselves",
            )
        else:
            self.present.append("job_scheduler")


def _zones(conn: Connection, plan: TimescalePlan) -> list[str]:
    zones = sorted(z for (z,) in conn.execute(text("SELECT DISTINCT timezone FROM tenant")) if z)
    return zones or [plan.default_timezone]


def ensure_timescale(engine: Engine, plan: TimescalePlan | None = None) -> HistorianFeatures:
    """Set up what TimescaleDB offers, step by step (see the module docstring); never raises for a
    feature that cannot be made, only says so. SQLite, or a server without the extension: the plain
    shape."""
    plan = plan or PLAN
    if engine.dialect.name != "postgresql":
        return plain_features(engine)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        available, installed, preloaded = conn.execute(
            text(
                "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'), "
                "EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'), "
                # defined by TimescaleDB's loader only when the server preloads it (any role may read it)
                "current_setting('timescaledb.max_background_workers', true) IS NOT NULL"
            )
        ).one()
        if not preloaded:
            if installed:  # without the loader a hypertable shows none of its chunks: history looks empty
                why = (
                    "installed in this database, but the server does not preload it "
                    "(shared_preload_libraries)"
                )
                return HistorianFeatures(
                    "timescaledb",
                    present=["rollups"],
                    missing={f: why for f in FEATURES if f != "retention" or plan.retain},
                )
            if available:  # CREATE EXTENSION would end the connection (FATAL): do not try
                return plain_features(
                    engine,
                    "TimescaleDB is installed on the server but not preloaded: plain PostgreSQL (add "
                    "'timescaledb' to shared_preload_libraries and restart to use it)",
                )
            return plain_features(engine)
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _LOCK_KEY})
        try:
            return _ensure(conn, plan)
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _LOCK_KEY})


def _ensure(conn: Connection, plan: TimescalePlan) -> HistorianFeatures:
    s = _Setup(conn, plan)
    version = s.extension()
    zones = _zones(conn, plan)
    if "timescaledb" in s.present and s.hypertable():
        s.compression()
        s.retention()
        s.hourly()
        s.daily(zones)
        s.scheduler()
    else:
        needs = "needs the hypertable" if "timescaledb" in s.present else "needs the timescaledb extension"
        for feature in FEATURES:
            if feature not in s.present and feature not in s.missing:
                if feature == "retention" and plan.retain is None:
                    continue
                s.fail(feature, needs)
    present = s.present
    if "cagg_1h" not in present:
        present = [*present, "rollups"]  # the plain rollups serve long trends instead
    return HistorianFeatures(
        "timescaledb",
        present=present,
        missing=s.missing,
        version=version,
        license=s.license,
        day_timezones=zones,
    )


def timescale_active(engine: Engine) -> bool:
    """`sample` is a hypertable."""
    if engine.dialect.name != "postgresql":
        return False
    with engine.connect() as conn:
        if not conn.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")).scalar():
            return False
        return bool(
            conn.execute(
                text("SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = 'sample'")
            ).scalar()
        )


# --- TimescaleDB's own jobs -------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobHealth:
    job_id: int
    proc: str
    relation: str
    schedule_interval: timedelta
    next_start: datetime | None
    last_success: datetime | None
    last_status: str | None
    total_failures: int
    last_error: str | None
    scheduled: bool = True  # false: paused (alter_job(…, scheduled => false)), by a DBA presumably
    last_start: datetime | None = None

    @property
    def name(self) -> str:
        return f"job {self.job_id} ({self.proc} on {self.relation})"

    def failing(self, now: datetime, first_seen: datetime) -> bool:
        """Its last background run failed, or the scheduler is overdue with it: past its next start, or
        never run although known since `first_seen` (the scheduler does not run at all)."""
        if self.last_status == "Failed":
            return True
        grace = max(self.schedule_interval, timedelta(minutes=10))
        # next_start is unset ('-infinity' in TimescaleDB, None here) while a run is under way or before
        # the first: then it is overdue only counted from that run's start, or from when we first saw it
        since = self.next_start
        if since is None:
            since = max(first_seen, self.last_start or first_seen)
        return since < now - grace


def job_health(engine: Engine) -> tuple[datetime, list[JobHealth]]:
    """The database's `now()` and TimescaleDB's background jobs on `sample` and the historian's continuous
    aggregates, with their last error."""
    with engine.connect() as conn:
        now = conn.execute(text("SELECT now()")).scalar_one()
        rows = conn.execute(
            text(
                "SELECT j.job_id, j.proc_name, coalesce(c.view_name, j.hypertable_name), "
                "  j.schedule_interval, j.scheduled, "
                # TimescaleDB writes ±infinity for "not set"; psycopg cannot load it as a datetime
                "  CASE WHEN isfinite(j.next_start) THEN j.next_start END, "
                "  CASE WHEN isfinite(st.last_successful_finish) THEN st.last_successful_finish END, "
                "  CASE WHEN isfinite(st.last_run_started_at) THEN st.last_run_started_at END, "
                "  st.last_run_status, "
                "  coalesce(st.total_failures, 0), "
                "  (SELECT e.err_message FROM timescaledb_information.job_errors e "
                "   WHERE e.job_id = j.job_id ORDER BY e.start_time DESC LIMIT 1) "
                "FROM timescaledb_information.jobs j "
                "LEFT JOIN timescaledb_information.job_stats st ON st.job_id = j.job_id "
                "LEFT JOIN timescaledb_information.continuous_aggregates c "
                "  ON c.materialization_hypertable_schema = j.hypertable_schema "
                " AND c.materialization_hypertable_name = j.hypertable_name "
                "WHERE j.hypertable_name IS NOT NULL ORDER BY j.job_id"
            )
        ).all()
    jobs = [
        JobHealth(int(jid), proc, rel, every, nxt, ok_at, status, int(failures), err, bool(on), started)
        for jid, proc, rel, every, on, nxt, ok_at, started, status, failures, err in rows
        if rel == "sample" or rel == HOURLY or str(rel).startswith("sample_1d_cagg_")
    ]
    return now, jobs


def _concurrent_run(exc: BaseException) -> bool:
    """The background scheduler runs the same refresh right now (TimescaleDB refuses a second one)."""
    return "due to a concurrent refresh" in str(exc)


def run_job(engine: Engine, job_id: int, *, wait_s: float = 30.0) -> None:
    """Run one TimescaleDB job now, in this session (`CALL run_job`), as tests do. If the background
    scheduler is running the same refresh, wait for it and run again (up to `wait_s`), so that on return the
    job has run to completion once after the call."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql(f"CALL run_job({int(job_id)})")
            return
        except Exception as exc:
            if not _concurrent_run(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class JobWatch:
    """Compression, retention and the aggregates' refreshes depend on TimescaleDB's background scheduler;
    if it fails them (a licence, the workers, or a bug: TimescaleDB 2.28.3 on PostgreSQL 15.20 fails every
    background job with "cannot drop portal "" while it is being set up"), nothing would compress, no
    chunk would ever be dropped and the disk would fill, silently. The collector checks every few minutes
    (`check`); a failing job is reported (log, `status`, `problems`) and run here instead (`CALL run_job`,
    the same procedure in the foreground, which works), at most once per its schedule interval and by one
    process at a time (an advisory lock per job, so collector shards do not run it together). A paused job
    (`scheduled = false`) is reported, never run.

    Schedules are the database's (`now()` there), not a simulation's clock."""

    def __init__(self, engine: Engine, *, every_s: float = 300.0) -> None:
        self.engine = engine
        self.every_s = every_s
        self.jobs: list[JobHealth] = []
        self.checked_at: datetime | None = None
        self.error: str | None = None  # the job statistics could not be read
        self.ran: dict[int, tuple[datetime, str | None]] = {}  # job → (when we ran it, its error or None)
        self._first_seen: dict[int, datetime] = {}
        self._failing: set[int] = set()

    def check(self, now: datetime | None = None) -> None:
        """Read the jobs' health; run the failing ones that are due. `now`: the database's (default)."""
        try:
            db_now, jobs = job_health(self.engine)
        except Exception as exc:
            if self.error is None:
                log.error("historian: cannot read TimescaleDB's job statistics: %s", _error(exc))
            self.error = _error(exc)
            return
        self.error = None
        now = now or db_now
        self.jobs, self.checked_at = jobs, now
        for j in jobs:
            if not j.scheduled:  # paused on purpose: said (problems), never overridden
                self._failing.discard(j.job_id)
                continue
            if not j.failing(now, self._first_seen.setdefault(j.job_id, now)):
                if j.job_id in self._failing:
                    log.warning("historian: TimescaleDB runs %s again in the background", j.name)
                    self._failing.discard(j.job_id)
                continue
            if j.job_id not in self._failing:
                self._failing.add(j.job_id)
                log.error(
                    "historian: TimescaleDB's scheduler fails %s (%s); pumpwatch runs it itself every %s",
                    j.name,
                    j.last_error or "overdue, never run",
                    j.schedule_interval,
                )
            last = self.ran.get(j.job_id)
            if last is None or now - last[0] >= j.schedule_interval:
                self.ran[j.job_id] = (now, self._run(j))

    def _run(self, j: JobHealth) -> str | None:
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            if not conn.execute(
                text("SELECT pg_try_advisory_lock(:k, :j)"), {"k": _LOCK_KEY, "j": j.job_id}
            ).scalar():
                return None  # another collector runs it right now
            try:
                conn.exec_driver_sql(f"CALL run_job({j.job_id})")
            except Exception as exc:
                if _concurrent_run(exc):  # the scheduler runs it after all: not a failure
                    log.info("historian: %s is being run by TimescaleDB's scheduler right now", j.name)
                    return None
                why = _error(exc)
                log.error("historian: running %s here failed too: %s", j.name, why)
                return why
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k, :j)"), {"k": _LOCK_KEY, "j": j.job_id})
        log.info("historian: ran %s in place of TimescaleDB's scheduler", j.name)
        return None

    @property
    def failing_ids(self) -> frozenset[int]:
        return frozenset(self._failing)

    def problems(self) -> list[str]:
        out = [f"historian: cannot read TimescaleDB's job statistics: {self.error}"] if self.error else []
        for j in self.jobs:
            if not j.scheduled:
                out.append(f"historian: TimescaleDB {j.name} is paused (scheduled = false): it does not run")
            if j.job_id not in self._failing:
                continue
            ran = self.ran.get(j.job_id)
            fallback = (
                "not run here yet"
                if ran is None
                else (
                    f"run here at {ran[0]:%Y-%m-%d %H:%M} UTC: "
                    + ("ok" if ran[1] is None else f"failed: {ran[1]}")
                )
            )
            out.append(
                f"historian: TimescaleDB's scheduler fails {j.name}: {j.last_error or 'overdue'}; {fallback}"
            )
        return out

    def status(self) -> dict[str, Any]:
        return {
            "checked_at": None if self.checked_at is None else self.checked_at.isoformat(),
            "error": self.error,
            "jobs": [
                {
                    "job_id": j.job_id,
                    "proc": j.proc,
                    "relation": j.relation,
                    "schedule_interval_s": j.schedule_interval.total_seconds(),
                    "background": "paused"
                    if not j.scheduled
                    else ("failing" if j.job_id in self._failing else "ok"),
                    "last_success": None if j.last_success is None else j.last_success.isoformat(),
                    "last_error": j.last_error,
                    "run_here_at": None if j.job_id not in self.ran else self.ran[j.job_id][0].isoformat(),
                    "run_here_error": None if j.job_id not in self.ran else self.ran[j.job_id][1],
                }
                for j in self.jobs
            ],
        }

    async def run(self) -> None:
        import asyncio

        while True:
            await asyncio.sleep(self.every_s)  # the database's wall clock paces its jobs, not ours
            try:
                await asyncio.to_thread(self.check)
            except Exception:  # the database went away mid-check: the next round tries again
                log.exception("historian: TimescaleDB job check failed")
