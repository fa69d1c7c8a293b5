"""The historian at scale on plain PostgreSQL: rollups for long trends and retention.

Two shapes, one API (`pumpwatch.core.historian.read_history` picks the source):

- **Plain PostgreSQL** (what Debian ships): `sample` keeps its BRIN index on time and its (point, time) key;
  `sample_1m` / `sample_1h` hold per-point minute / hour rollups (count, good count, sum, min, max). The
  writer tells a `Rollups` tracker which minutes it wrote; a periodic job (every `interval_s`, in the
  collector) recomputes those minutes from `sample` and then their hours from `sample_1m`. Recomputing
  (replace, not add) makes it idempotent: a replayed spool, late data or a crash mid-job only means a
  minute is computed again. `apply_retention` deletes raw samples older than the retention in batches.
- **TimescaleDB** (`pumpwatch.core.timescale`): a hypertable with compression, retention and continuous
  aggregates. The rollup job runs there too when the hourly aggregate could not be made.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

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
            params: dict[str, object] = {"a": _minute_at(a), "b": _minute_at(b)}
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

    def note(self, rows: Sequence[tuple[Any, ...]]) -> None:
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
