"""The dispatch board: where the portable generators and vacuum trucks go first.

Stations that cannot pump now (power failure, no pump available, pumps not restarted) or whose time to
overflow is short, ranked by the estimated minutes to overflow (soonest first), then by priority. It re-ranks
on every request: a station whose power returns and whose pumps run leaves the board, and so does one whose
portable generator runs once its pumps run. Each entry lists the mobile resources sent to it and whether
they arrive before the estimated spill. The board itself is
built by `api/views.py` (`build_board`), which the live stream sends too.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response

from pumpwatch.alarms import store
from pumpwatch.api.auth import access
from pumpwatch.api.deps import Ctx, CurrentUser
from pumpwatch.api.schemas import DispatchPublic
from pumpwatch.api.views import build_board
from pumpwatch.core import resources

router = APIRouter(prefix="/dispatch", tags=["dispatch"])


@router.get("", response_class=Response, responses={200: {"model": DispatchPublic}})
async def dispatch_board(
    ctx: Ctx,
    user: CurrentUser,
    tenant: str | None = None,
) -> Response:
    """The ranked board (every station on it: a board is read whole, and it is as long as the crisis).
    Ranked and encoded in a worker thread: a board of thousands never holds the event loop."""
    tenants = access.tenants_for(user, tenant)
    now = ctx.clock.now()
    latest = await ctx.latest()
    rows = await asyncio.to_thread(
        store.list_alarms, ctx.engine, open_=True, active=True, tenant_ids=tenants, limit=1_000_000
    )
    sent = await asyncio.to_thread(resources.open_assignments, ctx.engine, tenants) if ctx.resources else []

    def encode() -> bytes:
        data = build_board(ctx, latest, rows, now, tenants, sent)
        return DispatchPublic(at=now, data=data, count=len(data)).model_dump_json().encode()

    return Response(await asyncio.to_thread(encode), media_type="application/json")
