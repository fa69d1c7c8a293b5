"""Liveness and readiness probes for orchestration."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response
from sqlalchemy import text

from pumpwatch.api.deps import Ctx
from pumpwatch.api.routes.system import system_alarms
from pumpwatch.api.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up and its event loop answers."""
    return Health(status="ok")


def _db_ok(engine) -> bool:
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
async def readyz(ctx: Ctx, response: Response) -> Health:
    """Ready to serve: the database answers and the parts running in this process are alive. `detail`: the
    storage path, rejected input (counts only) and the system alarms of the centre that are active."""
    try:
        db = await asyncio.wait_for(asyncio.to_thread(_db_ok, ctx.engine), 3.0)
    except TimeoutError:
        db = False
    checks = {"database": db, **(ctx.readiness() if ctx.readiness else {})}
    ok = all(checks.values())
    if not ok:
        response.status_code = 503
    detail = dict(ctx.status()) if ctx.status else {}
    if "system_alarms" not in detail and db:  # no system monitor here: what the collectors' journaled
        alarms, _ = await system_alarms(ctx)
        detail["system_alarms"] = [
            {k: a.model_dump(mode="json")[k] for k in ("station", "name", "priority", "message", "since")}
            for a in alarms
        ]
    return Health(status="ok" if ok else "unavailable", checks=checks, detail=detail or None)
