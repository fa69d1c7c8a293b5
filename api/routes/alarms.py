"""Alarms: the operator's list, one alarm, its journal, and the operator actions (ISA-18.2): acknowledge,
shelve (timed or one-shot, with a reason, at most the configured time), unshelve, reset a latched alarm."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response

from pumpwatch.alarms import store
from pumpwatch.alarms.incidents import note_first_response
from pumpwatch.api.auth import access
from pumpwatch.api.auth.users import User
from pumpwatch.api.context import ApiContext
from pumpwatch.api.deps import Ctx, CurrentUser
from pumpwatch.api.inputs import Timestamp
from pumpwatch.api.schemas import (
    AckRequest,
    AlarmPublic,
    AlarmsPublic,
    AlarmState,
    Detail,
    JournalEntryPublic,
    JournalPublic,
    Priority,
    RowId,
    ShelveRequest,
    UnshelveRequest,
)
from pumpwatch.api.views import alarm_public
from pumpwatch.core.audit import Audit

router = APIRouter(prefix="/alarms", tags=["alarms"])
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": Detail, "description": "the alarm is not in a state for this action"}
}


async def _run(fn, *args, **kw):
    try:
        return await asyncio.to_thread(fn, *args, **kw)
    except store.AlarmActionError as exc:
        raise HTTPException(exc.status, str(exc)) from None


# A page cursor: where the last alarm of a page stands in the list's order (state rank, priority rank,
# raised at in µs since 1970, id). Every string of this shape is a valid position.
CURSOR_PATTERN = r"^[0-3]\.[0-9]\.-?[0-9]{1,16}\.[0-9]{1,9}$"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def _cursor(key: store.AlarmListKey) -> str:
    at = (key.raised_at - _EPOCH) // _US
    return f"{key.state_rank}.{key.priority_rank}.{at}.{key.id}"


def _after(cursor: str) -> store.AlarmListKey:
    sr, pr, at, aid = cursor.split(".")
    return store.AlarmListKey(int(sr), int(pr), _EPOCH + int(at) * _US, int(aid))


@router.get("", response_class=Response, responses={200: {"model": AlarmsPublic}})
async def list_alarms(
    ctx: Ctx,
    user: CurrentUser,
    view: Annotated[
        str,
        Query(
            pattern="^(open|hidden|all_open|closed|all)$",
            description="open: what the operator must see (default); hidden: shelved, suppressed or out of "
            "service; all_open: both; closed: returned and acknowledged; all: everything",
        ),
    ] = "open",
    tenant: str | None = None,
    station: str | None = None,
    state: AlarmState | None = None,
    priority: Priority | None = None,
    limit: Annotated[int, Query(ge=1, le=5000, description="alarms per page")] = 500,
    cursor: Annotated[
        str | None,
        Query(
            pattern=CURSOR_PATTERN, description="the `next_cursor` of the page before: this page follows it"
        ),
    ] = None,
) -> Response:
    """Alarms, unacknowledged first, then by priority and newest, a page at a time (`next_cursor` null:
    the last page). Built and encoded in a worker thread: a long page never holds the event loop."""
    tenants = access.tenants_for(user, tenant)
    if station is not None:
        access.station(ctx, user, station)
    after = _after(cursor) if cursor is not None else None
    now = ctx.clock.now()
    open_ = {"open": True, "hidden": True, "all_open": True, "closed": False, "all": None}[view]
    hidden = {"open": False, "hidden": True}.get(view)
    rows = await asyncio.to_thread(
        store.list_alarms,
        ctx.engine,
        open_=open_,
        tenant_ids=tenants,
        station_id=station,
        now=now,
        hidden=hidden,
        limit=limit + 1,  # one more: is there a next page
        states=[state] if state is not None else None,
        priorities=[priority] if priority is not None else None,
        after=after,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = _cursor(store.list_key(rows[-1])) if more else None

    def encode() -> bytes:
        data = [alarm_public(r, now) for r in rows]
        return AlarmsPublic(data=data, count=len(data), next_cursor=next_cursor).model_dump_json().encode()

    return Response(await asyncio.to_thread(encode), media_type="application/json")


@router.get("/journal", response_model=JournalPublic)
async def journal(
    ctx: Ctx,
    user: CurrentUser,
    tenant: str | None = None,
    start: Timestamp | None = None,
    end: Timestamp | None = None,
    limit: Annotated[int, Query(ge=1, le=50_000)] = 5000,
    newest_first: Annotated[bool, Query(description="the latest `limit` entries, newest first")] = False,
) -> JournalPublic:
    """Every alarm transition and operator action (who, when, why), oldest first."""
    tenants = access.tenants_for(user, tenant)
    upto = end  # no end given: up to and including what was journaled this very instant
    end = end or ctx.clock.now()
    start = start or end - timedelta(days=1)
    for name, t in (("start", start), ("end", end)):
        if t.tzinfo is None:
            raise HTTPException(422, f"{name} must carry a UTC offset")
    rows = await asyncio.to_thread(
        store.alarm_journal,
        ctx.engine,
        tenant_ids=tenants,
        start=start,
        end=upto,
        limit=limit,
        newest_first=newest_first,
    )
    return JournalPublic(data=[_entry(r) for r in rows], count=len(rows))


def _entry(r: store.JournalRow) -> JournalEntryPublic:
    return JournalEntryPublic(
        id=r["id"],
        alarm_id=r["alarm_id"],
        tenant=r["tenant_id"],
        station=r["station_id"],
        name=r["name"],
        at=r["at"],
        kind=r["kind"],
        state=r["state"],
        actor=r["actor"],
        detail=r["detail"],
        value=r["value"],
        drill_id=r.get("drill_id"),
    )


async def _visible(ctx: ApiContext, user: User, alarm_id: int, role: str | None = None) -> store.AlarmRow:
    """The alarm if the user may see it (404 otherwise, whether or not it exists); 403 if `role` is
    needed and not held in its tenant."""
    row = await asyncio.to_thread(store.get_alarm, ctx.engine, alarm_id)
    if row is None or row["tenant_id"] not in user.tenants:
        raise access.not_found(f"alarm {alarm_id}")
    if role is not None:
        access.require(user, role, row["tenant_id"])
    return row


def _audit(request: Request, user: User, row: store.AlarmRow, action: str) -> Audit:
    return access.audit_for(
        request,
        user,
        action,
        tenant_id=row["tenant_id"],
        target=f"alarm:{row['id']} {row['station_id']}/{row['name']}",
    )


@router.get("/{alarm_id}", response_model=AlarmPublic)
async def get_alarm(ctx: Ctx, user: CurrentUser, alarm_id: RowId) -> AlarmPublic:
    return alarm_public(await _visible(ctx, user, alarm_id), ctx.clock.now())


@router.get("/{alarm_id}/journal", response_model=JournalPublic)
async def alarm_journal(ctx: Ctx, user: CurrentUser, alarm_id: RowId) -> JournalPublic:
    await _visible(ctx, user, alarm_id)
    rows = await asyncio.to_thread(store.alarm_journal, ctx.engine, alarm_id)
    return JournalPublic(data=[_entry(r) for r in rows], count=len(rows))


@router.post("/{alarm_id}/ack", response_model=AlarmPublic, responses=CONFLICT)
async def acknowledge(
    ctx: Ctx, user: CurrentUser, request: Request, alarm_id: RowId, body: AckRequest
) -> AlarmPublic:
    row = await _visible(ctx, user, alarm_id, "operator")
    now = ctx.clock.now()
    row = await _run(
        store.acknowledge,
        ctx.engine,
        alarm_id,
        actor=user.username,
        at=now,
        comment=body.comment,
        audit=_audit(request, user, row, "alarm.ack"),
    )
    await asyncio.to_thread(note_first_response, ctx.engine, alarm_id, now, user.username)
    return alarm_public(row, now)


@router.post("/{alarm_id}/shelve", response_model=AlarmPublic, responses=CONFLICT)
async def shelve(
    ctx: Ctx, user: CurrentUser, request: Request, alarm_id: RowId, body: ShelveRequest
) -> AlarmPublic:
    row = await _visible(ctx, user, alarm_id, "operator")
    now = ctx.clock.now()
    max_h = ctx.rules.max_shelve_h if ctx.rules else 8.0
    if body.minutes > max_h * 60:
        raise HTTPException(422, f"shelving is limited to {max_h:g} h")
    until = now + timedelta(minutes=body.minutes)
    row = await _run(
        store.shelve,
        ctx.engine,
        alarm_id,
        actor=user.username,
        at=now,
        kind=body.kind,
        until=until,
        reason=body.reason,
        audit=_audit(request, user, row, "alarm.shelve"),
    )
    return alarm_public(row, now)


@router.post("/{alarm_id}/unshelve", response_model=AlarmPublic, responses=CONFLICT)
async def unshelve(
    ctx: Ctx, user: CurrentUser, request: Request, alarm_id: RowId, body: UnshelveRequest
) -> AlarmPublic:
    row = await _visible(ctx, user, alarm_id, "operator")
    now = ctx.clock.now()
    row = await _run(
        store.unshelve,
        ctx.engine,
        alarm_id,
        actor=user.username,
        at=now,
        reason=body.reason,
        audit=_audit(request, user, row, "alarm.unshelve"),
    )
    return alarm_public(row, now)


@router.post("/{alarm_id}/reset", response_model=AlarmPublic, responses=CONFLICT)
async def reset(
    ctx: Ctx, user: CurrentUser, request: Request, alarm_id: RowId, body: AckRequest
) -> AlarmPublic:
    row = await _visible(ctx, user, alarm_id, "operator")
    now = ctx.clock.now()
    row = await _run(
        store.reset,
        ctx.engine,
        alarm_id,
        actor=user.username,
        at=now,
        comment=body.comment,
        audit=_audit(request, user, row, "alarm.reset"),
    )
    return alarm_public(row, now)
