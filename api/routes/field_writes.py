"""Writing to the field, for engineers, in two steps (IEC 62443 SR 2.1/1.13 style dual control).

1. `POST …/points/{point}/write-requests` {value}: checks the role (engineer of the station's tenant),
   that the station has `write_enabled` and the point is writable; answers a one-time confirmation valid
   for 60 s, bound to this user, station, point and value.
2. `POST …/points/{point}/writes` {value, confirmation}: the audit record of the attempt is committed
   first (no record, no write: 503); then the value is written and read back; a second record says how it
   went. Without a valid confirmation: 403. A read-back that differs: 502.
Confirmations live in this API process (a write needs the collector in the same process anyway).
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, HTTPException, Request

from pumpwatch.api.auth import access
from pumpwatch.api.deps import Ctx, CurrentUser
from pumpwatch.api.schemas import (
    Detail,
    WriteConfirm,
    WriteConfirmationPublic,
    WriteRequest,
    WriteResultPublic,
)
from pumpwatch.core.writable import WriteError, to_raw, writable_spec

router = APIRouter(prefix="/stations", tags=["field writes"])
CONFIRM_S = 60
ERRORS: dict[int | str, dict[str, Any]] = {409: {"model": Detail}, 502: {"model": Detail}}


def _check(ctx, user, station_id: str, point: str, value: float):
    st = access.station(ctx, user, station_id, "engineer")
    try:
        spec = writable_spec(ctx.fleet, station_id, point)
        to_raw(spec, value)
    except WriteError as exc:
        raise HTTPException(exc.status, str(exc)) from None
    return st


@router.post(
    "/{station_id}/points/{point}/write-requests", response_model=WriteConfirmationPublic, responses=ERRORS
)
async def request_write(
    ctx: Ctx, user: CurrentUser, request: Request, station_id: str, point: str, body: WriteRequest
) -> WriteConfirmationPublic:
    st = _check(ctx, user, station_id, point, body.value)
    now = ctx.clock.now()
    for token, pending in list(ctx.write_confirmations.items()):  # forget expired ones
        if pending["expires_at"] <= now:
            del ctx.write_confirmations[token]
    token = secrets.token_urlsafe(24)
    expires = now + timedelta(seconds=CONFIRM_S)
    audit = access.audit_for(
        request,
        user,
        "field.write_request",
        tenant_id=st.tenant,
        target=f"point:{station_id}/{point}",
        new_value=body.value,
    )
    await asyncio.to_thread(audit.record, ctx.engine)
    ctx.write_confirmations[token] = {
        "user_id": user.id,
        "station": station_id,
        "point": point,
        "value": body.value,
        "expires_at": expires,
    }
    return WriteConfirmationPublic(
        confirmation=token, expires_at=expires, station=station_id, point=point, value=body.value
    )


@router.post("/{station_id}/points/{point}/writes", response_model=WriteResultPublic, responses=ERRORS)
async def write(
    ctx: Ctx, user: CurrentUser, request: Request, station_id: str, point: str, body: WriteConfirm
) -> WriteResultPublic:
    st = _check(ctx, user, station_id, point, body.value)
    now = ctx.clock.now()
    pending = ctx.write_confirmations.pop(body.confirmation, None)  # one use, whatever happens next
    audit = access.audit_for(
        request,
        user,
        "field.write",
        tenant_id=st.tenant,
        target=f"point:{station_id}/{point}",
        new_value=body.value,
    )
    wanted = {"user_id": user.id, "station": station_id, "point": point, "value": body.value}
    if pending is None or pending["expires_at"] <= now or any(pending[k] != v for k, v in wanted.items()):
        await asyncio.to_thread(audit.record, ctx.engine, "denied", detail="no valid confirmation")
        raise HTTPException(403, "a write needs a confirmation from write-requests, same value, within 60 s")
    if ctx.field_write is None:
        raise HTTPException(503, "this API process runs no collector: it cannot write to the field")
    # The record of the attempt is committed before anything goes to the field (fail closed).
    await asyncio.to_thread(audit.record, ctx.engine, "requested")
    try:
        got = await ctx.field_write(station_id, point, body.value)
    except WriteError as exc:
        await asyncio.to_thread(audit.record, ctx.engine, "failed", detail=str(exc))
        raise HTTPException(exc.status, str(exc)) from None
    await asyncio.to_thread(audit.record, ctx.engine, "ok", new_value=got, detail="read back")
    return WriteResultPublic(station=station_id, point=point, written=body.value, read_back=got, at=now)
