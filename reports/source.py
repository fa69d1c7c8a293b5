"""Hourly aggregates per point for a report, from the historian.

`hourly(engine, points, counters, start, end, gap_s=...)` → `{point_id: {hour: Agg}}`, hour `k` covering
`[start + k h, start + (k+1) h)`. Where the historian keeps hourly rollups (TimescaleDB's continuous
aggregate `sample_1h_cagg`, else the plain `sample_1h` table on PostgreSQL) and `start` is on a UTC hour,
the hours they cover come from them and only the hours before their oldest / after their newest row from
raw samples (a rollup job that lags, or started after the history). SQLite: raw samples always.

A counter's increase (`Agg.inc`) is the sum of its rises between consecutive good samples; a fall is a
reset and counts the new value from zero. The rise between two samples further apart than `gap_s` (a gap:
no data) is counted apart, in `Agg.inc_gap` of the hour after the gap: it belongs to the period's total but
to no hour (when in the gap it happened is unknown). From rollups the rise is (max − min) within the hour plus
the step from the previous hour's max to this hour's min (a fall there is a reset); a reset inside one
hour cannot be seen from its min and max and is read as its max − min.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import BigInteger, Engine, bindparam, text

from pumpwatch.core.db.types import UTCDateTime, to_utc

__all__ = ["Agg", "hourly"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_HOUR = timedelta(hours=1)
_HOUR_US = 3_600_000_000
# exact integer microseconds since 1970 (as pumpwatch.core.historian buckets them)
_EPOCH_US = {
    "postgresql": "CAST(extract(epoch FROM observed_at) * 1000000 AS bigint)",
    "sqlite": (
        "(CAST(strftime('%s', substr(observed_at, 1, 19)) AS INTEGER) * 1000000"
        " + CAST(substr(observed_at, 21, 6) AS INTEGER))"
    ),
}

_AGG_SQL = """
SELECT point_id, ({ep} - :start_us) / {hour} AS h, count(*),
       sum(CASE WHEN quality = 0 THEN 1 ELSE 0 END),
       sum(CASE WHEN quality = 0 THEN value END),
       min(CASE WHEN quality = 0 THEN value END),
       max(CASE WHEN quality = 0 THEN value END)
FROM sample
WHERE point_id IN :ids AND observed_at >= :lo AND observed_at < :hi
GROUP BY 1, 2
"""

_INC_SQL = """
SELECT point_id, (ep - :start_us) / {hour} AS h,
       sum(CASE WHEN gap <= :gap_us THEN inc ELSE 0 END),
       sum(CASE WHEN gap > :gap_us THEN inc ELSE 0 END)
FROM (
    SELECT point_id, ep, CASE WHEN value >= prev THEN value - prev ELSE value END AS inc, ep - prev_ep AS gap
    FROM (
        SELECT point_id, ep, value,
               lag(value) OVER (PARTITION BY point_id ORDER BY ep) AS prev,
               lag(ep) OVER (PARTITION BY point_id ORDER BY ep) AS prev_ep
        FROM (
            SELECT point_id, {ep} AS ep, value FROM sample
            WHERE point_id IN :ids AND observed_at >= :lo_ext AND observed_at < :hi
                  AND quality = 0 AND value IS NOT NULL
        ) AS s
    ) AS w
    WHERE prev IS NOT NULL
) AS d
WHERE ep >= :lo_us
GROUP BY 1, 2
"""

_ROLLUP_SQL = """
SELECT point_id, bucket_at, n, good, sum, min, max FROM {table}
WHERE point_id IN :ids AND bucket_at >= :lo AND bucket_at < :hi
"""
_READABLE = text(
    "SELECT has_table_privilege(to_regclass('sample_1h_cagg'), 'SELECT'), "
    "has_table_privilege(to_regclass('sample_1h'), 'SELECT')"
)


@dataclass(slots=True)
class Agg:
    """One point's hour: samples (`n`), good ones, sum/min/max of the good values, a counter's rise."""

    n: int = 0
    good: int = 0
    sum: float | None = None
    min: float | None = None
    max: float | None = None
    inc: float = 0.0
    inc_gap: float = 0.0

    def add(self, n: int, good: int, s: float | None, lo: float | None, hi: float | None) -> None:
        self.n += int(n)
        self.good += int(good or 0)
        if s is not None:
            self.sum = float(s) if self.sum is None else self.sum + float(s)
        if lo is not None:
            self.min = float(lo) if self.min is None else min(self.min, float(lo))
        if hi is not None:
            self.max = float(hi) if self.max is None else max(self.max, float(hi))


Hourly = dict[int, dict[int, Agg]]


def _us(t: datetime) -> int:
    return (t - _EPOCH) // _US


def _raw(conn, out: Hourly, ids: list[int], counters: list[int], start, lo, hi, gap_s: float) -> None:
    ep = _EPOCH_US[conn.dialect.name]
    common = {"start_us": _us(start), "lo": lo, "hi": hi}
    agg_sql = text(_AGG_SQL.format(ep=ep, hour=_HOUR_US)).bindparams(
        bindparam("ids", expanding=True),
        bindparam("lo", type_=UTCDateTime()),
        bindparam("hi", type_=UTCDateTime()),
        bindparam("start_us", type_=BigInteger()),
    )
    for pid, h, n, good, s, mn, mx in conn.execute(agg_sql, {**common, "ids": ids}):
        out.setdefault(pid, {}).setdefault(int(h), Agg()).add(n, good, s, mn, mx)
    if not counters:
        return
    inc_sql = text(_INC_SQL.format(ep=ep, hour=_HOUR_US)).bindparams(
        bindparam("ids", expanding=True),
        bindparam("hi", type_=UTCDateTime()),
        bindparam("lo_ext", type_=UTCDateTime()),
        bindparam("start_us", type_=BigInteger()),
        bindparam("lo_us", type_=BigInteger()),
        bindparam("gap_us", type_=BigInteger()),
    )
    params = {
        "start_us": _us(start),
        "hi": hi,
        "lo_ext": lo - timedelta(seconds=gap_s) - _HOUR,  # the last sample before the range
        "lo_us": _us(lo),
        "gap_us": int(gap_s * 1e6),
        "ids": counters,
    }
    for pid, h, inc, inc_gap in conn.execute(inc_sql, params):
        a = out.setdefault(pid, {}).setdefault(int(h), Agg())
        a.inc += float(inc or 0)
        a.inc_gap += float(inc_gap or 0)


def _rollup_table(conn) -> str | None:
    if conn.dialect.name != "postgresql":
        return None
    cagg, hour = conn.execute(_READABLE).one()
    return "sample_1h_cagg" if cagg else "sample_1h" if hour else None


def hourly(
    engine: Engine,
    point_ids: Collection[int],
    counter_ids: Collection[int],
    start: datetime,
    end: datetime,
    *,
    gap_s: float,
    use_rollups: bool = True,
) -> tuple[Hourly, str]:
    """The hourly aggregates of `point_ids` in `[start, end)` and where they came from (`raw`,
    `sample_1h`, `sample_1h_cagg`, or `sample_1h+raw` when both were needed)."""
    start, end = to_utc(start, "start"), to_utc(end, "end")
    ids, counters = sorted(set(point_ids)), sorted(set(counter_ids))
    out: Hourly = {}
    if not ids or end <= start:
        return out, "raw"
    with engine.connect() as conn:
        table = _rollup_table(conn) if use_rollups and _us(start) % _HOUR_US == 0 else None
        if table is None:
            _raw(conn, out, ids, counters, start, start, end, gap_s)
            return out, "raw"
        stmt = text(_ROLLUP_SQL.format(table=table)).bindparams(
            bindparam("ids", expanding=True),
            bindparam("lo", type_=UTCDateTime()),
            bindparam("hi", type_=UTCDateTime()),
        )
        rows = conn.execute(stmt, {"ids": ids, "lo": start - _HOUR, "hi": end}).all()
        inside = [r for r in rows if to_utc(r[1]) >= start]
        if not inside:
            _raw(conn, out, ids, counters, start, start, end, gap_s)
            return out, "raw"
        rolled_from = min(to_utc(r[1]) for r in inside)
        rolled_to = max(to_utc(r[1]) for r in inside) + _HOUR
        cset = set(counters)
        prev: dict[int, tuple[int, float]] = {}  # counter → (hour, max) of its last hour with data
        for pid, at, n, good, s, mn, mx in sorted(rows, key=lambda r: (r[0], to_utc(r[1]))):
            h = (to_utc(at) - start) // _HOUR
            if h >= 0:
                out.setdefault(pid, {}).setdefault(h, Agg()).add(n, good, s, mn, mx)
            if pid not in cset or mn is None or mx is None:
                continue
            if h >= 0:
                a = out[pid][h]
                a.inc += float(mx) - float(mn)
                last = prev.get(pid)
                if last is not None:
                    step = float(mn) - last[1]
                    step = step if step >= 0 else float(mn)  # a fall: reset, counted from zero
                    if h - last[0] == 1:
                        a.inc += step
                    else:
                        a.inc_gap += step
            prev[pid] = (h, float(mx))
        source = table
        for lo, hi in ((start, rolled_from), (rolled_to, end)):
            if lo < hi:
                _raw(conn, out, ids, counters, start, lo, hi, gap_s)
                source = f"{table}+raw"
    return out, source
