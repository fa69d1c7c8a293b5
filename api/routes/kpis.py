"""Alarm-system KPIs per tenant over a time range."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from fastapi import APIRouter, HTTPException

from pumpwatch.alarms import kpis, store
from pumpwatch.api.auth import access
from pumpwatch.api.deps import Ctx, CurrentUser
from pumpwatch.api.inputs import Timestamp
from pumpwatch.api.schemas import BadActor, KpisPublic

router = APIRouter(prefix="/kpis", tags=["kpis"])


@router.get("", response_model=KpisPublic)
async def alarm_kpis(
    ctx: Ctx, user: CurrentUser, tenant: str, start: Timestamp | None = None, end: Timestamp | None = None
) -> KpisPublic:
    access.tenants_for(user, tenant)
    if tenant not in ctx.fleet.tenants:
        raise HTTPException(404, f"no tenant {tenant!r}")
    end = end or ctx.clock.now()
    start = start or end - timedelta(days=1)
    for name, t in (("start", start), ("end", end)):
        if t.tzinfo is None:
            raise HTTPException(422, f"{name} must carry a UTC offset")
    if start >= end or end - start > timedelta(days=400):
        raise HTTPException(422, "start must be before end, at most 400 days apart")
    raises = await asyncio.to_thread(
        store.alarm_journal,
        ctx.engine,
        tenant_ids=[tenant],
        start=start,
        end=end,
        kinds=["raise"],
        limit=5_000_000,
    )
    active = await asyncio.to_thread(
        store.list_alarms, ctx.engine, open_=True, active=True, tenant_ids=[tenant], limit=1_000_000
    )
    k = await asyncio.to_thread(kpis.compute, raises, active, start, end)  # a year of raises: not on the loop
    return KpisPublic(
        tenant=tenant,
        start=start,
        end=end,
        alarms=k.alarms,
        per_10min_avg=k.per_10min_avg,
        per_10min_max=k.per_10min_max,
        flood_share=k.flood_share,
        chattering=k.chattering,
        stale=k.stale,
        top_bad_actors=[BadActor(station=s, name=n, count=c) for s, n, c in k.top_bad_actors],
        priority_mix=k.priority_mix,
        period_s=int(kpis.PERIOD.total_seconds()),
        flood_threshold=kpis.FLOOD,
        per_10min=list(k.per_10min),
        chattering_alarms=[BadActor(station=s, name=n, count=c) for s, n, c in k.chattering_alarms],
    )
