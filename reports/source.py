"""Aggregates per point and time bucket for a report, from the historian.

`buckets(engine, points, counters, start, end, width_h=…, gap_s=…)` → `({point_id: {bucket: Agg}}, source)`,
bucket `k` covering `[start + k·w, start + (k+1)·w)` (w = 1 h for a day's hourly rows, 24 h for a month's
days when every day of it is 24 h long). The server groups the rows: a month of 200 stations is about
100,000 aggregates, not 1.3 million hourly rows. Where the historian keeps hourly rollups (TimescaleDB's
continuous aggregate `sample_1h_cagg`, else the plain `sample_1h` on PostgreSQL) and `start` is on a UTC
hour, the hours they cover come from them and only the hours before their oldest / after their newest
row from raw samples (a rollup job that lags, or started after the history). SQLite: raw samples.

A counter's increase (`Agg.inc`) is the sum of its rises between consecutive good samples; a fall is a
reset and counts the new value from zero. The rise across a gap (two samples further apart than `gap_s`,
or rollup hours not adjacent) whose start lies in an earlier bucket is counted apart, in `Agg.inc_gap` of
the bucket after it: it belongs to the period's total, to no single bucket. From rollups a rise is
(max − min) within an hour plus the step from the previous hour's max to this hour's min (a fall there
is a reset); a reset inside one hour cannot be seen from its min and max and is read as its max − min.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, Engine, bindparam, text

from pumpwatch.core.db.types import UTCDateTime, to_utc

__all__ = ["Agg", "buckets"]

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
SELECT point_id, ({ep} - :start_us) / :width_us AS b, count(*),
       sum(CASE WHEN quality = 0 THEN 1 ELSE 0 END),
       sum(CASE WHEN quality = 0 THEN value END),
       min(CASE WHEN quality = 0 THEN value END),
       max(CASE WHEN quality = 0 THEN value END)
FROM sample
WHERE point_id IN :ids AND observed_at >= :lo AND observed_at < :hi
GROUP BY 1, 2
"""

# between consecutive good samples: a rise (a fall is a reset: the new value), counted in the later
# sample's bucket; across a gap from an earlier bucket, apart (inc_gap)
_INC_SQL = """
SELECT point_id, b,
       sum(CASE WHEN gap <= :gap_us OR pb = b THEN inc ELSE 0 END),
       sum(CASE WHEN gap > :gap_us AND pb <> b THEN inc ELSE 0 END)
FROM (
    SELECT point_id, ep, (ep - :start_us) / :width_us AS b,
           CASE WHEN prev_ep < :start_us THEN -1 ELSE (prev_ep - :start_us) / :width_us END AS pb,
           CASE WHEN value >= prev THEN value - prev ELSE value END AS inc, ep - prev_ep AS gap
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
# Rollups: the hour's index is computed by the server (turning each bucket_at into a datetime cost more
# than the rest of the report), and the rows are grouped into buckets there.
_ROLLUP_AGG_SQL = """
SELECT point_id, h / :width_h AS b, sum(n), sum(good), sum(sum), min(min), max(max), min(h), max(h)
FROM (
    SELECT point_id, CAST(floor((extract(epoch FROM bucket_at) - :start_s) / 3600) AS integer) AS h,
           n, good, sum, min, max
    FROM {table}
    WHERE point_id IN :ids AND bucket_at >= :lo AND bucket_at < :hi
) AS r
GROUP BY 1, 2
"""
_ROLLUP_INC_SQL = """
SELECT point_id, h / :width_h AS b,
       sum(mx - mn + CASE WHEN ph IS NULL THEN 0
                          WHEN ph = h - 1 OR (ph >= 0 AND ph / :width_h = h / :width_h)
                          THEN CASE WHEN mn >= pmax THEN mn - pmax ELSE mn END
                          ELSE 0 END),
       sum(CASE WHEN ph IS NOT NULL AND ph >= 0 AND ph < h - 1 AND ph / :width_h <> h / :width_h
                THEN CASE WHEN mn >= pmax THEN mn - pmax ELSE mn END ELSE 0 END)
FROM (
    SELECT point_id, h, mn, mx, lag(h) OVER w AS ph, lag(mx) OVER w AS pmax
    FROM (
        SELECT point_id, CAST(floor((extract(epoch FROM bucket_at) - :start_s) / 3600) AS integer) AS h,
               min AS mn, max AS mx
        FROM {table}
        WHERE point_id IN :ids AND bucket_at >= :lo AND bucket_at < :hi AND min IS NOT NULL
    ) AS r
    WINDOW w AS (PARTITION BY point_id ORDER BY h)
) AS x
WHERE h >= 0
GROUP BY 1, 2
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


Buckets = dict[int, dict[int, Agg]]


def _us(t: datetime) -> int:
    return (t - _EPOCH) // _US


def _params(names: tuple[str, ...]) -> list[Any]:
    types = {"lo": UTCDateTime(), "hi": UTCDateTime(), "lo_ext": UTCDateTime()}
    out: list[Any] = [bindparam("ids", expanding=True)]
    for n in names:
        out.append(bindparam(n, type_=types.get(n, BigInteger())))
    return out


def _raw(conn, out: Buckets, ids, counters, start: datetime, lo: datetime, hi: datetime, width_h: int, gap_s):
    ep = _EPOCH_US[conn.dialect.name]
    width_us = width_h * _HOUR_US
    agg = text(_AGG_SQL.format(ep=ep)).bindparams(*_params(("lo", "hi", "start_us", "width_us")))
    for pid, b, n, good, s, mn, mx in conn.execute(
        agg, {"ids": ids, "lo": lo, "hi": hi, "start_us": _us(start), "width_us": width_us}
    ):
        _add(out, pid, int(b), n, good, s, mn, mx)
    if not counters:
        return
    inc = text(_INC_SQL.format(ep=ep)).bindparams(
        *_params(("hi", "lo_ext", "start_us", "lo_us", "gap_us", "width_us"))
    )
    params = {
        "ids": counters,
        "hi": hi,
        "lo_ext": lo - timedelta(seconds=gap_s) - _HOUR,  # the last sample before the range
        "start_us": _us(start),
        "lo_us": _us(lo),
        "gap_us": int(gap_s * 1e6),
        "width_us": width_us,
    }
    for pid, b, rise, rise_gap in conn.execute(inc, params):
        a = out.setdefault(pid, {}).setdefault(int(b), Agg())
        a.inc += float(rise or 0)
        a.inc_gap += float(rise_gap or 0)


def _add(out: Buckets, pid: int, b: int, n, good, s, mn, mx) -> None:
    by = out.get(pid)
    if by is None:
        by = out[pid] = {}
    a = by.get(b)
    if a is None:
        by[b] = Agg(int(n), int(good or 0), s, mn, mx)
    else:
        a.add(n, good, s, mn, mx)


def _rollup_table(conn) -> str | None:
    if conn.dialect.name != "postgresql":
        return None
    cagg, hour = conn.execute(_READABLE).one()
    return "sample_1h_cagg" if cagg else "sample_1h" if hour else None


def buckets(
    engine: Engine,
    point_ids: Collection[int],
    counter_ids: Collection[int],
    start: datetime,
    end: datetime,
    *,
    width_h: int = 1,
    gap_s: float,
    use_rollups: bool = True,
) -> tuple[Buckets, str]:
    """The aggregates of `point_ids` in `[start, end)` per bucket of `width_h` hours, and where they
    came from (`raw`, `sample_1h`, `sample_1h_cagg`, or `…+raw` when the rollup did not cover it all)."""
    start, end = to_utc(start, "start"), to_utc(end, "end")
    ids, counters = sorted(set(point_ids)), sorted(set(counter_ids))
    out: Buckets = {}
    if not ids or end <= start:
        return out, "raw"
    with engine.connect() as conn:
        table = _rollup_table(conn) if use_rollups and _us(start) % _HOUR_US == 0 else None
        if table is None:
            _raw(conn, out, ids, counters, start, start, end, width_h, gap_s)
            return out, "raw"
        p = {
            "ids": ids,
            "lo": start - _HOUR,
            "hi": end,
            "start_s": _us(start) // 1_000_000,
            "width_h": width_h,
        }
        agg = text(_ROLLUP_AGG_SQL.format(table=table)).bindparams(
            bindparam("ids", expanding=True),
            bindparam("lo", type_=UTCDateTime()),
            bindparam("hi", type_=UTCDateTime()),
        )
        first_h: int | None = None
        last_h: int | None = None
        for pid, b, n, good, s, mn, mx, h0, h1 in conn.execute(agg, p):
            _add(out, pid, int(b), n, good, s, mn, mx)
            first_h = h0 if first_h is None else min(first_h, h0)
            last_h = h1 if last_h is None else max(last_h, h1)
        if first_h is None:
            _raw(conn, out, ids, counters, start, start, end, width_h, gap_s)
            return out, "raw"
        if counters:
            inc = text(_ROLLUP_INC_SQL.format(table=table)).bindparams(
                bindparam("ids", expanding=True),
                bindparam("lo", type_=UTCDateTime()),
                bindparam("hi", type_=UTCDateTime()),
            )
            # from the hour before the period: its max is where the first hour's rise starts
            for pid, b, rise, rise_gap in conn.execute(inc, {**p, "ids": counters, "lo": start - _HOUR}):
                a = out.setdefault(pid, {}).setdefault(int(b), Agg())
                a.inc += float(rise or 0)
                a.inc_gap += float(rise_gap or 0)
        source = table
        assert last_h is not None  # set with first_h
        for lo, hi in ((start, start + first_h * _HOUR), (start + (last_h + 1) * _HOUR, end)):
            if lo < hi:
                _raw(conn, out, ids, counters, start, lo, hi, width_h, gap_s)
                source = f"{table}+raw"
    return out, source
