"""Stations with their live values, one station, and the history of a point."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from alarms import store
from api.context import ApiContext, station_samples
from api.deps import Ctx
from api.schemas import (
    HistoryPointPublic,
    HistoryPublic,
    LocationPublic,
    OutOfServiceRequest,
    PointValue,
    StationPublic,
    StationsPublic,
)
from collector.model import Quality, Sample
from pumpwatch import historian

router = APIRouter(prefix="/stations", tags=["stations"])

MAX_HISTORY = timedelta(days=400)


def _point_value(
    s: Sample | None, unit: str | None, is_state: bool, now: datetime, stale_after: float | None
):
    if s is None:
        return PointValue(value=None, unit=unit, quality="no_data", observed_at=None, age_s=None)
    age = max(0.0, (now - s.observed_at).total_seconds())
    quality = s.quality.label
    # A value older than its expected interval is never shown as live, even if the collector has died.
    if s.quality is Quality.GOOD and (stale_after is None or age > stale_after):
        quality = "stale"
    value: float | bool | None = s.value
    if is_state and s.value is not None:
        value = s.value >= 0.5
    return PointValue(value=value, unit=unit, quality=quality, observed_at=s.observed_at, age_s=round(age, 3))


def build_station(
    ctx: ApiContext,
    sid: str,
    samples: dict[str, Sample],
    alarms: list[dict],
    now: datetime,
    mode: dict | None = None,
) -> StationPublic:
    fleet = ctx.fleet
    st = fleet.stations[sid]
    stale_after = fleet.stale_after_s(sid)
    values = {}
    for name, sp in fleet.points.get(sid, {}).items():
        values[name] = _point_value(samples.get(name), sp.spec.unit, sp.spec.is_state, now, stale_after)
    for dp in ctx.derived.get(sid, ()):
        values[dp.name] = _point_value(samples.get(dp.name), dp.unit, dp.kind == "state", now, stale_after)
    measured = [values[n] for n in fleet.points.get(sid, {})]
    ages = [v.age_s for v in measured if v.age_s is not None]
    qualities = {v.quality for v in measured}
    active = [a for a in alarms if a["active"]]
    names = {a["name"] for a in active}
    if mode and mode.get("out_of_service"):
        status = "maintenance"
    elif not measured or qualities == {"no_data"}:
        status = "no_data"
    elif "comm_loss" in qualities:
        status = "comm_loss"
    elif "good" not in qualities:
        status = "stale"
    elif "power_failure" in names:
        status = "power_failure"
    elif active:
        status = "alarm"
    else:
        status = "normal"
    return StationPublic(
        id=sid,
        tenant=st.tenant,
        name=st.name,
        kind=st.kind,
        power_area=st.power_area,
        location=LocationPublic(lat=st.location.lat, lon=st.location.lon) if st.location else None,
        status=status,
        active_alarms=sorted(names),
        out_of_service=bool(mode and mode.get("out_of_service")),
        data_age_s=min(ages) if ages else None,
        stale_after_s=stale_after,
        values=values,
        levels=st.levels.model_dump(exclude_none=True) if st.levels else None,
    )


async def _open_alarms(ctx: ApiContext, station_id: str | None = None) -> dict[str, list[dict]]:
    rows = await asyncio.to_thread(
        store.list_alarms, ctx.engine, open_=True, station_id=station_id, limit=1_000_000
    )
    out: dict[str, list[dict]] = {}
    for a in rows:
        out.setdefault(a["station_id"], []).append(a)
    return out


@router.get("", response_model=StationsPublic)
async def list_stations(
    ctx: Ctx,
    tenant: Annotated[str | None, Query(description="only this tenant's stations")] = None,
    kind: Annotated[str | None, Query(description="only this station kind")] = None,
) -> StationsPublic:
    latest = await ctx.latest()
    alarms = await _open_alarms(ctx)
    modes = await asyncio.to_thread(store.station_modes, ctx.engine)
    now = ctx.clock.now()
    data = [
        build_station(ctx, sid, station_samples(latest, sid), alarms.get(sid, []), now, modes.get(sid))
        for sid, st in ctx.fleet.stations.items()
        if (tenant is None or st.tenant == tenant) and (kind is None or st.kind == kind)
    ]
    return StationsPublic(data=data, count=len(data), at=now)


@router.get("/{station_id}", response_model=StationPublic)
async def get_station(ctx: Ctx, station_id: str) -> StationPublic:
    if station_id not in ctx.fleet.stations:
        raise HTTPException(404, f"no station {station_id!r}")
    latest = await ctx.latest()
    alarms = await _open_alarms(ctx, station_id)
    modes = await asyncio.to_thread(store.station_modes, ctx.engine)
    now = ctx.clock.now()
    samples = station_samples(latest, station_id)
    return build_station(ctx, station_id, samples, alarms.get(station_id, []), now, modes.get(station_id))


@router.get("/{station_id}/points/{point}/history", response_model=HistoryPublic)
async def point_history(
    ctx: Ctx,
    station_id: str,
    point: str,
    start: Annotated[datetime | None, Query(description="ISO 8601 with offset; default: end − 1 h")] = None,
    end: Annotated[datetime | None, Query(description="ISO 8601 with offset; default: now")] = None,
    max_points: Annotated[int, Query(ge=2, le=10_000, description="downsample above this many")] = 500,
) -> HistoryPublic:
    if station_id not in ctx.fleet.stations:
        raise HTTPException(404, f"no station {station_id!r}")
    pid = ctx.catalog.get((station_id, point))
    if pid is None:
        raise HTTPException(404, f"station {station_id!r} has no point {point!r}")
    for name, t in (("start", start), ("end", end)):
        if t is not None and t.tzinfo is None:
            raise HTTPException(422, f"{name} must carry a UTC offset (e.g. 2026-07-01T09:00:00+09:00)")
    end = end or ctx.clock.now()
    start = start or end - timedelta(hours=1)
    if start >= end:
        raise HTTPException(422, "start must be before end")
    if end - start > MAX_HISTORY:
        raise HTTPException(422, f"range too long: at most {MAX_HISTORY.days} days")
    rows = await asyncio.to_thread(historian.read_history, ctx.engine, pid, start, end, max_points)
    downsampled = any(r.count > 1 for r in rows)
    return HistoryPublic(
        station=station_id,
        point=point,
        unit=ctx.fleet.points[station_id][point].spec.unit,
        start=start,
        end=end,
        downsampled=downsampled,
        data=[
            HistoryPointPublic(t=r.t, value=r.value, min=r.min, max=r.max, count=r.count, good=r.good)
            for r in rows
        ],
    )


@router.post("/{station_id}/out-of-service", response_model=StationPublic)
async def out_of_service(ctx: Ctx, station_id: str, body: OutOfServiceRequest) -> StationPublic:
    """Maintenance: the station's alarms leave the operator's list (still evaluated and journaled)."""
    if station_id not in ctx.fleet.stations:
        raise HTTPException(404, f"no station {station_id!r}")
    try:
        await asyncio.to_thread(
            store.set_out_of_service,
            ctx.engine,
            station_id,
            out=True,
            actor=body.user,
            at=ctx.clock.now(),
            reason=body.reason,
            until=body.until,
        )
    except store.AlarmActionError as exc:
        raise HTTPException(exc.status, str(exc)) from None
    return await get_station(ctx, station_id)


@router.delete("/{station_id}/out-of-service", response_model=StationPublic)
async def return_to_service(
    ctx: Ctx, station_id: str, user: Annotated[str, Query(min_length=1, max_length=100)]
) -> StationPublic:
    if station_id not in ctx.fleet.stations:
        raise HTTPException(404, f"no station {station_id!r}")
    await asyncio.to_thread(
        store.set_out_of_service,
        ctx.engine,
        station_id,
        out=False,
        actor=user,
        at=ctx.clock.now(),
        reason="back in service",
    )
    return await get_station(ctx, station_id)
