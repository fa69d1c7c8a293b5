"""Excel (.xlsx, openpyxl, write-only mode: a month of 200 stations in seconds): a summary sheet first,
then one sheet per station. Numbers are numbers (a number format per unit), units are in the headers, a
gap is an empty cell (shaded) with the row's status 欠測 / no data beside it, a provisional report says so
in its title."""

from __future__ import annotations

import io
import re
from copy import copy
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from pumpwatch.reports.compute import Column, Report, Row, StationReport
from pumpwatch.reports.labels import pump_label, t

__all__ = ["render_xlsx", "sheet_name"]

_FORMAT = {"h": "0.00", "min": "0.0", "count": "0", "m3": "0.0", "m": "0.00", "mm": "0.0", "kWh": "0.0",
           "mg/L": "0.0", "pct": "0.0"}  # fmt: skip
_BOLD = Font(bold=True)
_TITLE = Font(bold=True, size=14)
_HEAD_FILL = PatternFill("solid", fgColor="DDE4EE")
_GAP_FILL = PatternFill("solid", fgColor="F3E0E0")
_WRAP = Alignment(wrap_text=True, vertical="center")
_BAD = re.compile(r"[\[\]:*?/\\]")


def sheet_name(station_id: str, used: set[str]) -> str:
    """An Excel sheet name (≤ 31 characters, none of []:*?/\\), unique in the workbook."""
    base = _BAD.sub("_", station_id)[:31]
    name, n = base, 2
    while name in used:
        suffix = f"~{n}"
        name, n = base[: 31 - len(suffix)] + suffix, n + 1
    used.add(name)
    return name


def _status(row: Row, locale: str) -> str:
    if row.not_yet:
        return t("not_yet", locale)
    if row.no_data:
        return t("no_data", locale)
    return t("provisional", locale) if row.provisional else ""


class _Sheet:
    """A write-only sheet: rows are appended once, styled cell by cell as they go.

    Setting a font or number format on a cell makes openpyxl hash the style objects each time (two thirds
    of a month's workbook); each combination is set once per workbook and its index array copied."""

    def __init__(self, ws: Worksheet, styles: dict) -> None:
        self.ws = ws
        self.styles = styles

    def cell(self, value: Any, *, font: Font | None = None, fill=None, fmt: str | None = None, align=None):
        c = WriteOnlyCell(self.ws, value=value)
        if font is None and fill is None and fmt is None and align is None:
            return c
        key = (id(font), id(fill), fmt, id(align))
        style = self.styles.get(key)
        if style is None:
            if font is not None:
                c.font = font
            if fill is not None:
                c.fill = fill
            if fmt is not None:
                c.number_format = fmt
            if align is not None:
                c.alignment = align
            self.styles[key] = copy(c._style)
        else:
            c._style = copy(style)
        return c

    def row(self, *values: Any, font: Font | None = None) -> None:
        self.ws.append([self.cell(v, font=font) if font else v for v in values])

    def heading(self, report: Report, locale: str, subtitle: str) -> None:
        title = f"{report.tenant_name}  {report.title(locale)}"
        if report.provisional:
            title += f"  [{t('provisional', locale)}]"
        self.row(title, font=_TITLE)
        self.row(f"{t('period', locale)}: {report.period.name} ({report.period.tz})", subtitle)
        gen = report.generated_at.astimezone(report.period.zone)
        self.row(f"{t('generated', locale)}: {gen:%Y-%m-%d %H:%M}")
        self.row()

    def table(self, first: str, cols: list[Column], rows: list[tuple[str, dict, str]], locale: str) -> None:
        header = [first, *(c.header(locale) for c in cols), t("status", locale)]
        self.ws.append([self.cell(h, font=_BOLD, fill=_HEAD_FILL, align=_WRAP) for h in header])
        fmts = [_FORMAT[c.unit] for c in cols]
        keys = [c.key for c in cols]
        last = len(rows) - 1
        for i, (label, values, status) in enumerate(rows):
            gap = bool(status) and status != t("provisional", locale)
            out: list[Any] = [self.cell(label, font=_BOLD) if i == last else label]
            for k, f in zip(keys, fmts, strict=True):
                v = values.get(k)
                out.append(self.cell(None, fill=_GAP_FILL) if v is None and gap else self.cell(v, fmt=f))
            out.append(status)
            self.ws.append(out)


def _layout(ws: Worksheet, ncols: int, first_w: float, header_row: int) -> None:
    """Widths and the frozen header: set before any row is written (write-only sheets)."""
    ws.column_dimensions["A"].width = first_w
    for j in range(2, ncols + 1):
        ws.column_dimensions[get_column_letter(j)].width = 12
    ws.freeze_panes = f"B{header_row + 1}"


def _station_sheet(ws: Worksheet, report: Report, st: StationReport, locale: str, styles: dict) -> None:
    _layout(ws, len(st.columns) + 2, 14, 5)
    sh = _Sheet(ws, styles)
    title = st.template.title.ja if locale == "ja" else st.template.title.en
    sh.heading(report, locale, f"{st.name} ({st.station_id}) · {title}")
    first = t("time" if report.period.kind == "day" else "date", locale)
    rows = [(r.label, r.values, _status(r, locale)) for r in st.rows]
    rows.append((t("total", locale), st.total.values, _status(st.total, locale)))
    sh.table(first, st.columns, rows, locale)
    sh.row()
    sh.row(t("alarms_by_kind", locale), font=_BOLD)
    for name, n in st.alarms_by_kind.items():
        sh.row(name, n)
    if not st.alarms_by_kind:
        sh.row(t("none", locale))
    notes = st.note(locale)
    if notes:
        sh.row()
        sh.row(t("notes", locale), font=_BOLD)
        for note in notes:
            sh.row(note)


def _summary_sheet(ws: Worksheet, report: Report, locale: str, styles: dict) -> None:
    s = report.summary
    _layout(ws, len(s.columns) + 2, 26, 5)
    sh = _Sheet(ws, styles)
    sh.heading(report, locale, t("summary", locale))
    rows = [(f"{r.name} ({r.station_id})", v, _status(r.total, locale)) for r, v in s.rows]
    sh.table(t("station", locale), s.columns, rows, locale)
    sh.row()
    sh.row(t("hints", locale), font=_BOLD)
    labels = {c.key: c.header(locale) for c in s.columns}
    for sid, name, key, value, median in s.hints:
        sh.row(f"{name} ({sid})", labels[key], value, t("median", locale), median)
    if not s.hints:
        sh.row(t("none", locale))
    sh.row()
    sh.row(t("past_life", locale), font=_BOLD)
    if s.pumps_past_life:
        sh.row(t("station", locale), t("pump", locale), t("install_year", locale), t("life_years", locale))
    for sid, name, k, year, life in s.pumps_past_life:
        sh.row(f"{name} ({sid})", pump_label(k, locale), year, life)
    if not s.pumps_past_life:
        sh.row(t("none", locale))
    sh.row()
    sh.row(t("incidents", locale), font=_BOLD)
    tz = report.period.zone
    if s.incidents:
        sh.row(*(t(k, locale) for k in ("title", "phase", "opened", "restored", "closed", "stations_n")))
    for i in s.incidents:
        when = [
            i[k] and i[k].astimezone(tz).replace(tzinfo=None)
            for k in ("opened_at", "restored_at", "closed_at")
        ]
        ws.append(
            [i["title"], i["phase"], *(sh.cell(w, fmt="yyyy-mm-dd hh:mm") for w in when), i["stations"]]
        )
    if not s.incidents:
        sh.row(t("none", locale))
    sh.row()
    sh.row(t("alarm_kpis", locale), font=_BOLD)
    sh.row(t("priority", locale), t("count", locale))
    for prio, n in sorted(s.alarms_by_priority.items()):
        sh.row(prio, n)


def render_xlsx(report: Report, locale: str) -> bytes:
    wb = Workbook(write_only=True)
    used: set[str] = set()
    styles: dict = {}
    _summary_sheet(wb.create_sheet(sheet_name(t("summary", locale), used)), report, locale, styles)
    for st in report.stations:
        _station_sheet(wb.create_sheet(sheet_name(st.station_id, used)), report, st, locale, styles)
    wb.properties.title = f"{report.tenant_name} {report.title(locale)} {report.period.name}"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
