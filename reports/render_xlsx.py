"""Excel (.xlsx, openpyxl): a summary sheet first, then one sheet per station. Numbers are numbers (a
number format per unit), units are in the headers, a gap is an empty cell with the row's status 欠測 /
no data beside it, a provisional report says so in its title."""

from __future__ import annotations

import io
import re

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from pumpwatch.reports.compute import Column, Report, Row, StationReport
from pumpwatch.reports.labels import pump_label, t

__all__ = ["render_xlsx", "sheet_name"]

_FORMAT = {"h": "0.00", "min": "0.0", "count": "0", "m3": "0.0", "m": "0.00", "mm": "0.0", "kWh": "0.0",
           "mg/L": "0.0", "pct": "0.0"}  # fmt: skip
_BOLD = Font(bold=True)
_HEAD_FILL = PatternFill("solid", fgColor="DDE4EE")
_GAP_FILL = PatternFill("solid", fgColor="F3E0E0")
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


def _heading(ws: Worksheet, report: Report, locale: str, subtitle: str) -> int:
    title = f"{report.tenant_name}  {report.title(locale)}"
    if report.provisional:
        title += f"  [{t('provisional', locale)}]"
    ws.append([title])
    ws["A1"].font = Font(bold=True, size=14)
    ws.append([f"{t('period', locale)}: {report.period.name} ({report.period.tz})", subtitle])
    ws.append(
        [f"{t('generated', locale)}: {report.generated_at.astimezone(report.period.zone):%Y-%m-%d %H:%M}"]
    )
    ws.append([])
    return 5


def _table(
    ws: Worksheet, first_header: str, cols: list[Column], rows: list[tuple[str, dict, str]], locale: str
) -> None:
    header = [first_header, *(c.header(locale) for c in cols), t("status", locale)]
    ws.append(header)
    r0 = ws.max_row
    for cell in ws[r0]:
        cell.font = _BOLD
        cell.fill = _HEAD_FILL
        cell.alignment = Alignment(wrap_text=True, vertical="center")
    for label, values, status in rows:
        ws.append([label, *(values.get(c.key) for c in cols), status])
        r = ws.max_row
        for j, c in enumerate(cols, start=2):
            cell = ws.cell(r, j)
            cell.number_format = _FORMAT[c.unit]
            if cell.value is None and status:
                cell.fill = _GAP_FILL
    ws.freeze_panes = ws.cell(r0 + 1, 2)
    ws.column_dimensions["A"].width = 14
    for j in range(2, len(header) + 1):
        ws.column_dimensions[get_column_letter(j)].width = 12
    ws.row_dimensions[r0].height = 45


def _station_sheet(ws: Worksheet, report: Report, st: StationReport, locale: str) -> None:
    _heading(
        ws,
        report,
        locale,
        f"{st.name} ({st.station_id}) · {st.template.title.ja if locale == 'ja' else st.template.title.en}",
    )
    first = t("time" if report.period.kind == "day" else "date", locale)
    rows = [(r.label, r.values, _status(r, locale)) for r in st.rows]
    rows.append((t("total", locale), st.total.values, _status(st.total, locale)))
    _table(ws, first, st.columns, rows, locale)
    ws.cell(ws.max_row, 1).font = _BOLD
    notes = st.note(locale)
    if notes:
        ws.append([])
        ws.append([t("notes", locale)])
        for n in notes:
            ws.append([n])


def _summary_sheet(ws: Worksheet, report: Report, locale: str) -> None:
    s = report.summary
    _heading(ws, report, locale, t("summary", locale))
    rows = [(f"{r.name} ({r.station_id})", v, _status(r.total, locale)) for r, v in s.rows]
    _table(ws, t("station", locale), s.columns, rows, locale)
    ws.column_dimensions["A"].width = 26
    ws.append([])
    ws.append([t("hints", locale)])
    ws.cell(ws.max_row, 1).font = _BOLD
    labels = {c.key: c.header(locale) for c in s.columns}
    for sid, name, key, value, median in s.hints or []:
        ws.append([f"{name} ({sid})", labels[key], value, t("median", locale), median])
    if not s.hints:
        ws.append([t("none", locale)])
    ws.append([])
    ws.append([t("past_life", locale)])
    ws.cell(ws.max_row, 1).font = _BOLD
    if s.pumps_past_life:
        ws.append(
            [t("station", locale), t("pump", locale), t("install_year", locale), t("life_years", locale)]
        )
    for sid, name, k, year, life in s.pumps_past_life:
        ws.append([f"{name} ({sid})", pump_label(k, locale), year, life])
    if not s.pumps_past_life:
        ws.append([t("none", locale)])
    ws.append([])
    ws.append([t("incidents", locale)])
    ws.cell(ws.max_row, 1).font = _BOLD
    tz = report.period.zone
    if s.incidents:
        ws.append(
            [
                t("title", locale),
                t("phase", locale),
                t("opened", locale),
                t("restored", locale),
                t("closed", locale),
                t("stations_n", locale),
            ]
        )
    for i in s.incidents:
        when = [
            i[k] and i[k].astimezone(tz).replace(tzinfo=None)
            for k in ("opened_at", "restored_at", "closed_at")
        ]
        ws.append([i["title"], i["phase"], *when, i["stations"]])
        for j in (3, 4, 5):
            ws.cell(ws.max_row, j).number_format = "yyyy-mm-dd hh:mm"
    if not s.incidents:
        ws.append([t("none", locale)])
    ws.append([])
    ws.append([t("alarm_kpis", locale)])
    ws.cell(ws.max_row, 1).font = _BOLD
    ws.append([t("priority", locale), t("count", locale)])
    for prio, n in sorted(s.alarms_by_priority.items()):
        ws.append([prio, n])


def render_xlsx(report: Report, locale: str) -> bytes:
    wb = Workbook()
    ws = wb.active
    used: set[str] = set()
    ws.title = sheet_name(t("summary", locale), used)
    _summary_sheet(ws, report, locale)
    for st in report.stations:
        _station_sheet(wb.create_sheet(sheet_name(st.station_id, used)), report, st, locale)
    wb.properties.title = f"{report.tenant_name} {report.title(locale)} {report.period.name}"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
