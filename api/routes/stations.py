"""Stations with their live values, one station, and the history of a point."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response

from pumpwatch.alarms import store
from pumpwatch.api import station_list
from pumpwatch.api.auth import access
from pumpwatch.api.auth.users import User
from pumpwatch.api.context import ApiContext, station_samples
from pumpwatch.api.coverage import coverage_public
from pumpwatch.api.deps import Ctx, CurrentUser
from pumpwatch.api.inputs import Timestamp
from pumpwatch.api.schemas import (
    HistoryPointPublic,
    HistoryPublic,
    OutOfServiceRequest,
    StationPublic,
    StationsPublic,
)
from pumpwatch.api.views import build_station
from pumpwatch.core import historian

router = APIRouter(prefix="/stations", tags=["stations"])

MAX_HISTORY = timedelta(days=400)


async def _open_alarms(
    ctx: ApiContext,
    tenants: frozenset[str],
    station_id: str | None = None,
    station_ids: list[str] | None = None,
) -> dict[str, list[store.AlarmRow]]:
    if station_ids is not None and not station_ids:
        return {}
    rows = await asyncio.to_thread(
        store.list_alarms,
        ctx.engine,
        open_=True,
        tenant_ids=tenants,
        station_id=station_id,
        station_ids=station_ids,
        limit=1_000_000,
    )
    out: dict[str, list[store.AlarmRow]] = {}
    for a in rows:
        out.setdefault(a["station_id"], []).append(a)
    return out


@router.get("", response_class=Response, responses={200: {"model": StationsPublic}})
async def list_stations(
    ctx: Ctx,
    user: CurrentUser,
    request: Request,
    tenant: Annotated[str | None, Query(description="only this tenant's stations")] = None,
    kind: Annotated[str | None, Query(description="only this station kind")] = None,
    limit: Annotated[
        int, Query(ge=1, le=station_list.MAX_LIMIT, description="stations per page (in id order)")
    ] = station_list.DEFAULT_LIMIT,
    cursor: Annotated[
        str | None,
        Query(max_length=200, description="the `next_cursor` of the page before: this page starts after it"),
    ] = None,
    fields: Annotated[
        str | None,
        Query(
            max_length=400,
            pattern=station_list.FIELDS_PATTERN,
            description="only these fields of each station, comma-separated (`id` always comes): "
            + ", ".join(station_list.FIELDS),
        ),
    ] = None,
) -> Response:
    """Stations with their live values, a page at a time (`next_cursor` null: the last page; `total`:
    how many match in all). Every value is as of `at`; the views are kept until what they are made of
    changes (api/station_list.py), so a page costs its encoding, not a build per station."""
    try:
        names = station_list.parse_fields(fields)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    tenants = access.tenants_for(user, tenant)
    views: station_list.StationViews | None = getattr(request.app.state, "station_views", None)
    if views is None or views.ctx is not ctx:
        views = request.app.state.station_views = station_list.StationViews(ctx)
    ids, total, next_cursor = views.page_ids(tenants, kind, cursor, limit)
    latest = await ctx.latest()
    alarms = await _open_alarms(ctx, tenants, station_ids=ids)  # this page's only
    modes = await asyncio.to_thread(store.station_modes, ctx.engine)
    now = ctx.clock.now()
    parts = await views.encode(ids, lambda sid: station_samples(latest, sid), alarms, modes, now, names)
    head = {"count": len(parts), "total": total, "next_cursor": next_cursor, "at": now.isoformat()}
    return Response(station_list.body(parts, head), media_type="application/json")


@router.get("/{station_id}", response_model=StationPublic)
async def get_station(ctx: Ctx, user: CurrentUser, station_id: str) -> StationPublic:
    return await _station(ctx, user, station_id)


async def _station(ctx: ApiContext, user: User, station_id: str) -> StationPublic:
    access.station(ctx, user, station_id)
    latest = await ctx.latest()
    alarms = await _open_alarms(ctx, user.tenants, station_id)
    modes = await asyncio.to_thread(store.station_modes, ctx.engine)
    now = ctx.clock.now()
    samples = station_samples(latest, station_id)
    station = build_station(ctx, station_id, samples, alarms.get(station_id, []), now, modes.get(station_id))
    station.coverage = coverage_public(ctx.coverage, station_id)  # one station: its safety coverage too
    return station


@router.get("/{station_id}/points/{point}/history", response_model=HistoryPublic)
async def point_history(
    ctx: Ctx,
    user: CurrentUser,
    station_id: str,
    point: str,
    start: Annotated[Timestamp | None, Query(description="ISO 8601 with offset; default: end − 1 h")] = None,
    end: Annotated[Timestamp | None, Query(description="ISO 8601 with offset; default: now")] = None,
    max_points: Annotated[int, Query(ge=2, le=10_000, description="downsample above this many")] = 500,
) -> HistoryPublic:
    access.station(ctx, user, station_id)
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


EXPORT_MAX_ROWS = 100_000


@router.get(
    "/{station_id}/points/{point}/export.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def export_history(
    ctx: Ctx,
    user: CurrentUser,
    request: Request,
    station_id: str,
    point: str,
    start: Annotated[
        Timestamp | None, Query(description="ISO 8601 with offset; default: end − 1 day")
    ] = None,
    end: Annotated[Timestamp | None, Query(description="ISO 8601 with offset; default: now")] = None,
) -> Response:
    """A point's samples as CSV (UTC times; at most 100,000 rows, else downsampled). Every export is
    audited first: no record, no data."""
    st = access.station(ctx, user, station_id)
    pid = ctx.catalog.get((station_id, point))
    if pid is None:
        raise HTTPException(404, f"station {station_id!r} has no point {point!r}")
    for name, t in (("start", start), ("end", end)):
        if t is not None and t.tzinfo is None:
            raise HTTPException(422, f"{name} must carry a UTC offset (e.g. 2026-07-01T09:00:00+09:00)")
    end = end or ctx.clock.now()
    start = start or end - timedelta(days=1)
    if start >= end or end - start > MAX_HISTORY:
        raise HTTPException(422, f"start must be before end, at most {MAX_HISTORY.days} days apart")
    audit = access.audit_for(
        request,
        user,
        "export",
        tenant_id=st.tenant,
        target=f"point:{station_id}/{point}",
        detail=f"{start.isoformat()} .. {end.isoformat()}",
    )
    await asyncio.to_thread(audit.record, ctx.engine)
    rows = await asyncio.to_thread(historian.read_history, ctx.engine, pid, start, end, EXPORT_MAX_ROWS)
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["time_utc", "value", "min", "max", "count", "good"])
    for r in rows:
        w.writerow([r.t.astimezone(UTC).isoformat(), r.value, r.min, r.max, r.count, r.good])
    name = f"{station_id}_{point}.csv".replace('"', "")
    return Response(
        out.getvalue(),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.post("/{station_id}/out-of-service", response_model=StationPublic)
async def out_of_service(
    ctx: Ctx, user: CurrentUser, request: Request, station_id: str, body: OutOfServiceRequest
) -> StationPublic:
    """Maintenance: the station's alarms leave the operator's list (still evaluated and journaled)."""
    await _set_service(ctx, user, request, station_id, out=True, reason=body.reason, until=body.until)
    return await _station(ctx, user, station_id)


@router.delete("/{station_id}/out-of-service", response_model=StationPublic)
async def return_to_service(ctx: Ctx, user: CurrentUser, request: Request, station_id: str) -> StationPublic:
    await _set_service(ctx, user, request, station_id, out=False, reason="back in service", until=None)
    return await _station(ctx, user, station_id)


async def _set_service(
    ctx: ApiContext,
    user: User,
    request: Request,
    station_id: str,
    *,
    out: bool,
    reason: str,
    until: datetime | None,
) -> None:
    st = access.station(ctx, user, station_id, "engineer")
    audit = access.audit_for(
        request,
        user,
        "station.out_of_service" if out else "station.in_service",
        tenant_id=st.tenant,
        target=f"station:{station_id}",
    )
    try:
        await asyncio.to_thread(
            store.set_out_of_service,
            ctx.engine,
            station_id,
            out=out,
            actor=user.username,
            at=ctx.clock.now(),
            reason=reason,
            until=until,
            audit=audit,
        )
    except store.AlarmActionError as exc:
        raise HTTPException(exc.status, str(exc)) from None
