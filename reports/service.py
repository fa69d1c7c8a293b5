"""One report generation, as the API, the command line and the schedule do it: compute, render, audit.

`generate(...)` → `Generated(content, media_type, filename, report)`. Every generation is written to the
audit log (`report.generate`: who, tenant, target `period[:stations]`, format) before the file is handed
out; if the record cannot be written the file is not given (`AuditUnavailable`, fail closed).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from sqlalchemy import Engine

from pumpwatch.core.audit import Audit
from pumpwatch.core.config.loader import Fleet
from pumpwatch.reports.compute import Report, build_report
from pumpwatch.reports.definitions import Definitions, default_root, load_definitions
from pumpwatch.reports.errors import ReportError
from pumpwatch.reports.labels import check_locale
from pumpwatch.reports.periods import parse_period
from pumpwatch.reports.render_csv import render_csv
from pumpwatch.reports.render_pdf import render_pdf
from pumpwatch.reports.render_xlsx import render_xlsx

__all__ = ["FORMATS", "Generated", "definitions_for", "generate", "reports_root_for"]

Format = Literal["xlsx", "pdf", "csv"]
FORMATS: dict[str, str] = {
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
    "csv": "text/csv; charset=utf-8",
}
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class Generated:
    content: bytes
    media_type: str
    filename: str
    report: Report


def reports_root_for(fleet: Fleet) -> Path:
    """`reports/` beside the fleet's folder (deploy/config/reports for deploy/config/<fleet>), else
    `PUMPWATCH_REPORTS_DIR` (the service image sets it), else the templates of this checkout."""
    beside = fleet.root.parent / "reports"
    if beside.is_dir():
        return beside
    env = os.environ.get("PUMPWATCH_REPORTS_DIR")
    return Path(env) if env else default_root()


def definitions_for(fleet: Fleet) -> Definitions:
    return load_definitions(reports_root_for(fleet))


def filename(report: Report, stations: Sequence[str] | None, fmt: str) -> str:
    parts = [report.tenant_id, report.period.name, *(stations or [])]
    if report.provisional:
        parts.append("provisional")
    return _SAFE.sub("_", "_".join(parts))[:150] + f".{fmt}"


def render(report: Report, fmt: str, locale: str) -> bytes:
    if fmt == "xlsx":
        return render_xlsx(report, locale)
    if fmt == "pdf":
        return render_pdf(report, locale)
    if fmt == "csv":
        return render_csv(report)
    raise ReportError(f"format {fmt!r}: expected one of {', '.join(FORMATS)}")


def generate(
    engine: Engine,
    fleet: Fleet,
    defs: Definitions,
    *,
    tenant: str,
    period: str,
    now: datetime,
    fmt: str,
    locale: str,
    stations: Sequence[str] | None = None,
    audit: Audit | None = None,
) -> Generated:
    """Compute and render one report; audit it (`audit` carries who and from where; its action, tenant,
    target and detail are set here). Raises ReportError (bad request) or AuditUnavailable."""
    if fmt not in FORMATS:
        raise ReportError(f"format {fmt!r}: expected one of {', '.join(FORMATS)}")
    check_locale(locale)
    tz = fleet.tenants[tenant].timezone if tenant in fleet.tenants else "UTC"
    p = parse_period(period, tz)
    if p.start > now:
        raise ReportError(f"period {period}: it has not begun yet")
    report = build_report(engine, fleet, defs, tenant, p, now, station_ids=stations)
    content = render(report, fmt, locale)
    name = filename(report, stations, fmt)
    if audit is not None:
        target = p.name + (":" + ",".join(stations) if stations else "")
        audit.but(action="report.generate", tenant_id=tenant, target=target).record(
            engine,
            detail=f"format={fmt} locale={locale} bytes={len(content)}"
            + (" provisional" if report.provisional else ""),
        )
    return Generated(content, FORMATS[fmt], name, report)
