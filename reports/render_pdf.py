"""PDF (fpdf2): A4 portrait, the municipality's name, the report and the period on every page, page
numbers `n / N`, a summary page, then each station on a page of its own; Japanese text in Debian's Noto
Sans CJK (package fonts-noto-cjk), embedded as a subset.

ReportLab was the first choice and cannot be used with that font: it reads TrueType outlines only, and
Debian's Noto CJK has CFF (PostScript) outlines. Without the font the PDF is refused with `PdfUnavailable`
(it says what to install), never rendered with boxes instead of characters.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import cast

from fpdf import FPDF
from fpdf.enums import WrapMode

from pumpwatch.reports.compute import Column, Report, Row
from pumpwatch.reports.errors import ReportError
from pumpwatch.reports.labels import pump_label, t, unit_label

__all__ = ["PdfUnavailable", "cjk_fonts", "render_pdf"]

_FONT_DIRS = ("/usr/share/fonts/opentype/noto", "/usr/share/fonts/truetype/noto", "/usr/local/share/fonts")
_MAX_COLS = 15  # figure columns per table on a portrait A4 page (a manhole station: one table)
_DIGITS = {"h": 2, "min": 1, "count": 0, "m3": 1, "m": 2, "mm": 1, "kWh": 1, "mg/L": 1, "pct": 1}


class PdfUnavailable(ReportError):
    """No CJK font: the PDF cannot show Japanese text (install Debian's fonts-noto-cjk)."""


def cjk_fonts() -> Path:
    """The Noto Sans CJK collection (one weight: embedding a second costs as much time again);
    `PUMPWATCH_REPORT_FONT_DIR` overrides where to look."""
    dirs = [os.environ["PUMPWATCH_REPORT_FONT_DIR"]] if os.environ.get("PUMPWATCH_REPORT_FONT_DIR") else []
    for d in (*dirs, *_FONT_DIRS):
        reg = Path(d) / "NotoSansCJK-Regular.ttc"
        if reg.is_file():
            return reg
    raise PdfUnavailable(
        "PDF reports need the Noto Sans CJK font (Debian: apt-get install fonts-noto-cjk); "
        f"looked in {', '.join((*dirs, *_FONT_DIRS))}"
    )


def _fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "—"
    return f"{v:,.{_DIGITS[unit]}f}"


class _Doc(FPDF):
    def __init__(self, report: Report, locale: str) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.report, self.locale = report, locale
        reg = cjk_fonts()
        self.add_font("NotoCJK", "", str(reg), collection_font_number=0)  # index 0: the JP forms
        self.set_margins(10, 18, 10)
        self.set_auto_page_break(True, margin=14)
        self.alias_nb_pages()
        self.set_title(f"{report.tenant_name} {report.title(locale)} {report.period.name}")
        self.set_creator("pumpwatch")

    def header(self) -> None:
        r, loc = self.report, self.locale
        self.set_font("NotoCJK", "", 11.5)
        title = f"{r.tenant_name}  {r.title(loc)}"
        if r.provisional:
            title += f"  [{t('provisional', loc)}]"
        self.set_xy(10, 7)
        self.cell(0, 6, title)
        self.set_font("NotoCJK", "", 8)
        self.set_xy(10, 7)
        self.cell(0, 6, f"{t('period', loc)}: {r.period.name} ({r.period.tz})", align="R")
        self.line(10, 14, 200, 14)
        self.set_y(17)

    def footer(self) -> None:
        self.set_y(-11)
        self.set_font("NotoCJK", "", 7)
        gen = self.report.generated_at.astimezone(self.report.period.zone)
        self.cell(95, 5, f"{t('generated', self.locale)}: {gen:%Y-%m-%d %H:%M} · pumpwatch")
        self.cell(95, 5, f"{t('page', self.locale)} {self.page_no()} / {{nb}}", align="R")

    def heading(self, text: str) -> None:
        self.set_font("NotoCJK", "", 10.5)
        self.cell(0, 7, text, new_x="LMARGIN", new_y="NEXT")

    def para(self, text: str, size: float = 7.5) -> None:
        self.set_font("NotoCJK", "", size)
        self.multi_cell(0, 4, text, new_x="LMARGIN", new_y="NEXT", wrapmode=WrapMode.CHAR)

    def grid(self, first: str, cols: list[Column], rows: list[tuple[str, dict, str]], first_w: float) -> None:
        """A table drawn cell by cell (fpdf2's `table()` lays out every cell as a paragraph: 20× slower);
        the header row is repeated on each page the table runs onto."""
        loc = self.locale
        n = len(cols)
        status_w = 12.0
        w = (190 - first_w - status_w) / max(1, n)
        size = 6.5 if n <= 12 else 5.8
        line = size * 0.42
        heads = [first, *(f"{c.label(loc)} ({unit_label(c.unit, loc)})" for c in cols), t("status", loc)]
        wrap = WrapMode.CHAR if loc == "ja" else WrapMode.WORD  # Japanese has no spaces to break at
        widths = [first_w, *([w] * n), status_w]
        self.set_font("NotoCJK", "", size)
        lines: list[list[str]] = [  # output="LINES": the lines (fpdf2's return type is a union)
            cast("list[str]", self.multi_cell(wd - 1, line, h, dry_run=True, output="LINES", wrapmode=wrap))
            for wd, h in zip(widths, heads, strict=True)
        ]
        head_h = max(len(x) for x in lines) * line + 1.5
        row_h = line + 1.4

        def draw_head() -> None:
            self.set_font("NotoCJK", "", size)
            self.set_fill_color(221, 228, 238)
            x0, y0 = self.l_margin, self.get_y()
            for wd, ls in zip(widths, lines, strict=True):
                self.rect(x0, y0, wd, head_h, style="DF")
                self.set_xy(x0 + 0.5, y0 + 0.75)
                self.multi_cell(wd - 1, line, "\n".join(ls), align="C")
                x0 += wd
            self.set_xy(self.l_margin, y0 + head_h)

        draw_head()
        for label, values, status in rows:
            if self.get_y() + row_h > self.page_break_trigger:
                self.add_page()
                draw_head()
            self.set_font("NotoCJK", "", size)
            fill = bool(status) and status != "速報" and status != "prov."
            self.set_fill_color(243, 224, 224)
            self.cell(first_w, row_h, label, border=1, fill=fill)
            for c in cols:
                self.cell(w, row_h, _fmt(values.get(c.key), c.unit), border=1, align="R", fill=fill)
            self.cell(status_w, row_h, status, border=1, fill=fill, new_x="LMARGIN", new_y="NEXT")


def _status(row: Row, locale: str) -> str:
    if row.not_yet:
        return t("not_yet", locale)
    if row.no_data:
        return t("no_data", locale)
    return "速報" if row.provisional and locale == "ja" else "prov." if row.provisional else ""


def render_pdf(report: Report, locale: str) -> bytes:
    doc = _Doc(report, locale)
    loc = locale
    s = report.summary
    doc.add_page()
    doc.heading(t("summary", loc))
    doc.grid(
        t("station", loc), s.columns,
        [(f"{r.name} {r.station_id}", v, _status(r.total, loc)) for r, v in s.rows], 40,
    )  # fmt: skip
    labels = {c.key: c.header(loc) for c in s.columns}
    doc.ln(3)
    doc.heading(t("hints", loc))
    doc.para(
        "\n".join(
            f"{n} ({sid}): {labels[k]} {v:,.1f} ({t('median', loc)} {m:,.1f})" for sid, n, k, v, m in s.hints
        )
        or t("none", loc)
    )
    doc.heading(t("past_life", loc))
    doc.para(
        "\n".join(
            f"{n} ({sid}) {pump_label(k, loc)}: {t('install_year', loc)} {y}, {t('life_years', loc)} {life}"
            for sid, n, k, y, life in s.pumps_past_life
        )
        or t("none", loc)
    )
    doc.heading(t("incidents", loc))
    tz = report.period.zone
    doc.para(
        "\n".join(
            f"#{i['id']} {i['title']} [{i['phase']}] "
            f"{t('opened', loc)} {i['opened_at'].astimezone(tz):%m-%d %H:%M}"
            + (
                f", {t('restored', loc)} {i['restored_at'].astimezone(tz):%m-%d %H:%M}"
                if i["restored_at"]
                else ""
            )
            + f", {t('stations_n', loc)} {i['stations']}"
            for i in s.incidents
        )
        or t("none", loc)
    )
    doc.heading(t("alarm_kpis", loc))
    doc.para(", ".join(f"{p}: {n}" for p, n in sorted(s.alarms_by_priority.items())) or t("none", loc))
    first = t("time" if report.period.kind == "day" else "date", loc)
    for st in report.stations:
        doc.add_page()
        title = st.template.title.ja if loc == "ja" else st.template.title.en
        doc.heading(f"{st.name} ({st.station_id}) · {title}")
        rows = [(r.label, r.values, _status(r, loc)) for r in st.rows]
        rows.append((t("total", loc), st.total.values, _status(st.total, loc)))
        # a wide station (a relay station's four pumps: 24 columns) in balanced parts of at most
        # _MAX_COLS, each with the time column, one below the other: portrait A4 stays legible
        parts = -(-len(st.columns) // _MAX_COLS)
        size = -(-len(st.columns) // max(1, parts))
        for i in range(0, len(st.columns), size):
            if i:
                doc.ln(3)
            doc.grid(first, st.columns[i : i + size], rows, 16)
        doc.ln(2)
        kinds = ", ".join(f"{name} {n}" for name, n in st.alarms_by_kind.items()) or t("none", loc)
        doc.para(f"{t('alarms_by_kind', loc)}: {kinds}", 7)
        notes = st.note(loc)
        if notes:
            doc.para(f"{t('notes', loc)}: " + " / ".join(notes), 7)
    return bytes(doc.output())
