"""`GET /api/v1/overview`: every station now, in one compact response built for a wall of 10,000 stations.

`/api/v1/stations` builds a pydantic model per station and value (≈ 2.5 kB and ≈ 0.5 ms each: seconds for
10,000, holding the event loop). The overview carries what a map or a list needs — status, age, active
alarms and the measured values — built with plain dicts in a worker thread and encoded once with orjson;
the bytes are cached and rebuilt in the background at most every second (or every two build times, if a
build takes longer), so any number of clients costs one build per period, a request never waits for a
build (but the very first), and the loop is never held by it. Status, alarms, `live` and data age come
from the same definition as `/api/v1/stations` (alarms/status.py: a value older than its station's
`stale_after_s` is `stale`, never live); `at` says when the snapshot was taken.

A snapshot that could not be rebuilt for `MAX_AGE_S` is never served (503 with the reason): its statuses
and ages would read as live. While the database (the alarm store) is unreachable, a process with its own
alarm engine builds from that engine's active conditions instead, and says so (`alarms_from`), keeping the
last known out-of-service marks: the wall stays live through the outage.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, HTTPException, Query, Request, Response
from sqlalchemy.exc import SQLAlchemyError

from pumpwatch.alarms import store
from pumpwatch.api.auth import access
from pumpwatch.api.context import ApiContext, station_samples
from pumpwatch.api.deps import Ctx, CurrentUser
from pumpwatch.api.views import assess_station
from pumpwatch.core.db import rls

router = APIRouter(prefix="/overview", tags=["stations"])
MAX_AGE_S = 10.0  # a snapshot older than this (or 4 build times) is rebuilt before it is served, or refused


@dataclass
class _Cache:
    built_at: float = -1e9
    at: datetime | None = None
    build_s: float = 0.0
    by_tenant: dict[str, list[bytes]] = field(default_factory=dict)
    joined: dict[frozenset[str] | None, bytes] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    task: asyncio.Task | None = None
    modes: dict = field(default_factory=dict)  # the last station modes read, for a build without the database
    alarms_from: str = "database"


def _station(
    ctx: ApiContext, sid: str, samples: dict, alarms: Sequence[Mapping[str, Any]], mode: dict | None, now
) -> dict:
    fleet = ctx.fleet
    st = fleet.stations[sid]
    points = fleet.points.get(sid, {})
    # the overview carries values, not their qualities
    state, oos = assess_station(ctx, sid, samples, alarms, now, mode, with_shown=False)
    values: dict[str, object] = {}
    for name, sp in points.items():
        s = samples.get(name)
        v = s.value if s is not None else None
        values[name] = (v >= 0.5) if (sp.spec.is_state and v is not None) else v
    return {
        "id": sid,
        "tenant": st.tenant,
        "name": st.name,
        "kind": st.kind,
        "power_area": st.power_area,
        "location": {"lat": st.location.lat, "lon": st.location.lon} if st.location else None,
        "discharges_to": st.discharges_to,
        "status": state.status,
        "active_alarms": state.active_alarms,
        "suppressed_alarms": state.suppressed_alarms,
        "live": state.live,
        "out_of_service": oos,
        "heard_at": state.heard_at.isoformat() if state.heard_at is not None else None,
        "data_age_s": state.data_age_s,
        "values": values,
    }


def _build(ctx: ApiContext, latest, alarms_by_station: dict, modes: dict, now) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = {}
    dumps = orjson.dumps
    for sid, st in ctx.fleet.stations.items():
        d = _station(
            ctx, sid, station_samples(latest, sid), alarms_by_station.get(sid, []), modes.get(sid), now
        )
        out.setdefault(st.tenant, []).append(dumps(d))
    return out


async def _refresh(ctx: ApiContext, cache: _Cache, ttl_s: float, *, force: bool = False) -> None:
    # Always in a task of its own: the snapshot covers every tenant (each request then takes only its
    # user's), so it reads in an all-tenant row-level-security scope that must not leak into a request.
    rls.set_scope(ctx.fleet.tenants)
    async with cache.lock:
        if not force and time.monotonic() - cache.built_at < max(ttl_s, 2 * cache.build_s):
            return
        t0 = time.monotonic()
        latest = await ctx.latest()
        by_station: dict[str, list[Mapping[str, Any]]] = {}
        try:
            rows = await asyncio.to_thread(store.list_alarms, ctx.engine, open_=True, limit=1_000_000)
            modes = cache.modes = await asyncio.to_thread(store.station_modes, ctx.engine)
            for a in rows:
                by_station.setdefault(a["station_id"], []).append(a)
            alarms_from = "database"
        except SQLAlchemyError:
            active = ctx.active_alarms() if ctx.active_alarms is not None else None
            if active is None:
                raise
            by_station = {sid: list(rows) for sid, rows in active.items()}
            modes, alarms_from = cache.modes, "collector memory"
        now = ctx.clock.now()
        by_tenant = await asyncio.to_thread(_build, ctx, latest, by_station, modes, now)
        cache.by_tenant, cache.joined, cache.alarms_from = by_tenant, {}, alarms_from
        cache.at, cache.built_at = now, time.monotonic()
        cache.build_s = cache.built_at - t0


def overview_bytes(cache: _Cache, tenants: set[str] | None) -> bytes:
    key = frozenset(tenants) if tenants is not None else None
    body = cache.joined.get(key)
    if body is None:
        parts = [b for t, items in cache.by_tenant.items() if tenants is None or t in tenants for b in items]
        at = cache.at.isoformat() if cache.at else None
        head = orjson.dumps({"at": at, "alarms_from": cache.alarms_from, "count": len(parts)})[:-1]
        body = cache.joined[key] = head + b',"data":[' + b",".join(parts) + b"]}"
    return body


@router.get("", response_class=Response)
async def overview(
    ctx: Ctx,
    user: CurrentUser,
    request: Request,
    tenant: Annotated[str | None, Query(description="only this tenant's stations")] = None,
) -> Response:
    """Every station's status, data age, active alarms and measured values (snapshot at most 1 s old)."""
    tenants = set(access.tenants_for(user, tenant))
    cache: _Cache = getattr(request.app.state, "overview_cache", None) or _Cache()
    request.app.state.overview_cache = cache
    # the snapshot's age on the clock its statuses and data ages were computed with
    if cache.at is None or (ctx.clock.now() - cache.at).total_seconds() > max(MAX_AGE_S, 4 * cache.build_s):
        try:  # the first, or the background builds have been failing: build now, or say why not
            await asyncio.create_task(_refresh(ctx, cache, ttl_s=1.0, force=True))
        except Exception as exc:
            reason = "the database is unreachable" if isinstance(exc, SQLAlchemyError) else type(exc).__name__
            raise HTTPException(503, f"the overview cannot be brought up to date: {reason}") from None
    elif cache.task is None or cache.task.done():  # serve this snapshot; the next one builds meanwhile
        cache.task = asyncio.create_task(_refresh(ctx, cache, ttl_s=1.0))
        # a failed background build is seen by the age check above, not left as an unread exception
        cache.task.add_done_callback(lambda t: t.cancelled() or t.exception())
    return Response(overview_bytes(cache, tenants), media_type="application/json")
