"""Incidents (mass events): report → first response → restoration → cause → prevention, with notes."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request

from pumpwatch.alarms import incidents
from pumpwatch.alarms.store import AlarmActionError
from pumpwatch.api.auth import access
from pumpwatch.api.deps import Ctx, CurrentUser
from pumpwatch.api.schemas import Detail, IncidentNoteCreate, IncidentPublic, IncidentsPublic, RowId

router = APIRouter(prefix="/incidents", tags=["incidents"])


def incident_public(r: dict, *, detail: bool) -> IncidentPublic:
    stations = r.get("stations")
    return IncidentPublic(
        id=r["id"],
        tenant=r["tenant_id"],
        kind=r["kind"],
        power_area=r["power_area"],
        title=r["title"],
        phase=r["phase"],
        opened_at=r["opened_at"],
        first_response_at=r["first_response_at"],
        restored_at=r["restored_at"],
        closed_at=r["closed_at"],
        station_count=r["station_count"] if "station_count" in r else len(stations or []),
        stations_out=r["stations_out"]
        if "stations_out" in r
        else sum(1 for s in stations or [] if s["restored_at"] is None),
        stations=stations if detail else None,
        notes=r.get("notes") if detail else None,
        alarm_ids=r.get("alarm_ids") if detail else None,
        drill_id=r.get("drill_id"),
    )


@router.get("", response_model=IncidentsPublic)
async def list_incidents(
    ctx: Ctx,
    user: CurrentUser,
    tenant: str | None = None,
    closed: Annotated[bool, Query(description="include closed incidents")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> IncidentsPublic:
    rows = await asyncio.to_thread(
        incidents.list_incidents,
        ctx.engine,
        tenant_ids=sorted(access.tenants_for(user, tenant)),
        open_only=not closed,
        limit=limit,
    )
    data = [incident_public(r, detail=False) for r in rows]
    return IncidentsPublic(data=data, count=len(data))


async def _visible(ctx, user, incident_id: int, role: str | None = None) -> dict:
    row = await asyncio.to_thread(incidents.get_incident, ctx.engine, incident_id)
    if row is None or row["tenant_id"] not in user.tenants:
        raise access.not_found(f"incident {incident_id}")
    if role is not None:
        access.require(user, role, row["tenant_id"])
    return row


@router.get("/{incident_id}", response_model=IncidentPublic)
async def get_incident(ctx: Ctx, user: CurrentUser, incident_id: RowId) -> IncidentPublic:
    return incident_public(await _visible(ctx, user, incident_id), detail=True)


@router.post("/{incident_id}/notes", response_model=IncidentPublic, responses={409: {"model": Detail}})
async def add_note(
    ctx: Ctx, user: CurrentUser, request: Request, incident_id: RowId, body: IncidentNoteCreate
) -> IncidentPublic:
    row = await _visible(ctx, user, incident_id, "operator")
    audit = access.audit_for(
        request, user, "incident.note", tenant_id=row["tenant_id"], target=f"incident:{incident_id}"
    )
    try:
        row = await asyncio.to_thread(
            incidents.add_note,
            ctx.engine,
            incident_id,
            actor=user.username,
            at=ctx.clock.now(),
            text=body.text,
            phase=body.phase,
            audit=audit,
        )
    except AlarmActionError as exc:
        raise HTTPException(exc.status, str(exc)) from None
    return incident_public(row, detail=True)
