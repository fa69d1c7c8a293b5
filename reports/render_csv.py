"""CSV for machines: one line per station, row and figure (long format, UTF-8, RFC 4180), keys not labels:
`tenant,period,station_id,row,row_start,row_end,key,value,unit,completeness_pct,status`. A gap is an empty
`value` with status `no_data`; `status` is `final`, `provisional`, `no_data` or `not_yet`; the period's
total is the row `total`."""

from __future__ import annotations

import csv
import io

from pumpwatch.reports.compute import Report, Row

__all__ = ["render_csv", "row_status"]

HEADER = (
    "tenant", "period", "station_id", "row", "row_start", "row_end", "key", "value", "unit",
    "completeness_pct", "status",
)  # fmt: skip


def row_status(row: Row) -> str:
    if row.not_yet:
        return "not_yet"
    if row.no_data:
        return "no_data"
    return "provisional" if row.provisional else "final"


def _num(v: float | None) -> str:
    return "" if v is None else repr(round(v, 6))


def render_csv(report: Report) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(HEADER)
    for st in report.stations:
        for row, label in [(r, r.label) for r in st.rows] + [(st.total, "total")]:
            for c in st.columns:
                w.writerow(
                    (
                        report.tenant_id,
                        report.period.name,
                        st.station_id,
                        label,
                        row.start.isoformat(),
                        row.end.isoformat(),
                        c.key,
                        _num(row.values[c.key]),
                        c.unit,
                        _num(row.completeness),
                        row_status(row),
                    )  # fmt: skip
                )
    return buf.getvalue().encode("utf-8")
