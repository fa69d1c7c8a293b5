"""Drills (issue 18): start one from a scenario file, stop it, see which run (every view's DRILL banner),
and read the report.

Starting and stopping need the trainer role (or higher) in the drill's tenant, and a simulated fleet in
this process (`pumpwatch demo`): the drill engine is the root's, reached through `ApiContext.drills`. A
drill is tenant-scoped like everything: another tenant's drill does not exist for you (404).
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import JSONResponse

from pumpwatch.alarms.drill_report import drill_report
from pumpwatch.api.auth import access
from pumpwatch.api.deps import Ctx, CurrentUser
from pumpwatch.api.schemas import (
    Detail,
    DrillProblems,
    DrillPublic,
    DrillReportPublic,
    DrillsPublic,
    DrillStart,
    RowId,
)
from pumpwatch.core import drills
from pumpwatch.core.config import ConfigError
from pumpwatch.core.config.scenario import parse_scenario_text

router = APIRouter(prefix="/drills", tags=["drills"])

TRAINER = "trainer"


def drill_public(d: dict) -> DrillPublic:
    return DrillPublic(
        id=d["id"],
        tenant=d["tenant_id"],
        name=d["name"],
        title=d["title"],
        notify=d["notify"],
        contacts=d["contacts"],
        started_at=d["started_at"],
        started_by=d["started_by"],
        ends_at=d["ends_at"],
        stopped_at=d["stopped_at"],
        stopped_by=d["stopped_by"],
        outcome=d["outcome"],
        running=d["running"],
    )


@router.get("", response_model=DrillsPublic)
async def list_drills(
    ctx: Ctx,
    user: CurrentUser,
    tenant: str | None = None,
    running: Annotated[bool, Query(description="only the drills running now (the banner)")] = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> DrillsPublic:
    tenants = sorted(access.tenants_for(user, tenant))
    if running:
        rows = await asyncio.to_thread(drills.active_drills, ctx.engine, tenants)
    else:
        rows = await asyncio.to_thread(drills.list_drills, ctx.engine, tenants, limit)
    data = [drill_public(d) for d in rows]
    return DrillsPublic(data=data, count=len(data))


@router.post(
    "",
    response_model=DrillPublic,
    status_code=201,
    responses={409: {"model": Detail}, 422: {"model": DrillProblems}},
)
async def start_drill(ctx: Ctx, user: CurrentUser, body: DrillStart):
    try:
        scenario = parse_scenario_text(body.scenario, "scenario", ctx.fleet)
    except ConfigError as exc:
        return JSONResponse(
            status_code=422, content={"detail": "the scenario is not valid", "problems": exc.problems[:100]}
        )
    access.require(user, TRAINER, scenario.tenant)
    if ctx.drills is None:
        raise HTTPException(
            409, "drills run on a simulated fleet only (pumpwatch demo): none in this process"
        )
    try:
        did = await ctx.drills.start(body.scenario, user.username)
    except drills.DrillConflict as exc:
        raise HTTPException(409, str(exc)) from None
    d = await asyncio.to_thread(drills.get_drill, ctx.engine, did)
    assert d is not None
    return drill_public(d)


async def _visible(ctx, user, drill_id: int) -> dict:
    d = await asyncio.to_thread(drills.get_drill, ctx.engine, drill_id)
    if d is None or d["tenant_id"] not in user.tenants:
        raise access.not_found(f"drill {drill_id}")
    return d


@router.get("/{drill_id}", response_model=DrillPublic)
async def get_drill(ctx: Ctx, user: CurrentUser, drill_id: RowId) -> DrillPublic:
    return drill_public(await _visible(ctx, user, drill_id))


@router.post("/{drill_id}/stop", response_model=DrillPublic, responses={409: {"model": Detail}})
async def stop_drill(ctx: Ctx, user: CurrentUser, drill_id: RowId) -> DrillPublic:
    d = await _visible(ctx, user, drill_id)
    access.require(user, TRAINER, d["tenant_id"])
    if not d["running"]:
        raise HTTPException(409, f"drill {drill_id} has ended already ({d['outcome']})")
    stopped = ctx.drills is not None and await ctx.drills.stop(drill_id, user.username)
    if not stopped:  # its engine is in another process, or gone: end the record so the banner goes
        await asyncio.to_thread(
            drills.stop, ctx.engine, drill_id, at=ctx.clock.now(), actor=user.username, outcome="stopped"
        )
    d = await _visible(ctx, user, drill_id)
    return drill_public(d)


@router.get("/{drill_id}/report", response_model=DrillReportPublic)
async def get_report(ctx: Ctx, user: CurrentUser, drill_id: RowId) -> DrillReportPublic:
    await _visible(ctx, user, drill_id)
    r = await asyncio.to_thread(drill_report, ctx.engine, drill_id, ctx.clock.now())
    if r is None:
        raise access.not_found(f"drill {drill_id}")
    return DrillReportPublic(**{**r, "drill": drill_public(r["drill"])})
