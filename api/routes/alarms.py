"""Alarms: the active list (or history), filtered by tenant and station."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from api.deps import Ctx
from api.schemas import AlarmPublic, AlarmsPublic
from pumpwatch import historian

router = APIRouter(prefix="/alarms", tags=["alarms"])


@router.get("", response_model=AlarmsPublic)
async def list_alarms(
    ctx: Ctx,
    active: Annotated[
        bool | None, Query(description="true: active only; false: cleared only; omit: all")
    ] = True,
    tenant: str | None = None,
    station: str | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> AlarmsPublic:
    if tenant is not None and tenant not in ctx.fleet.tenants:
        raise HTTPException(404, f"no tenant {tenant!r}")
    if station is not None and station not in ctx.fleet.stations:
        raise HTTPException(404, f"no station {station!r}")
    rows = await asyncio.to_thread(
        historian.list_alarms,
        ctx.engine,
        active=active,
        tenant_ids=[tenant] if tenant else None,
        station_id=station,
        limit=limit,
    )
    data = [
        AlarmPublic(
            id=r["id"],
            tenant=r["tenant_id"],
            station=r["station_id"],
            name=r["name"],
            priority=r["priority"],
            message=r["message"],
            active=r["active"],
            value=r["value"],
            raised_at=r["raised_at"],
            cleared_at=r["cleared_at"],
        )
        for r in rows
    ]
    return AlarmsPublic(data=data, count=len(data))
