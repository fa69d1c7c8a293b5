"""What the operator console needs beyond the resource routes: one station in full (levels, pump assets
with their age and counters, the points it can trend, its incidents), and the network map's tile source."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter
from sqlalchemy import Engine, func, select

from pumpwatch.api.auth import access
from pumpwatch.api.deps import Ctx, CurrentUser
from pumpwatch.api.routes.incidents import incident_public
from pumpwatch.api.routes.stations import get_station
from pumpwatch.api.schemas import MapConfigPublic, MapTilesPublic, PointInfo, PumpAsset, StationDetailPublic
from pumpwatch.core.db.schema import incident, incident_station

router = APIRouter(prefix="/console", tags=["console"])

# 下水道施設の標準耐用年数: pumps (ポンプ設備) 15 years, the figure asset plans compare a pump's age with.
STANDARD_LIFE_YEARS = 15


@router.get("/map", response_model=MapConfigPublic)
async def map_config(ctx: Ctx, user: CurrentUser) -> MapConfigPublic:
    """The map's tile source (PUMPWATCH_MAP_TILES_URL), or none: the console draws a schematic."""
    w = ctx.web
    if not w.map_tiles_url:
        return MapConfigPublic(tiles=None)
    return MapConfigPublic(tiles=MapTilesPublic(url=w.map_tiles_url, attribution=w.map_tiles_attribution))


def _value(station: Any, name: str) -> Any:
    v = station.values.get(name)
    return v if v is not None and v.value is not None else None


@router.get("/stations/{station_id}", response_model=StationDetailPublic)
async def station_detail(ctx: Ctx, user: CurrentUser, station_id: str) -> StationDetailPublic:
    """One station with everything its page shows; 404 when it does not exist (or is not yours)."""
    st = access.station(ctx, user, station_id)
    station = await get_station(ctx, user, station_id)
    tz = ZoneInfo(ctx.fleet.tenants[st.tenant].timezone) if st.tenant in ctx.fleet.tenants else None
    year = ctx.clock.now().astimezone(tz).year
    pumps = []
    for p in st.pumps:
        vals = {k: _value(station, f"{p.name}_{k}") for k in ("running", "faulted", "current_a")}
        vals |= {k: _value(station, f"{p.name}_{k}") for k in ("run_hours_h", "starts")}
        age = year - p.install_year if p.install_year is not None else None
        pumps.append(
            PumpAsset(
                name=p.name,
                rated_flow_m3_min=p.rated_flow_m3_min,
                rated_current_a=p.rated_current_a,
                power_kw=p.power_kw,
                install_year=p.install_year,
                age_years=age,
                standard_life_years=STANDARD_LIFE_YEARS,
                life_used=round(age / STANDARD_LIFE_YEARS, 3) if age is not None else None,
                standby=p.standby,
                drive=p.drive,
                running=vals["running"],
                faulted=vals["faulted"],
                current_a=vals["current_a"],
                run_hours_h=vals["run_hours_h"],
                starts=vals["starts"],
            )
        )
    points = [
        PointInfo(name=name, unit=sp.spec.unit, state=sp.spec.is_state)
        for name, sp in ctx.fleet.points.get(station_id, {}).items()
        if (station_id, name) in ctx.catalog
    ]
    points += [
        PointInfo(name=dp.name, unit=dp.unit, state=dp.kind == "state", derived=True)
        for dp in ctx.derived.get(station_id, ())
        if (station_id, dp.name) in ctx.catalog
    ]
    rows = await asyncio.to_thread(station_incidents, ctx.engine, station_id, user.tenants)
    wet_well = st.wet_well.model_dump(exclude_none=True) if st.wet_well else None
    return StationDetailPublic(
        station=station,
        address=st.location.address if st.location else None,
        wet_well=wet_well,
        pumps=pumps,
        points=points,
        incidents=[incident_public(r, detail=False) for r in rows],
    )


def station_incidents(
    engine: Engine, station_id: str, tenants: Collection[str] | None, limit: int = 20
) -> list[dict[str, Any]]:
    """The incidents a station was part of, newest first (None: any tenant)."""
    n = select(func.count()).where(incident_station.c.incident_id == incident.c.id).scalar_subquery()
    out = (
        select(func.count())
        .where(incident_station.c.incident_id == incident.c.id, incident_station.c.restored_at.is_(None))
        .scalar_subquery()
    )
    mine = select(incident_station.c.incident_id).where(incident_station.c.station_id == station_id)
    stmt = (
        select(incident, n.label("station_count"), out.label("stations_out"))
        .where(incident.c.id.in_(mine))
        .order_by(incident.c.opened_at.desc())
        .limit(limit)
    )
    if tenants is not None:
        stmt = stmt.where(incident.c.tenant_id.in_(list(tenants)))
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt)]
