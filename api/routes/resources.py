"""Mobile resources (issue 18 part 5): the register of portable generators and vacuum trucks per tenant,
sending one to a station, and moving it through dispatched → on site → running → returned.

Each change is journaled with who and when (`pumpwatch.core.resources`); an operator of the resource's
tenant may make it. The dispatch board shows each station's resources against its time to overflow.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from fastapi import APIRouter, HTTPException

from pumpwatch.api.auth import access
from pumpwatch.api.context import station_samples
from pumpwatch.api.deps import Ctx, CurrentUser
from pumpwatch.api.schemas import (
    AssignmentPublic,
    AssignmentState,
    AssignRequest,
    Detail,
    LocationPublic,
    ResourcePublic,
    ResourcesPublic,
    RowId,
)
from pumpwatch.api.views import assigned_resource, capacity, good
from pumpwatch.core import resources

router = APIRouter(tags=["resources"])
log = logging.getLogger(__name__)


def _register(ctx):
    if ctx.resources is None:
        raise HTTPException(404, "no mobile resources are configured (fleet.yaml `resources:`)")
    return ctx.resources


@router.get("/resources", response_model=ResourcesPublic)
async def list_resources(ctx: Ctx, user: CurrentUser, tenant: str | None = None) -> ResourcesPublic:
    tenants = access.tenants_for(user, tenant)
    if ctx.resources is None:
        return ResourcesPublic(data=[], count=0)
    reg = ctx.resources
    sent = {
        a["resource_id"]: a for a in await asyncio.to_thread(resources.open_assignments, ctx.engine, tenants)
    }
    now = ctx.clock.now()
    data = []
    for r in reg.of_tenants(tenants):
        base = reg.bases[r.base]
        where = r.position or base.location
        a = sent.get(r.id)
        data.append(
            ResourcePublic(
                id=r.id,
                tenant=r.tenant,
                kind=r.kind,
                name=r.name,
                capacity=capacity(r),
                kva=r.kva,
                m3=r.m3,
                base=base.id,
                base_name=base.name,
                position=LocationPublic(lat=where.lat, lon=where.lon) if where else None,
                assignment=assigned_resource(ctx, a, now, None) if a else None,
                station=a["station_id"] if a else None,
            )
        )
    return ResourcesPublic(data=data, count=len(data))


@router.post(
    "/resources/{resource_id}/assign",
    response_model=AssignmentPublic,
    status_code=201,
    responses={409: {"model": Detail}, 422: {"model": Detail}},
)
async def assign(ctx: Ctx, user: CurrentUser, resource_id: str, body: AssignRequest) -> AssignmentPublic:
    reg = _register(ctx)
    res = reg.resources.get(resource_id)
    if res is None or res.tenant not in user.tenants:
        raise access.not_found(f"resource {resource_id}")
    access.require(user, "operator", res.tenant)
    now = ctx.clock.now()
    tto = good(station_samples(await ctx.latest(), body.station), "tto_spill_min")
    try:
        got = await asyncio.to_thread(
            resources.assign,
            ctx.engine,
            reg,
            ctx.fleet,
            resource_id,
            body.station,
            actor=user.username,
            now=now,
            spill_expected_at=now + timedelta(minutes=tto) if tto is not None else None,
        )
    except resources.AssignError as exc:
        raise HTTPException(exc.status, str(exc)) from None
    return AssignmentPublic(
        id=got["id"],
        resource=resource_id,
        station=body.station,
        state="dispatched",
        eta_at=got["eta_at"],
        travel_s=round(got["travel_s"], 1),
        estimate=got["estimate"],
    )


@router.post(
    "/assignments/{assignment_id}/state", response_model=AssignmentPublic, responses={409: {"model": Detail}}
)
async def set_state(
    ctx: Ctx, user: CurrentUser, assignment_id: RowId, body: AssignmentState
) -> AssignmentPublic:
    _register(ctx)
    operable = frozenset(t for t in user.tenants if user.can("operator", t))
    try:
        got = await asyncio.to_thread(
            resources.advance,
            ctx.engine,
            assignment_id,
            body.state,
            actor=user.username,
            now=ctx.clock.now(),
            tenants=operable,  # another tenant's, or one the user only views: not found
        )
    except resources.AssignError as exc:
        raise HTTPException(exc.status, str(exc)) from None
    res = ctx.resources.resources.get(got["resource_id"]) if ctx.resources else None
    if ctx.resource_changed is not None and res is not None:
        try:
            ctx.resource_changed(got["station_id"], res.kind, body.state)
        except Exception:  # the simulator's hook must not turn a journaled change into a 500
            log.exception("resource hook failed")
    return AssignmentPublic(
        id=got["id"], resource=got["resource_id"], station=got["station_id"], state=body.state
    )
