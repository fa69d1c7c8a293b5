"""The historian at scale on PostgreSQL: rollups for long trends, retention, and TimescaleDB when present.

Two shapes, one API (`pumpwatch.historian.read_history` picks the source):

- **Plain PostgreSQL** (what Debian ships): `sample` keeps its BRIN index on time and its (point, time) key;
  `sample_1m` / `sample_1h` hold per-point minute / hour rollups (count, good count, sum, min, max). The
  writer tells a `Rollups` tracker which minutes it wrote; a periodic job (every `interval_s`, in the
  collector) recomputes those minutes from `sample` and then their hours from `sample_1m`. Recomputing
  (replace, not add) makes it idempotent: a replayed spool, late data or a crash mid-job only means a
  minute is computed again. `apply_retention` deletes raw samples older than the retention in batches.
- **TimescaleDB** (when `CREATE EXTENSION timescaledb` is possible): `ensure_timescale` turns `sample` into a
  hypertable (1-day chunks), compresses chunks older than 7 days (segment by point), drops raw chunks past
  the retention, and creates continuous aggregates `sample_1h_cagg` (hourly) and `sample_1d_cagg` (daily,
  days starting at midnight Asia/Tokyo via `time_bucket(..., 'Asia/Tokyo')`), real-time
  (`materialized_only = false`) so the newest hour is never missing. The rollup job is then not run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, text

log = logging.getLogger(__name__)

MINUTE_US = 60_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)

# --- plain PostgreSQL rollups ----------------------------------------------------------------------------

_ROLL_MINUTES = """
INSERT INTO sample_1m AS r (point_id, bucket_at, n, good, sum, min, max)
SELECT point_id, date_trunc('minute', observed_at), count(*),
       count(*) FILTER (WHERE quality = 0),
       sum(value) FILTER (WHERE quality = 0),
       min(value) FILTER (WHERE quality = 0),
       max(value) FILTER (WHERE quality = 0)
FROM sample
WHERE observed_at >= :a AND observed_at < :b {points}
GROUP BY 1, 2
ON CONFLICT (point_id, bucket_at) DO UPDATE
SET n = EXCLUDED.n, good = EXCLUDED.good, sum = EXCLUDED.sum, min = EXCLUDED.min, max = EXCLUDED.max
"""
_ROLL_HOURS = """
INSERT INTO sample_1h AS r (point_id, bucket_at, n, good, sum, min, max)
SELECT point_id, date_trunc('hour', bucket_at), sum(n), sum(good), sum(sum), min(min), max(max)
FROM sample_1m
WHERE bucket_at >= :a AND bucket_at < :b {points}
GROUP BY 1, 2
ON CONFLICT (point_id, bucket_at) DO UPDATE
SET n = EXCLUDED.n, good = EXCLUDED.good, sum = EXCLUDED.sum, min = EXCLUDED.min, max = EXCLUDED.max
"""


def _ranges(minutes: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted minute numbers → [start, end) runs of consecutive minutes."""
    out: list[tuple[int, int]] = []
    for m in sorted(minutes):
        if out and out[-1][1] == m:
            out[-1] = (out[-1][0], m + 1)
        else:
            out.append((m, m + 1))
    return out


def _minute_at(m: int) -> datetime:
    return _EPOCH + timedelta(minutes=m)


def roll_up(engine: Engine, minutes: Iterable[int], point_ids: Sequence[int] | None = None) -> int:
    """Recompute the minute rollups of `minutes` (minute numbers since 1970) and the hours holding them,
    for `point_ids` (None: every point). Returns the minute rows written."""
    runs = _ranges(minutes)
    if not runs:
        return 0
    points = "AND point_id = ANY(:ids)" if point_ids is not None else ""
    roll_m = text(_ROLL_MINUTES.format(points=points))
    roll_h = text(_ROLL_HOURS.format(points=points))
    written = 0
    with engine.begin() as conn:
        for a, b in runs:
            params: dict = {"a": _minute_at(a), "b": _minute_at(b)}
            if point_ids is not None:
                params["ids"] = list(point_ids)
            written += conn.execute(roll_m, params).rowcount or 0
            params.update(a=_minute_at(a - a % 60), b=_minute_at(b + (-b) % 60))
            conn.execute(roll_h, params)
    return written


@dataclass
class Rollups:
    """Which minutes the writer touched; `due()` hands out the ones to recompute now.

    The newest minute seen is left until the writer is past it (it is still filling); a minute written
    again later is simply due again.
    """

    point_ids: Sequence[int] | None = None  # this collector's points (a shard's), None: all
    dirty: set[int] = field(default_factory=set)
    newest: int = -1
    runs: int = 0
    minutes_rolled: int = 0

    def note(self, rows: Sequence[tuple]) -> None:
        if not rows:
            return
        lo = min(r[1] for r in rows)
        hi = max(r[1] for r in rows)
        a, b = ((t - _EPOCH) // _US // MINUTE_US for t in (lo, hi))
        self.dirty.update(range(a, b + 1))
        self.newest = max(self.newest, b)

    def due(self, *, everything: bool = False) -> list[int]:
        out = sorted(m for m in self.dirty if everything or m < self.newest)
        self.dirty.difference_update(out)
        return out

    def run(self, engine: Engine, *, everything: bool = False) -> int:
        minutes = self.due(everything=everything)
        if not minutes:
            return 0
        try:
            n = roll_up(engine, minutes, self.point_ids)
        except Exception:
            self.dirty.update(minutes)  # the database is away: they stay due
            raise
        self.runs += 1
        self.minutes_rolled += len(minutes)
        return n


def apply_retention(engine: Engine, keep_days: float, *, batch: int = 50_000) -> int:
    """Delete raw samples older than `keep_days` (rollups are kept), in batches so no lock is held long."""
    cutoff = datetime.now(UTC) - timedelta(days=keep_days)
    total = 0
    stmt = text(
        "DELETE FROM sample WHERE ctid = ANY(ARRAY("
        "SELECT ctid FROM sample WHERE observed_at < :cutoff LIMIT :batch))"
    )
    while True:
        with engine.begin() as conn:
            n = conn.execute(stmt, {"cutoff": cutoff, "batch": batch}).rowcount or 0
        total += n
        if n < batch:
            return total


# --- TimescaleDB -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimescalePlan:
    chunk: str = "1 day"
    compress_after: str = "7 days"
    retain: str | None = "400 days"  # raw samples; the aggregates stay
    day_timezone: str = "Asia/Tokyo"


_AGG_COLUMNS = (
    "point_id, {bucket} AS bucket_at, count(*) AS n, count(*) FILTER (WHERE quality = 0) AS good, "
    "sum(value) FILTER (WHERE quality = 0) AS sum, min(value) FILTER (WHERE quality = 0) AS min, "
    "max(value) FILTER (WHERE quality = 0) AS max"
)


def timescale_statements(plan: TimescalePlan = TimescalePlan()) -> list[str]:
    """The SQL that makes `sample` a compressed, retained hypertable with hourly and daily continuous
    aggregates. Each statement is idempotent (`if_not_exists`), to run one by one outside a transaction."""
    tz = plan.day_timezone.replace("'", "''")
    hourly = _AGG_COLUMNS.format(bucket="time_bucket(INTERVAL '1 hour', observed_at)")
    daily = _AGG_COLUMNS.format(bucket=f"time_bucket(INTERVAL '1 day', observed_at, '{tz}')")
    out = [
        "CREATE EXTENSION IF NOT EXISTS timescaledb",
        f"SELECT create_hypertable('sample', by_range('observed_at', INTERVAL '{plan.chunk}'), "
        "if_not_exists => true, migrate_data => true)",
        "ALTER TABLE sample SET (timescaledb.compress, timescaledb.compress_segmentby = 'point_id', "
        "timescaledb.compress_orderby = 'observed_at')",
        f"SELECT add_compression_policy('sample', INTERVAL '{plan.compress_after}', if_not_exists => true)",
    ]
    if plan.retain:
        out.append(f"SELECT add_retention_policy('sample', INTERVAL '{plan.retain}', if_not_exists => true)")
    for name, cols, start, end, every in (
        ("sample_1h_cagg", hourly, "3 days", "1 hour", "15 minutes"),
        ("sample_1d_cagg", daily, "7 days", "1 day", "1 hour"),
    ):
        out += [
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {name} WITH (timescaledb.continuous, "
            f"timescaledb.materialized_only = false) AS SELECT {cols} FROM sample "
            "GROUP BY point_id, bucket_at WITH NO DATA",
            f"SELECT add_continuous_aggregate_policy('{name}', start_offset => INTERVAL '{start}', "
            f"end_offset => INTERVAL '{end}', schedule_interval => INTERVAL '{every}', "
            "if_not_exists => true)",
        ]
    return out


def timescale_available(engine: Engine) -> bool:
    """The extension is installed on the server (it may still need `CREATE EXTENSION`)."""
    if engine.dialect.name != "postgresql":
        return False
    with engine.connect() as conn:
        return bool(
            conn.execute(text("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")).scalar()
        )


def timescale_active(engine: Engine) -> bool:
    """`sample` is a hypertable (so reads use the continuous aggregates and no rollup job runs)."""
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


def ensure_timescale(engine: Engine, plan: TimescalePlan = TimescalePlan()) -> bool:
    """Set up the TimescaleDB shape if the extension is available; False (nothing done) otherwise."""
    if not timescale_available(engine):
        return False
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for stmt in timescale_statements(plan):
            conn.exec_driver_sql(stmt)
    log.info("TimescaleDB: sample is a hypertable with compression, retention and continuous aggregates")
    return True
