"""The formats, read back: the workbook with openpyxl (numbers as numbers, units in headers, one sheet per
station and a summary), the PDF's text with pypdf and pdftotext (Japanese names and the figures), a page
rendered to PNG with pdftoppm, the CSV's rows."""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import pytest
from openpyxl import load_workbook
from pypdf import PdfReader

from pumpwatch.core import historian
from pumpwatch.core.config.loader import load_fleet
from pumpwatch.core.db import make_engine, upgrade
from pumpwatch.reports.compute import Report, build_report
from pumpwatch.reports.definitions import Definitions
from pumpwatch.reports.periods import Period
from pumpwatch.reports.render_csv import render_csv
from pumpwatch.reports.render_pdf import PdfUnavailable, render_pdf
from pumpwatch.reports.render_xlsx import render_xlsx
from tests.reports.conftest import DAY, JST, LATER, STATION


@pytest.fixture(scope="module")
def report(day, defs: Definitions) -> Report:
    eng, fleet, _ = day
    return build_report(eng, fleet, defs, "kita", Period("day", DAY, "Asia/Tokyo"), LATER)


@pytest.fixture(scope="module")
def pdf(report: Report) -> bytes:
    return render_pdf(report, "ja")


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{tool} missing (poppler-utils; .ci/run installs it)")
        pytest.skip(f"{tool} not installed: apt-get install poppler-utils")
    return path


def test_xlsx_reads_back(report: Report) -> None:
    wb = load_workbook(io.BytesIO(render_xlsx(report, "ja")))
    st = report.stations[0]
    assert wb.sheetnames[0] == "総括" and wb.sheetnames[1:] == [s.station_id for s in report.stations]
    ws = wb[STATION]
    assert "Kita City (北市)" in ws["A1"].value and "運転日報" in ws["A1"].value
    assert "北1丁目" in ws["B2"].value
    header = [c.value for c in ws[5]]
    assert header[0] == "時刻" and header[-1] == "状態"
    assert "1号ポンプ 運転時間 (h)" in header and "データ取得率 (%)" in header and "停電時間 (分)" in header
    col = {h: i for i, h in enumerate(header)}
    rows = list(ws.iter_rows(min_row=6, max_row=6 + 24, values_only=True))
    for row, src in zip(rows[:24], st.rows, strict=True):
        assert row[0] == src.label
        for c in st.columns:
            cell = row[col[c.header("ja")]]
            want = src.values[c.key]  # numbers stay numbers, gaps stay empty
            assert cell is None if want is None else cell == pytest.approx(want, rel=1e-12)
            assert cell is None or isinstance(cell, int | float)
    assert rows[10][col["状態"]] == "欠測"
    assert (
        rows[24][0] == "合計" and rows[24][col["1号ポンプ 起動回数 (回)"]] == st.total.values["pump1_starts"]
    )
    assert ws.cell(6, col["1号ポンプ 運転時間 (h)"] + 1).number_format == "0.00"
    summary = wb["総括"]
    names = [r[0] for r in summary.iter_rows(min_row=6, values_only=True) if r[0]]
    assert f"北1丁目 ({STATION})" in names
    en = load_workbook(io.BytesIO(render_xlsx(report, "en")))
    assert en.sheetnames[0] == "Summary" and "Pump 1 run time (h)" in [c.value for c in en[STATION][5]]


def test_pdf_text_holds_names_and_figures(report: Report, pdf: bytes) -> None:
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) == 1 + len(report.stations)
    box = reader.pages[0].mediabox
    assert (round(float(box.width) / 72 * 25.4), round(float(box.height) / 72 * 25.4)) == (210, 297)  # A4
    # pypdf 7 returns fpdf2's two-byte (Identity-H) glyph strings with a NUL before each character
    text = reader.pages[1].extract_text().replace("\x00", "")
    st = report.stations[0]
    assert "北1丁目" in text and "Kita City (北市)" in text and "2026-11-03" in text
    assert f"ページ 2 / {len(reader.pages)}" in text
    tot = st.total.values
    for figure in (
        f"{tot['pump1_run_time']:.2f}",
        f"{int(tot['pump1_starts'])}",
        f"{tot['power_failure_time']:.1f}",
    ):
        assert figure in text
    assert "欠測" in text and "警報内訳（種類別）: power_failure 1" in text
    summary = reader.pages[0].extract_text().replace("\x00", "")
    assert "総括" in summary and all(s.name in summary for s in report.stations)
    out = subprocess.run(
        [_need("pdftotext"), "-f", "2", "-l", "2", "-", "-"], input=pdf, capture_output=True, check=True
    ).stdout.decode()
    assert "北1丁目" in out and "マンホールポンプ場" in out


def test_pdf_page_renders_to_png(pdf: bytes, tmp_path: Path) -> None:
    src = tmp_path / "r.pdf"
    src.write_bytes(pdf)
    subprocess.run(
        [_need("pdftoppm"), "-r", "60", "-png", "-f", "2", "-l", "2", str(src), str(tmp_path / "p")],
        check=True,
    )
    png = next(tmp_path.glob("p*.png"))
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000  # a page of table, not a blank one
    keep = os.environ.get("PUMPWATCH_REPORT_PNG")
    if keep:  # to look at: PUMPWATCH_REPORT_PNG=/tmp/page.png pytest tests/reports -k png
        shutil.copy(png, keep)


def test_a_wide_station_is_split_into_legible_tables(tmp_path: Path, defs: Definitions) -> None:
    """A relay station's four pumps make 24 columns: two tables of 12, each with the time column."""

    url = f"sqlite:///{tmp_path / 'c.db'}"
    upgrade(url)
    eng = make_engine(url)
    fleet = load_fleet(Path(__file__).resolve().parents[2] / "deploy" / "config" / "city")
    historian.sync_catalog(eng, fleet)
    rep = build_report(
        eng,
        fleet,
        defs,
        "hanamizu",
        Period("day", DAY, "Asia/Tokyo"),
        datetime(2026, 11, 5, tzinfo=JST),
        station_ids=["HNM-RPS-1"],
    )
    eng.dispose()
    assert len(rep.stations[0].columns) == 24
    text = PdfReader(io.BytesIO(render_pdf(rep, "ja"))).pages[1].extract_text().replace("\x00", "")
    assert text.count("時刻") == 2 and text.count("合計") == 2 and "4号ポンプ" in text


def test_pdf_without_the_font_says_what_to_install(report: Report, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("pumpwatch.reports.render_pdf._FONT_DIRS", (str(tmp_path),))
    with pytest.raises(PdfUnavailable, match="fonts-noto-cjk"):
        render_pdf(report, "ja")


def test_csv_rows(report: Report) -> None:
    rows = list(csv.DictReader(io.StringIO(render_csv(report).decode())))
    mine = [r for r in rows if r["station_id"] == STATION]
    st = report.stations[0]
    assert len(mine) == (24 + 1) * len(st.columns)
    gap = [r for r in mine if r["row"] == "10:00" and r["key"] == "pump1_starts"][0]
    assert gap["value"] == "" and gap["status"] == "no_data"
    total = [r for r in mine if r["row"] == "total" and r["key"] == "pump1_starts"][0]
    assert float(total["value"]) == st.total.values["pump1_starts"] and total["unit"] == "count"
    assert mine[0]["row_start"] == "2026-11-02T15:00:00+00:00"
