"""The system's own state, as the monitoring centre and orchestration see it; `/metrics`.

- `GET /api/v1/system/status` (the centre's staff): this process's historian (current or delayed, the
  spool's rows, bytes and fill), alarm journal, rejected input and system monitor; every collector shard's
  heartbeat from the database (so an API replica that polls nothing still shows a dead shard); the active
  system alarms; and the durable counts of rejected input by source and reason.
- `GET /api/v1/system/dead-letters` (the centre's operators): rejected inputs, newest first, with the
  bounded payload excerpt, and the counts (with what the bound dropped). Payloads may belong to any
  municipality: no one else reads them.
- `GET /api/v1/system/banner` (anyone signed in): what the console's banner says. The centre's staff see
  the system alarms; a municipality's user sees only which parts of the system are degraded (history,
  collection, notification, input): their own operators depend on them (values may lag, a phone may not
  ring), but the detail (which shard, which source, whose payloads) is the centre's.
- `GET /metrics`: Prometheus text format.

The active system alarms come from the journal (whichever collector's monitor wrote them) and from this
process's own monitor (which also holds them while the database is away, or in a fleet with no centre).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy import Engine

from pumpwatch.alarms import store
from pumpwatch.api.auth import access
from pumpwatch.api.deps import Ctx, CurrentUser
from pumpwatch.api.schemas import (
    DeadLetterPublic,
    DeadLettersPublic,
    RejectionCountPublic,
    SystemAlarmPublic,
    SystemBannerPublic,
    SystemPart,
)
from pumpwatch.core import rejections
from pumpwatch.core.db import rls
from pumpwatch.core.leases import leases
from pumpwatch.core.metrics import CONTENT_TYPE
from pumpwatch.core.sharding import shard_health

router = APIRouter(prefix="/system", tags=["system"])
ops_router = APIRouter(tags=["health"])

# which part of the system a system alarm says is degraded (what a municipality's user is told)
PARTS: dict[str, SystemPart] = {
    "historian_setup_incomplete": "history",
    "historian_lagging": "history",
    "spool_high": "history",
    "shard_dead": "collection",
    "notifier_stopped": "notification",
    "dead_letter_rate": "input",
}


def _links(engine) -> list[dict] | str:
    """Every leased link: who polls it, under which generation, and whether nobody does (`lapsed`)."""
    try:
        rows = leases(engine)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    now = datetime.now(UTC)
    return [
        {
            "link": r["link_id"],
            "owner": r["owner"],
            "generation": r["generation"],
            "expires_at": r["expires_at"].isoformat(),
            "wanted_by": r["wanted_by"],
            "lapsed": r["owner"] is None or r["expires_at"] < now,
        }
        for r in rows
    ]


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


def _stored_system_alarms(engine: Engine, centre: str | None) -> list[store.AlarmRow]:
    """The centre's active system alarms from the journal. Read in the centre's scope (this runs in a worker
    thread's own copy of the request context), so a municipality's user can be told *that* a part is
    degraded under row-level security; what they are shown of it is reduced by the caller."""
    token = rls.set_scope({centre} if centre else set())
    try:
        return store.active_system_alarms(engine, centre)
    finally:
        rls.scope.reset(token)


async def system_alarms(ctx) -> tuple[list[SystemAlarmPublic], str | None]:
    """Active system alarms (journal ∪ this process's monitor), and why the journal could not be read."""
    out: dict[tuple[str, str], SystemAlarmPublic] = {}
    error = None
    try:
        rows = await asyncio.to_thread(_stored_system_alarms, ctx.engine, ctx.fleet.centre)
    except Exception as exc:  # the database is away: this process's monitor still knows its own
        rows, error = [], f"{type(exc).__name__}"
    for r in rows:
        out[(r["station_id"], r["name"])] = SystemAlarmPublic(
            id=r["id"],
            station=r["station_id"],
            name=r["name"],
            part=PARTS.get(r["name"], "other"),
            priority=r["priority"],
            message=r["message"],
            since=r["last_raised_at"] or r["raised_at"],
            state=r["state"],
        )
    for a in (ctx.system_alarms() if ctx.system_alarms else None) or []:
        key = (a["station"], a["name"])
        if key not in out:
            out[key] = SystemAlarmPublic(
                id=None,
                station=a["station"],
                name=a["name"],
                part=PARTS.get(a["name"], "other"),
                priority=a["priority"],
                message=a["message"],
                since=a["since"],
            )
    return sorted(out.values(), key=lambda a: (a.station, a.name)), error


def _counts(engine, centre: str | None) -> list[dict] | str:
    try:
        return rejections.read_counts(engine, tenant_id=centre)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


@router.get("/status")
async def system_status(ctx: Ctx, user: CurrentUser) -> dict:
    """Historian, alarm journal, rejected input and system monitor of this process; the collector shards'
    heartbeats; the leased links (who polls each, and those nobody polls); the active system alarms;
    rejected input by source and reason (durable counts). The monitoring centre's staff only: it covers
    every tenant's stations."""
    access.require_centre(ctx, user, "viewer")
    shards = await asyncio.to_thread(_shards, ctx.engine)
    links = await asyncio.to_thread(_links, ctx.engine)
    alarms, alarms_error = await system_alarms(ctx)
    counts = await asyncio.to_thread(_counts, ctx.engine, ctx.fleet.centre)
    by_source: dict[str, dict[str, dict]] = {}
    if isinstance(counts, list):
        for r in counts:
            by_source.setdefault(r["source"], {})[r["reason"]] = {
                "count": r["count"],
                "dropped": r["dropped"],
                "last_at": r["last_at"].isoformat(),
            }
    return {
        "centre": ctx.fleet.centre,
        "process": ctx.status() if ctx.status else {},
        "shards": shards,
        "dead_shards": [r["shard"] for r in shards if r.get("alive") is False],
        # leased links (pumpwatch.core.leases): those nobody polls now, and who polls each
        "unpolled_links": [r["link"] for r in links if r["lapsed"]] if isinstance(links, list) else None,
        "links": links if isinstance(links, list) else [],
        "links_error": links if isinstance(links, str) else None,
        "system_alarms": [a.model_dump(mode="json") for a in alarms],
        "system_alarms_error": alarms_error,
        "rejections": {
            "by_source": by_source,
            "total": sum(c["count"] for reasons in by_source.values() for c in reasons.values()),
            "dropped": sum(c["dropped"] for reasons in by_source.values() for c in reasons.values()),
            "error": counts if isinstance(counts, str) else None,
        },
    }


@router.get("/dead-letters", response_model=DeadLettersPublic)
async def dead_letters(
    ctx: Ctx,
    user: CurrentUser,
    source: Annotated[str | None, Query(max_length=200, description="a controller id")] = None,
    reason: Annotated[str | None, Query(max_length=100, description="e.g. not finite, wrong type")] = None,
    before_id: Annotated[int | None, Query(ge=1, le=2_147_483_647, description="older than this id")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> DeadLettersPublic:
    """Rejected inputs, newest first (bounded payload excerpts), and the counts by source and reason. The
    monitoring centre's operators only: a payload may belong to any municipality."""
    access.require_centre(ctx, user, "operator")
    centre = ctx.fleet.centre
    rows = await asyncio.to_thread(
        rejections.read_dead_letters,
        ctx.engine,
        tenant_id=centre,
        source=source,
        reason=reason,
        before_id=before_id,
        limit=limit,
    )
    counts = await asyncio.to_thread(rejections.read_counts, ctx.engine, tenant_id=centre)
    data = [DeadLetterPublic(**{k: r[k] for k in DeadLetterPublic.model_fields}) for r in rows]
    return DeadLettersPublic(
        data=data,
        count=len(data),
        next_before_id=data[-1].id if len(data) == limit else None,
        keep_per_source=ctx.rejections.keep_per_source if ctx.rejections is not None else None,
        totals=[RejectionCountPublic(**{k: r[k] for k in RejectionCountPublic.model_fields}) for r in counts],
    )


@router.get("/banner", response_model=SystemBannerPublic)
async def banner(ctx: Ctx, user: CurrentUser) -> SystemBannerPublic:
    """Whether a part of the system is degraded: the system alarms for the centre's staff, only the parts
    (history, collection, notification, input) for anyone else."""
    alarms, _ = await system_alarms(ctx)
    parts = sorted({a.part for a in alarms})
    if access.of_centre(ctx, user):
        return SystemBannerPublic(degraded=bool(alarms), centre=True, parts=parts, alarms=alarms)
    return SystemBannerPublic(degraded=bool(alarms), centre=False, parts=parts, alarms=[])


@ops_router.get("/metrics", include_in_schema=False)
async def metrics(ctx: Ctx) -> Response:
    body = (ctx.metrics() if ctx.metrics else b"") + ctx.request_rejections.render()
    return Response(body, media_type=CONTENT_TYPE)
