"""A report's figures, computed from the historian's hourly aggregates (`reports.source`) and the alarm
and incident tables.

Rules (docs/reports.md §2–§3):
- a row's value comes only from good samples inside the row; an hour without one is a gap: the value is
  None (shown as 欠測 / no data), never a zero or an interpolation;
- each row carries its completeness: good samples of the station's reference point / samples expected
  from its controller's poll interval over the part of the row that has passed;
- a row, or a report, whose period has not ended is `provisional`; rows not begun yet are `not_yet`;
- state time (`time_true`) = good samples with the state true × the poll interval; a counter's increase
  handles resets (`reports.source`); its rise across a gap is counted in the row holding both ends of the
  gap, else only in the period's total.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, select

from pumpwatch.core.config.loader import Fleet
from pumpwatch.core.config.models import StationConfig
from pumpwatch.core.db.schema import alarm, incident, incident_station, point
from pumpwatch.core.db.types import to_utc
from pumpwatch.reports.definitions import ColumnDef, Definitions, TemplateDef
from pumpwatch.reports.errors import ReportError
from pumpwatch.reports.labels import pump_label, t, unit_label
from pumpwatch.reports.periods import Period, RowSpan
from pumpwatch.reports.source import Agg, buckets

__all__ = ["Column", "Report", "Row", "StationReport", "Summary", "build_report"]

_HOUR = timedelta(hours=1)
_ADDITIVE = {"time_true", "increase", "pumped_volume", "integral_h", "alarm_count", "missing"}


@dataclass(frozen=True)
class Column:
    key: str
    figure: str
    unit: str
    label_ja: str
    label_en: str
    point: str | None = None  # the station's point it reads (resolved)
    pump: int | None = None  # 1-based pump index of a per-pump column
    base_key: str = ""  # the template's column key (per-pump columns share it)
    alarm: str | None = None  # alarm_count: only this rule's alarms (None: all)

    def label(self, locale: str) -> str:
        return self.label_ja if locale == "ja" else self.label_en

    def header(self, locale: str) -> str:
        """The label with its unit, as a sheet's or a table's header: `1号ポンプ 運転時間 (h)`."""
        return f"{self.label(locale)} ({unit_label(self.unit, locale)})"


@dataclass
class Row:
    label: str
    start: datetime
    end: datetime
    values: dict[str, float | None]
    completeness: float | None  # percent, None when the row has not begun or the station has no source
    provisional: bool = False  # the row's period has not ended
    not_yet: bool = False  # the row's period has not begun
    no_data: bool = False  # begun, and no good sample of the reference point


@dataclass
class StationReport:
    station_id: str
    name: str
    kind: str
    template: TemplateDef
    columns: list[Column]
    rows: list[Row]
    total: Row
    interval_s: float | None
    notes: list[tuple[str, str]] = field(default_factory=list)  # (ja, en)
    source: str = "raw"
    alarms_by_kind: dict[str, int] = field(default_factory=dict)  # rule name → alarms raised in the period

    def note(self, locale: str) -> list[str]:
        return [ja if locale == "ja" else en for ja, en in self.notes]


@dataclass
class Summary:
    columns: list[Column]
    rows: list[tuple[StationReport, dict[str, float | None]]]
    hints: list[tuple[str, str, str, float, float]]  # station id, name, column key, value, median
    pumps_past_life: list[tuple[str, str, int, int, int]]  # station id, name, pump index, year, life
    incidents: list[dict]
    alarms_by_priority: dict[str, int]


@dataclass
class Report:
    tenant_id: str
    tenant_name: str
    period: Period
    generated_at: datetime
    stations: list[StationReport]
    summary: Summary
    provisional: bool

    def title(self, locale: str) -> str:
        return t("day_report" if self.period.kind == "day" else "month_report", locale)


# --- columns --------------------------------------------------------------------------------------------


def _columns(tpl: TemplateDef, cfg: StationConfig, has: set[str]) -> tuple[list[Column], list[tuple]]:
    cols: list[Column] = []
    notes: list[tuple[str, str]] = []
    for c in tpl.columns:
        if c.per_pump:
            for k, p in enumerate(cfg.pumps, start=1):
                pt = _pick([x.replace("{pump}", p.name) for x in c.point], has)
                if pt is None:
                    notes.append(_missing_note(c, pump_label(k, "ja"), pump_label(k, "en")))
                    continue
                cols.append(
                    Column(
                        f"{p.name}_{c.key}",
                        c.figure,
                        c.unit,
                        f"{pump_label(k, 'ja')} {c.label.ja}",
                        f"{pump_label(k, 'en')} {c.label.en}",
                        pt,
                        k,
                        c.key,
                    )  # fmt: skip
                )
        elif c.point:
            pt = _pick(c.point, has)
            if pt is None:
                notes.append(_missing_note(c, "", ""))
                continue
            cols.append(Column(c.key, c.figure, c.unit, c.label.ja, c.label.en, pt, None, c.key))
        else:
            cols.append(Column(c.key, c.figure, c.unit, c.label.ja, c.label.en, None, None, c.key, c.alarm))
    return cols, notes


def _pick(candidates: Sequence[str], has: set[str]) -> str | None:
    return next((p for p in candidates if p in has), None)


def _missing_note(c: ColumnDef, ja_prefix: str, en_prefix: str) -> tuple[str, str]:
    pts = " / ".join(c.point)
    return (
        f"{(ja_prefix + ' ').lstrip()}{c.label.ja}: 計測点 {pts} がないため省略",
        f"{(en_prefix + ' ').lstrip()}{c.label.en}: left out, the station has no point {pts}",
    )


# --- figures --------------------------------------------------------------------------------------------


@dataclass
class _Ctx:
    start: datetime  # the period's start (hour 0)
    now: datetime
    interval_s: float | None
    hourly: dict[int, dict[int, Agg]]  # point → bucket → aggregate
    width: timedelta  # of a bucket
    pid: dict[str, int]  # point name → id
    ref: str | None
    alarms: list[tuple[str, datetime]]  # (rule name, raised_at)
    rated_flow: dict[int, float]  # pump index → m³/min


def _hours(ctx: _Ctx, span: RowSpan) -> range:
    """The buckets of a row (one, or a day's 23–25 hours when a month's days are not all 24 h)."""
    return range((span.start - ctx.start) // ctx.width, -(-(span.end - ctx.start) // ctx.width))


def _aggs(ctx: _Ctx, name: str | None, hours: range) -> list[Agg]:
    if name is None or name not in ctx.pid:
        return []
    by_hour = ctx.hourly.get(ctx.pid[name], {})
    return [by_hour[h] for h in hours if h in by_hour]


def _gap_rise(ctx: _Ctx, name: str, hours: range) -> float:
    """Rises across gaps that begin and end inside `hours`."""
    by_hour = ctx.hourly.get(ctx.pid.get(name, -1), {})
    total = 0.0
    for h in hours:
        a = by_hour.get(h)
        if a is None or not a.inc_gap:
            continue
        before = [k for k, b in by_hour.items() if k < h and b.good]
        if before and max(before) >= hours.start:
            total += a.inc_gap
    return total


def _value(ctx: _Ctx, col: Column, span: RowSpan, *, whole_period: bool = False) -> float | None:
    hours = _hours(ctx, span)
    iv = ctx.interval_s
    if col.figure == "alarm_count":
        return float(
            sum(
                1
                for name, at in ctx.alarms
                if span.start <= at < span.end and (col.alarm is None or name == col.alarm)
            )
        )
    if col.figure in ("missing", "completeness"):
        elapsed = (min(span.end, ctx.now) - span.start).total_seconds()
        if iv is None or elapsed <= 0:
            return None
        expected = elapsed / iv
        good = sum(a.good for a in _aggs(ctx, ctx.ref, hours))
        if col.figure == "completeness":
            return min(100.0, 100.0 * good / expected)
        return max(0.0, (expected - good) * iv / 60.0)
    aggs = [a for a in _aggs(ctx, col.point, hours) if a.good]
    if col.figure == "increase":
        if not aggs and not whole_period:
            return None
        rise = sum(a.inc for a in _aggs(ctx, col.point, hours))
        if whole_period:
            rise += sum(a.inc_gap for a in _aggs(ctx, col.point, hours))
        else:
            rise += _gap_rise(ctx, col.point or "", hours)
        if not aggs and not rise:
            return None
        return rise
    if not aggs:
        return None
    good = sum(a.good for a in aggs)
    s = sum(a.sum or 0.0 for a in aggs)
    if col.figure == "min":
        return min(a.min for a in aggs if a.min is not None)
    if col.figure == "max":
        return max(a.max for a in aggs if a.max is not None)
    if col.figure == "mean":
        return s / good
    if iv is None:
        return None
    if col.figure == "time_true":
        return s * iv / (3600.0 if col.unit == "h" else 60.0)
    if col.figure == "integral_h":
        return s * iv / 3600.0
    if col.figure == "pumped_volume":
        flow = ctx.rated_flow.get(col.pump or 0)
        return None if flow is None else s * iv / 60.0 * flow
    raise AssertionError(col.figure)


# --- building -------------------------------------------------------------------------------------------


def _catalog(engine: Engine, station_ids: Sequence[str]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    with engine.connect() as conn:
        for pid, sid, name in conn.execute(
            select(point.c.id, point.c.station_id, point.c.name).where(point.c.station_id.in_(station_ids))
        ):
            out.setdefault(sid, {})[name] = pid
    return out


def _alarms(engine: Engine, station_ids: Sequence[str], start: datetime, end: datetime) -> dict:
    out: dict[str, list[tuple[str, datetime]]] = {}
    prio: dict[str, int] = {}
    with engine.connect() as conn:
        rows = conn.execute(
            select(alarm.c.station_id, alarm.c.name, alarm.c.raised_at, alarm.c.priority).where(
                alarm.c.station_id.in_(station_ids), alarm.c.raised_at >= start, alarm.c.raised_at < end
            )
        ).all()
    for sid, name, at, pr in rows:
        out.setdefault(sid, []).append((name, to_utc(at)))
        prio[pr] = prio.get(pr, 0) + 1
    return {"by_station": out, "by_priority": prio}


def _incidents(engine: Engine, tenant_id: str, start: datetime, end: datetime) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(incident).where(
                incident.c.tenant_id == tenant_id, incident.c.opened_at >= start, incident.c.opened_at < end
            )
        ).all()
        counts: dict[int, int] = {}
        if rows:
            for iid, _sid in conn.execute(
                select(incident_station.c.incident_id, incident_station.c.station_id).where(
                    incident_station.c.incident_id.in_([r.id for r in rows])
                )
            ):
                counts[iid] = counts.get(iid, 0) + 1
    return [
        {
            "id": r.id,
            "kind": r.kind,
            "title": r.title,
            "phase": r.phase,
            "opened_at": to_utc(r.opened_at),
            "first_response_at": r.first_response_at and to_utc(r.first_response_at),
            "restored_at": r.restored_at and to_utc(r.restored_at),
            "closed_at": r.closed_at and to_utc(r.closed_at),
            "stations": counts.get(r.id, 0),
        }  # fmt: skip
        for r in sorted(rows, key=lambda r: r.opened_at)
    ]


def _interval(fleet: Fleet, sid: str) -> tuple[float | None, float | None]:
    ctrls = fleet.controllers_of(sid)
    if not ctrls:
        return None, None
    iv = min(c.expected_interval_s for c in ctrls)
    return iv, fleet.stale_after_s(sid) or 3 * iv


def build_report(
    engine: Engine,
    fleet: Fleet,
    defs: Definitions,
    tenant_id: str,
    period: Period,
    now: datetime,
    *,
    station_ids: Iterable[str] | None = None,
    use_rollups: bool = True,
) -> Report:
    """The report of `tenant_id`'s stations (all, or `station_ids`, each of which must be the tenant's:
    another tenant's station is reported as unknown, the same as one that does not exist)."""
    now = to_utc(now, "now")
    tenant = fleet.tenants.get(tenant_id)
    if tenant is None:
        raise ReportError(f"unknown tenant {tenant_id!r}")
    own = [s for s in fleet.stations.values() if s.tenant == tenant_id]
    if station_ids is not None:
        wanted = list(dict.fromkeys(station_ids))
        by_id = {s.id: s for s in own}
        unknown = [w for w in wanted if w not in by_id]
        if unknown:
            raise StationNotFound(unknown)
        own = [by_id[w] for w in wanted]
    sids = [s.id for s in own]
    catalog = _catalog(engine, sids) if sids else {}
    alarms = _alarms(engine, sids, period.start, period.end)
    spans = period.rows()
    whole = RowSpan(period.name, period.start, period.end)

    plans = []
    ids: set[int] = set()
    counters: set[int] = set()
    gap_worst = 0.0
    for cfg in own:
        has = set(fleet.points.get(cfg.id, {}))
        tpl = defs.for_kind(cfg.kind)
        cols, notes = _columns(tpl, cfg, has)
        pid = catalog.get(cfg.id, {})
        ref = _pick(tpl.reference_point, has)
        iv, gap = _interval(fleet, cfg.id)
        if iv is None:
            notes.append(("監視経路がないため数値なし", "no controller reads this station: no figures"))
        if ref is None:
            notes.append(("基準計測点がないため取得率なし", "no reference point: no completeness"))
        for c in cols:
            if c.point and c.point in pid:
                ids.add(pid[c.point])
                if c.figure == "increase":
                    counters.add(pid[c.point])
        if ref and ref in pid:
            ids.add(pid[ref])
        gap_worst = max(gap_worst, gap or 0.0)
        plans.append((cfg, tpl, cols, notes, pid, ref, iv))

    # a month whose days are all 24 h long is grouped by day on the server; else by hour
    width = timedelta(days=1) if all(s.end - s.start == timedelta(days=1) for s in spans) else _HOUR
    width = _HOUR if period.kind == "day" else width
    data, source = buckets(
        engine, ids, counters, period.start, min(period.end, now + _HOUR), width_h=width // _HOUR,
        gap_s=gap_worst or 30.0, use_rollups=use_rollups,
    )  # fmt: skip
    reports: list[StationReport] = []
    for cfg, tpl, cols, notes, pid, ref, iv in plans:
        ctx = _Ctx(
            period.start, now, iv, data, width, pid, ref, alarms["by_station"].get(cfg.id, []),
            {k: p.rated_flow_m3_min for k, p in enumerate(cfg.pumps, start=1)},
        )  # fmt: skip
        rows = [_row(ctx, cols, span) for span in spans]
        total = _row(ctx, cols, whole, whole_period=True)
        if any(c.figure == "pumped_volume" for c in cols):
            notes.append(("揚水量は運転時間 × 定格吐出量", "pumped volume = run time × rated flow"))
        if any(c.figure == "increase" for c in cols) and any(
            a.inc_gap for c in cols if c.point in pid for a in data.get(pid[c.point], {}).values()
        ):
            notes.append(
                ("欠測中の計数増分は合計にのみ含む", "counts that rose during a gap are in the total only")
            )
        kinds: dict[str, int] = {}
        for name, at in ctx.alarms:
            if period.start <= at < period.end:
                kinds[name] = kinds.get(name, 0) + 1
        by_kind = dict(sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])))
        reports.append(
            StationReport(cfg.id, cfg.name, cfg.kind, tpl, cols, rows, total, iv, notes, source, by_kind)
        )
    incidents = _incidents(engine, tenant_id, period.start, period.end)
    summary = _summary(defs, reports, own, period, alarms["by_priority"], incidents)
    return Report(tenant_id, tenant.name, period, now, reports, summary, provisional=now < period.end)


class StationNotFound(ReportError):
    """A station that is not the tenant's (or does not exist): the API answers 404."""

    def __init__(self, ids: Sequence[str]) -> None:
        super().__init__(f"unknown station {', '.join(map(repr, ids))}")
        self.ids = list(ids)


def _row(ctx: _Ctx, cols: list[Column], span: RowSpan, *, whole_period: bool = False) -> Row:
    if span.start >= ctx.now:
        return Row(span.label, span.start, span.end, dict.fromkeys(c.key for c in cols), None, True, True)
    values = {}
    for c in cols:
        values[c.key] = _value(ctx, c, span, whole_period=whole_period)
    ref_good = sum(a.good for a in _aggs(ctx, ctx.ref, _hours(ctx, span)))
    comp_col = Column("_c", "completeness", "pct", "", "")
    comp = _value(ctx, comp_col, span) if ctx.ref else None
    return Row(
        span.label, span.start, span.end, values, comp,
        provisional=span.end > ctx.now, no_data=ctx.ref is not None and ref_good == 0,
    )  # fmt: skip


def _summary(
    defs: Definitions, reports: list[StationReport], cfgs: list[StationConfig], period: Period,
    by_priority: dict[str, int], incidents: list[dict],
) -> Summary:  # fmt: skip
    spec = [
        ("starts", "count", "起動回数 計", "starts"),
        ("run_time", "h", "運転時間 計", "run time"),
        ("power_failures", "count", "停電回数", "power failures"),
        ("power_failure_time", "min", "停電時間", "power failure time"),
        ("alarms", "count", "警報件数", "alarms"),
        ("comm_loss", "min", "欠測時間", "comm loss"),
        ("completeness", "pct", "データ取得率", "data completeness"),
    ]
    cols = [Column(k, "sum", u, ja, en, base_key=k) for k, u, ja, en in spec]
    rows = []
    for r in reports:
        vals: dict[str, float | None] = {}
        for key, *_ in spec:
            if key == "completeness":
                vals[key] = r.total.completeness
                continue
            parts = [r.total.values[c.key] for c in r.columns if c.base_key == key]
            known = [p for p in parts if p is not None]
            vals[key] = sum(known) if known else None
        rows.append((r, vals))
    hints: list[tuple[str, str, str, float, float]] = []
    for key in ("starts", "run_time"):
        by_kind: dict[str, list[float]] = {}
        for r, v in rows:
            x = v[key]
            if x is not None:
                by_kind.setdefault(r.kind, []).append(x)
        for r, v in rows:
            x, vals_k = v[key], by_kind.get(r.kind, [])
            if x is None or len(vals_k) < 3:
                continue
            med = statistics.median(vals_k)
            if med > 0 and x > defs.summary.hint_factor * med:
                hints.append((r.station_id, r.name, key, x, med))
    past = []
    year = period.last_day.year
    for cfg in cfgs:
        life = defs.summary.standard_life_years.get(cfg.kind)
        if life is None:
            continue
        for k, p in enumerate(cfg.pumps, start=1):
            if p.install_year is not None and year - p.install_year >= life:
                past.append((cfg.id, cfg.name, k, p.install_year, life))
    return Summary(cols, rows, hints, past, incidents, by_priority)
