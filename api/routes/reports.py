"""Operation reports (運転日報・月報): `GET /reports` (templates and formats), `GET /reports/{tenant}`
(one report as xlsx, pdf, csv, or json for the console's preview), `GET /reports/{tenant}/deliveries`
(the scheduled e-mails and how they went).

Tenant-scoped: a tenant the user has no grant for, or a station that is not that tenant's, is a 404
(the same answer as for one that does not exist). Each generation is audited (`report.generate`,
pumpwatch.reports.service); without the audit log nothing is handed out (503).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from pumpwatch.api.auth import access
from pumpwatch.api.deps import Ctx, CurrentUser
from pumpwatch.reports.compute import Report, Row
from pumpwatch.reports.definitions import Definitions
from pumpwatch.reports.errors import ReportError
from pumpwatch.reports.render_csv import row_status
from pumpwatch.reports.render_pdf import PdfUnavailable
from pumpwatch.reports.schedule import recent_deliveries
from pumpwatch.reports.service import definitions_for, generate

router = APIRouter(prefix="/reports", tags=["reports"])

# checked after the tenant (a tenant that is not yours is a 404 whatever the period): ReportError → 422
Period = Annotated[str, Query(min_length=1, max_length=10, description="YYYY-MM-DD (a day) or YYYY-MM")]
StationIds = Annotated[
    list[Annotated[str, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]] | None,
    Query(max_length=500, description="only these stations of the tenant (default: all)"),
]


def _definitions(ctx) -> Definitions:
    defs = getattr(ctx, "reports", None)
    if defs is None:
        defs = definitions_for(ctx.fleet)
        ctx.reports = defs
    return defs


@router.get("")
async def report_templates(ctx: Ctx, user: CurrentUser) -> dict[str, Any]:
    """The report templates (which station kinds each covers), the formats and locales."""
    del user
    defs = await asyncio.to_thread(_definitions, ctx)
    return {
        "templates": [
            {
                "id": t.id,
                "kinds": t.kinds,
                "title": t.title.model_dump(),
                "columns": [c.key for c in t.columns],
            }
            for t in defs.templates.values()
        ],
        "formats": ["xlsx", "pdf", "csv", "json"],
        "locales": ["ja", "en"],
    }


def _row(row: Row) -> dict[str, Any]:
    return {
        "label": row.label,
        "start": row.start.isoformat(),
        "end": row.end.isoformat(),
        "values": row.values,
        "completeness": row.completeness,
        "status": row_status(row),
    }


def report_json(report: Report, locale: str) -> dict[str, Any]:
    return {
        "tenant": report.tenant_id,
        "tenant_name": report.tenant_name,
        "period": report.period.name,
        "kind": report.period.kind,
        "timezone": report.period.tz,
        "provisional": report.provisional,
        "generated_at": report.generated_at.isoformat(),
        "stations": [
            {
                "id": st.station_id,
                "name": st.name,
                "kind": st.kind,
                "template": st.template.id,
                "columns": [{"key": c.key, "label": c.label(locale), "unit": c.unit} for c in st.columns],
                "rows": [_row(r) for r in st.rows],
                "total": _row(st.total),
                "notes": st.note(locale),
                "alarms_by_kind": st.alarms_by_kind,
                "source": st.source,
            }
            for st in report.stations
        ],
        "summary": {
            "columns": [
                {"key": c.key, "label": c.label(locale), "unit": c.unit} for c in report.summary.columns
            ],
            "rows": [
                {"station": st.station_id, "name": st.name, "values": v} for st, v in report.summary.rows
            ],
            "hints": [
                {"station": s, "name": n, "key": k, "value": v, "median": m}
                for s, n, k, v, m in report.summary.hints
            ],
            "pumps_past_life": [
                {"station": s, "name": n, "pump": k, "install_year": y, "life_years": life}
                for s, n, k, y, life in report.summary.pumps_past_life
            ],
            "incidents": [
                {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in i.items()}
                for i in report.summary.incidents
            ],
            "alarms_by_priority": report.summary.alarms_by_priority,
        },
    }


@router.get("/{tenant}", response_model=None)
async def get_report(
    request: Request,
    ctx: Ctx,
    user: CurrentUser,
    tenant: Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")],
    period: Period,
    format: Literal["xlsx", "pdf", "csv", "json"] = "xlsx",
    station: StationIds = None,
    locale: Literal["ja", "en"] | None = None,
) -> Response:
    """One report of `tenant` for `period` (the tenant's time zone), as a file (or JSON)."""
    access.require(user, "viewer", tenant)
    if tenant not in ctx.fleet.tenants:
        raise access.not_found(f"tenant {tenant!r}")
    for sid in station or []:
        st = ctx.fleet.stations.get(sid)
        if st is None or st.tenant != tenant:
            raise access.not_found(f"station {sid!r}")
    loc = locale or (user.locale if user.locale in ("ja", "en") else "ja")
    audit = access.audit_for(request, user, "report.generate")
    fmt = "csv" if format == "json" else format  # json: computed and audited like a file, not rendered
    defs = await asyncio.to_thread(_definitions, ctx)
    try:
        out = await asyncio.to_thread(
            generate, ctx.engine, ctx.fleet, defs, tenant=tenant, period=period, now=ctx.clock.now(),
            fmt=fmt, locale=loc, stations=station, audit=audit.but(detail=f"format={format}"),
        )  # fmt: skip
    except PdfUnavailable as exc:
        raise HTTPException(503, str(exc)) from None
    except ReportError as exc:
        raise HTTPException(422, str(exc)) from None
    if format == "json":
        return JSONResponse(report_json(out.report, loc))
    return Response(
        out.content,
        media_type=out.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{out.filename}"',
            "Cache-Control": "no-store",
        },
    )


@router.get("/{tenant}/deliveries")
async def report_deliveries(
    ctx: Ctx, user: CurrentUser, tenant: Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
) -> dict[str, Any]:
    """The latest scheduled deliveries of `tenant` (from the audit log: `report.deliver`), newest first;
    a failed one says why."""
    access.require(user, "viewer", tenant)
    rows = await asyncio.to_thread(recent_deliveries, ctx.engine, tenant)
    return {"tenant": tenant, "deliveries": rows}
