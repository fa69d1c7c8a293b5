"""On-call notification: deliveries (the outbox), one alarm's notification history and escalation,
escalations, who is on call now, a test message; and the one-click ack link from a phone.

The ack link is public (its signed, expiring token is its authentication). GET only shows what it would
acknowledge (mail scanners and link previews fetch links), POST acknowledges.
"""

from __future__ import annotations

import asyncio
import html
import math
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from pumpwatch.alarms import store
from pumpwatch.alarms.notify import queries
from pumpwatch.alarms.notify.dispatcher import pending_counts
from pumpwatch.alarms.notify.service import (
    ACKABLE,
    LinkSpent,
    NotifierService,
    ack_by_token,
    describe_token,
    spent_reason,
)
from pumpwatch.alarms.notify.tokens import TokenError
from pumpwatch.api.auth import access
from pumpwatch.api.auth.guard import client_ip
from pumpwatch.api.deps import Ctx, CurrentUser
from pumpwatch.api.inputs import RequestModel
from pumpwatch.api.schemas import Detail, IsoTime, RowId

router = APIRouter(prefix="/notify", tags=["notify"])

DeliveryState = Literal["pending", "sent", "failed", "cancelled"]
EscalationState = Literal["active", "muted", "acked", "resolved", "exhausted"]


class DeliveryPublic(BaseModel):
    id: int
    dedupe_key: str
    tenant: str
    person: str
    kind: str
    channel: str
    recipient: str
    contact_index: int
    fallback_of: int | None
    subject: str
    state: DeliveryState
    attempts: int
    next_attempt_at: IsoTime
    last_error: str | None
    created_at: IsoTime
    sent_at: IsoTime | None
    alarm_ids: list[int]


class DeliveriesPublic(BaseModel):
    deliveries: list[DeliveryPublic]


class QueuedPublic(BaseModel):
    person: str
    kind: str
    step: int | None
    created_at: IsoTime


class EscalationPublic(BaseModel):
    id: int
    alarm_id: int
    tenant: str
    station: str
    alarm: str
    priority: str
    route: str
    policy: str
    state: EscalationState
    step: int
    loop: int
    next_at: IsoTime | None
    started_at: IsoTime
    updated_at: IsoTime
    acked_by: str | None
    acked_at: IsoTime | None
    queued: list[QueuedPublic]


class EscalationsPublic(BaseModel):
    escalations: list[EscalationPublic]


class AlarmNotificationsPublic(BaseModel):
    alarm_id: int
    escalation: EscalationPublic | None
    deliveries: list[DeliveryPublic]


class OnCallRotation(BaseModel):
    rotation: str
    person: str
    name: str
    next_at: IsoTime | None = None  # the next hand-over to someone else (None: nobody within 4 weeks)
    next_person: str | None = None
    next_name: str | None = None


class OnCallTenant(BaseModel):
    tenant: str
    rotations: list[OnCallRotation]


class OnCallPublic(BaseModel):
    at: IsoTime
    tenants: list[OnCallTenant]


class StatusPublic(BaseModel):
    events: int = Field(description="journal entries not yet acted on")
    queued_items: int = Field(description="things to tell people, waiting for their group window")
    outbox: int = Field(description="messages not yet sent")
    escalations: int = Field(description="active or muted escalations")
    running: bool = Field(description="this process runs the notifier loops and they are passing")


class TestRequest(RequestModel):
    person: str = Field(description="person id from oncall.yaml")
    channel: str | None = Field(default=None, description="only this channel; default every contact")


class TestQueued(BaseModel):
    queued: list[int]


def _svc(ctx: Any) -> NotifierService:
    svc = getattr(ctx, "notify", None)
    if svc is None:
        raise HTTPException(404, "on-call notification is not configured (no `oncall:` in fleet.yaml)")
    return svc


def _tenants(user: Any, tenant: str | None) -> set[str]:
    """The requested tenant if the user may see it (else 404), or all of the user's."""
    return set(access.tenants_for(user, tenant))


HIDDEN = "(hidden: operators and admins of the tenant only)"


def _delivery(r: dict[str, Any], user: Any) -> DeliveryPublic:
    """A delivery as `user` may see it: the on-call person's phone number or address (and a provider's
    error, which may quote it) only for operators and above of the delivery's tenant."""
    d = DeliveryPublic(
        **{k: r[k] for k in DeliveryPublic.model_fields if k in r and k not in ("tenant", "fallback_of")},
        tenant=r["tenant_id"],
        fallback_of=r["origin_id"],
    )
    if not user.can("operator", d.tenant):
        d = d.model_copy(update={"recipient": HIDDEN, "last_error": HIDDEN if d.last_error else None})
    return d


def _escalation(r: dict[str, Any]) -> EscalationPublic:
    return EscalationPublic(
        **{
            k: r[k]
            for k in EscalationPublic.model_fields
            if k in r and k not in ("tenant", "station", "alarm")
        },
        tenant=r["tenant_id"],
        station=r["station_id"],
        alarm=r["name"],
    )


@router.get("/deliveries", response_model=DeliveriesPublic)
async def list_deliveries(
    ctx: Ctx,
    user: CurrentUser,
    alarm: RowId | None = None,
    person: str | None = None,
    state: DeliveryState | None = None,
    kind: Literal["alarm", "test"] | None = None,
    tenant: str | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> DeliveriesPublic:
    rows = await asyncio.to_thread(
        queries.deliveries, ctx.engine, tenants=_tenants(user, tenant), alarm_id=alarm, person=person,
        state=state, kind=kind, limit=limit,
    )  # fmt: skip
    return DeliveriesPublic(deliveries=[_delivery(r, user) for r in rows])


@router.get("/escalations", response_model=EscalationsPublic)
async def list_escalations(
    ctx: Ctx,
    user: CurrentUser,
    state: EscalationState | None = None,
    tenant: str | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> EscalationsPublic:
    rows = await asyncio.to_thread(
        queries.escalations, ctx.engine, tenants=_tenants(user, tenant), state=state, limit=limit
    )
    return EscalationsPublic(escalations=[_escalation(r) for r in rows])


@router.get("/alarms/{alarm_id}", response_model=AlarmNotificationsPublic)
async def alarm_notifications(ctx: Ctx, user: CurrentUser, alarm_id: RowId) -> AlarmNotificationsPublic:
    """Every message about one alarm (oldest first, with fallbacks and failures) and its escalation."""
    a = await asyncio.to_thread(store.get_alarm, ctx.engine, alarm_id)
    if a is None or a["tenant_id"] not in user.tenants:
        raise access.not_found(f"alarm {alarm_id}")
    tenants = set(user.tenants)
    esc = await asyncio.to_thread(queries.escalations, ctx.engine, tenants=tenants, alarm_id=alarm_id)
    rows = await asyncio.to_thread(queries.deliveries, ctx.engine, tenants=tenants, alarm_id=alarm_id)
    return AlarmNotificationsPublic(
        alarm_id=alarm_id,
        escalation=_escalation(esc[0]) if esc else None,
        deliveries=[_delivery(r, user) for r in reversed(rows)],
    )


@router.get("/oncall", response_model=OnCallPublic)
async def on_call_now(ctx: Ctx, user: CurrentUser, tenant: str | None = None) -> OnCallPublic:
    tenants = _tenants(user, tenant)
    svc = _svc(ctx)
    now = ctx.clock.now()
    rows = queries.on_call(svc.ctx.oncall, now, tenants)
    return OnCallPublic(at=now, tenants=[OnCallTenant(**r) for r in rows])


@router.get("/status", response_model=StatusPublic)
async def status(ctx: Ctx, user: CurrentUser) -> StatusPublic:
    """Backlog of the notifier: a growing one means it is down or cannot deliver. The counts cover every
    tenant, so only a user who sees every tenant (the centre's staff) may read them."""
    if not set(ctx.fleet.tenants) <= set(user.tenants):
        raise HTTPException(403, "the notifier's backlog covers every tenant: needs a grant for each")
    svc = _svc(ctx)
    counts = await asyncio.to_thread(pending_counts, ctx.engine)
    return StatusPublic(**counts, running=svc.healthy())


TEST_WINDOW_S = 600.0
TEST_PER_PERSON = 3  # test requests per person within the window: enough to try each channel


@router.post("/test", response_model=TestQueued, status_code=202, responses={429: {"model": Detail}})
async def test_message(ctx: Ctx, user: CurrentUser, request: Request, body: TestRequest):
    """Queue a test message to a person (every contact, or one channel); see it in /deliveries. At most
    3 per person in 10 minutes (429 with Retry-After): a test must not become a way to page someone at
    night over and over. Audited."""
    svc = _svc(ctx)
    person = svc.ctx.oncall.people.get(body.person)
    if person is None or person.tenant not in user.tenants:
        raise access.not_found(f"person {body.person!r}")
    access.require(user, "operator", person.tenant)
    now = ctx.clock.now()
    recent = await asyncio.to_thread(
        queries.test_requests_since, ctx.engine, body.person, now - timedelta(seconds=TEST_WINDOW_S)
    )
    if len(recent) >= TEST_PER_PERSON:
        wait = max(1, math.ceil(TEST_WINDOW_S - (now - recent[-TEST_PER_PERSON]).total_seconds()))
        return JSONResponse(
            {"detail": f"{TEST_PER_PERSON} test messages to {body.person} within 10 minutes: wait {wait} s"},
            status_code=429,
            headers={"Retry-After": str(wait)},
        )
    audit = access.audit_for(
        request,
        user,
        "notify.test",
        tenant_id=person.tenant,
        target=f"person:{body.person}",
        detail=body.channel,
    )
    await asyncio.to_thread(audit.record, ctx.engine)
    try:
        ids = await asyncio.to_thread(svc.queue_test, body.person, body.channel)
    except KeyError:
        raise HTTPException(404, f"no person {body.person!r}") from None
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    return TestQueued(queued=ids)


# --- the one-click ack link -----------------------------------------------------------------------------

_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><meta name="robots" content="noindex">
<title>{title}</title><link rel="stylesheet" href="/static/ack.css"></head>
<body><h1>{title}</h1>{content}</body></html>"""


def _page(title: str, content: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(title=html.escape(title), content=content), status_code=status)


def _alarm_li(a: dict[str, Any], tz_now: datetime | None = None) -> str:
    state = a["state"].replace("_", " ")
    by = f", by {html.escape(a['acked_by'])}" if a.get("acked_by") else ""
    return (
        f"<li>{html.escape(a['station_id'])}: {html.escape(a['name'].replace('_', ' '))} "
        f"<small>({html.escape(state)}{by})</small></li>"
    )


# The link is opened in a phone's browser: every answer is a page, errors included.
ACK_RESPONSES: dict[int | str, dict[str, Any]] = {
    403: {
        "content": {"text/html": {}},
        "description": "the link is not valid (forged, expired, not its message's)",
    },
    410: {
        "content": {"text/html": {}},
        "description": "the link was used, or everything in it is acknowledged",
    },
    404: {"content": {"text/html": {}}, "description": "on-call notification is not configured"},
}


def _svc_or_page(ctx: Any) -> NotifierService | HTMLResponse:
    svc = getattr(ctx, "notify", None)
    if svc is None:
        return _page("Link not valid", "<p class=err>on-call notification is not configured here</p>", 404)
    return svc


@router.get("/ack/{token}", response_class=HTMLResponse, responses=ACK_RESPONSES)
async def ack_page(ctx: Ctx, token: str) -> HTMLResponse:
    """What the link would acknowledge, and a button. Changes nothing."""
    svc = _svc_or_page(ctx)
    if isinstance(svc, HTMLResponse):
        return svc
    try:
        info = await asyncio.to_thread(describe_token, svc.ctx, token, ctx.clock.now())
    except TokenError as exc:
        return _page("Link not valid", f"<p class=err>{html.escape(str(exc))}</p>", 403)
    items = "".join(_alarm_li(a) for a in info["alarms"])
    spent = spent_reason(info)
    if spent is not None:
        return _page("Nothing to acknowledge", f"<p>{html.escape(spent)}.</p><ul>{items}</ul>", 410)
    todo = [a for a in info["alarms"] if a["state"] in ACKABLE]
    return _page(
        f"Acknowledge {len(todo)} alarm(s)?",
        f"<p>{html.escape(info['subject'])}</p><ul>{items}</ul>"
        f"<form method=post><button type=submit>Acknowledge as {html.escape(info['person'])}</button></form>",
    )


@router.post("/ack/{token}", response_class=HTMLResponse, responses=ACK_RESPONSES)
async def ack_post(ctx: Ctx, request: Request, token: str) -> HTMLResponse:
    """Acknowledge every still-unacknowledged alarm of the message, journaled with the person's name; the
    escalation stops and the others told about it learn who took it. Once only: a second use of the link,
    or a use after everything was acknowledged, is refused (410)."""
    svc = _svc_or_page(ctx)
    if isinstance(svc, HTMLResponse):
        return svc
    try:
        res = await asyncio.to_thread(ack_by_token, svc.ctx, token, ctx.clock.now(), client_ip(request))
    except LinkSpent as exc:
        return _page("Nothing to acknowledge", f"<p>{html.escape(str(exc))}.</p>", 410)
    except TokenError as exc:
        return _page("Link not valid", f"<p class=err>{html.escape(str(exc))}</p>", 403)
    done = "".join(_alarm_li(a) for a in res["acked"])
    already = "".join(_alarm_li(a) for a in res["already"])
    content = f"<p>Acknowledged by {html.escape(res['person'])}:</p><ul>{done}</ul>" if done else ""
    if already:
        content += f"<p>Already acknowledged or closed:</p><ul>{already}</ul>"
    title = f"Acknowledged {len(res['acked'])} alarm(s)" if res["acked"] else "Nothing left to acknowledge"
    return _page(title, content)
