"""The live stream (Server-Sent Events): what the console shows, pushed as it changes.

Events (`event:` name, `data:` JSON):
- `snapshot` first, unless the client's Last-Event-ID lets it catch up by replay: `{at, status_ladder,
  stations, alarms, dispatch}` (the station statuses in ladder order, alarms/status.py; stations as in
  GET /stations, the open alarms including hidden ones, the board);
- `station`: one station as in GET /stations/{id}, when a value, its quality, the status or the alarms
  change (ages are not news: the client counts them from `observed_at`);
- `alarm`: one alarm as in GET /alarms/{id}, after any transition or operator action;
- `dispatch`: the whole board as in GET /dispatch, when its ranking, reasons or times change;
- `heartbeat` every 5 s: `{at}`, the server's clock (the client's countdowns and ages follow it).

Every event but the heartbeat has an id; a reconnecting client sends the last one (the browser does,
as Last-Event-ID; a page may pass `last_event_id`) and gets what it missed, or a new snapshot. Only the
tenants the client may see are in it. A client too slow to keep up is disconnected (it reconnects).
Authenticated like every /api/v1 route; the stream ends when its session ends (checked every heartbeat).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent
from sqlalchemy.exc import SQLAlchemyError

from pumpwatch.api.auth.sessions import session_alive
from pumpwatch.api.deps import Ctx, CurrentUser
from pumpwatch.api.streamhub import StreamHub

router = APIRouter(prefix="/stream", tags=["stream"])

HEARTBEAT_S = 5.0
RETRY_MS = 2000  # the browser's reconnect delay after a lost connection


def get_hub(request: Request) -> StreamHub:
    return request.app.state.hub


Hub = Annotated[StreamHub, Depends(get_hub)]


def visible_tenants(user: CurrentUser) -> Collection[str] | None:
    """The tenants this client may see: the user's grants (None would be all)."""
    return user.tenants


@router.get(
    "",
    response_class=EventSourceResponse,
    summary="Live changes of stations, alarms and the dispatch board (Server-Sent Events)",
)
async def live_stream(
    ctx: Ctx,
    user: CurrentUser,
    hub: Hub,
    tenants: Annotated[Collection[str] | None, Depends(visible_tenants)],
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    last: Annotated[
        str | None, Query(alias="last_event_id", description="resume after this event id")
    ] = None,
) -> AsyncIterator[ServerSentEvent]:
    sub = hub.subscribe(tenants, last_event_id or last)
    loop = asyncio.get_running_loop()
    next_beat = loop.time() + HEARTBEAT_S
    try:
        yield ServerSentEvent(retry=RETRY_MS, comment="pumpwatch live")
        while True:
            while sub.queue:
                eid, kind, data = sub.queue.popleft()
                yield ServerSentEvent(raw_data=data, event=kind, id=eid)
            if sub.dropped or hub.closed:
                return
            if loop.time() >= next_beat:  # also under a steady flow of events
                next_beat = loop.time() + HEARTBEAT_S
                # the stream ends with the session (logout, revocation, expiry, disabled user), when one
                # of its tenants was taken away (it reconnects with the others), and while the database
                # cannot say (the client reconnects and is told why, or served)
                try:
                    alive = user.session_id is None or await asyncio.to_thread(
                        session_alive,
                        ctx.engine,
                        ctx.auth,
                        user.session_id,
                        now=ctx.clock.now(),
                        tenants=user.tenants,
                    )
                except SQLAlchemyError:
                    alive = False
                if not alive:
                    return
                beat = orjson.dumps({"at": ctx.clock.now().isoformat()}).decode()
                yield ServerSentEvent(raw_data=beat, event="heartbeat")
                continue
            sub.ready.clear()
            try:
                await asyncio.wait_for(sub.ready.wait(), max(0.0, next_beat - loop.time()))
            except TimeoutError:
                pass
    finally:
        hub.unsubscribe(sub)
