"""The storage path and the collector shards as operators and orchestration see them; `/metrics`.

`GET /api/v1/system/status`: this process's historian (current or delayed, the spool's rows, bytes and fill)
and alarm journal, and every collector shard's heartbeat (alive or not) from the database, so an API
replica that polls nothing still shows a dead shard. `GET /metrics`: Prometheus text format.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, Response

from api.deps import Ctx, CurrentUser
from pumpwatch.metrics import CONTENT_TYPE
from pumpwatch.sharding import shard_health

router = APIRouter(prefix="/system", tags=["system"])
ops_router = APIRouter(tags=["health"])


def _shards(engine) -> list[dict]:
    try:
        rows = shard_health(engine, datetime.now(UTC))
    except Exception as exc:  # the database is away: say so rather than fail the status
        return [{"error": f"{type(exc).__name__}: {exc}"}]
    return [
        {
            k: r.get(k)
            for k in (
                "shard",
                "shard_count",
                "alive",
                "age_s",
                "host",
                "pid",
                "stations",
                "polls",
                "late_polls",
                "spool_rows",
                "historian_state",
            )
        }
        for r in rows
    ]


@router.get("/status")
async def system_status(ctx: Ctx, user: CurrentUser) -> dict:
    """Historian and alarm-journal state of this process, and the collector shards' heartbeats. They cover
    every tenant's stations, so only a user who sees every tenant (the centre's staff) may read them."""
    if not set(ctx.fleet.tenants) <= set(user.tenants):
        raise HTTPException(403, "the system's state covers every tenant: needs a grant for each")
    shards = await asyncio.to_thread(_shards, ctx.engine)
    return {
        "process": ctx.status() if ctx.status else {},
        "shards": shards,
        "dead_shards": [r["shard"] for r in shards if r.get("alive") is False],
    }


@ops_router.get("/metrics", include_in_schema=False)
async def metrics(ctx: Ctx) -> Response:
    body = (ctx.metrics() if ctx.metrics else b"") + ctx.rejections.render()
    return Response(body, media_type=CONTENT_TYPE)
