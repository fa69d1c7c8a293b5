"""The dispatcher: journal events → escalations → per-person queue → one grouped message per window.

Three passes, each a short transaction of its own, each safe to run in several replicas at once (rows are
locked with FOR UPDATE SKIP LOCKED on PostgreSQL; SQLite serialises writers):

1. `process_events`: act on every `notify_pending` journal entry (written with the alarm transition).
   raise → start an escalation on the alarm's route (muted while shelved, suppressed or out of service);
   ack → stop it, drop what was not yet sent, tell the others who took it; clear/reset → stop it and send
   the return to normal to everyone told; shelve/suppress/out of service → mute; their end → resume.
2. `escalate`: fire due steps (the current on-call of a rotation, or a person), wait, next step, repeat,
   then the final fallback supervisor.
3. `flush`: a person's queued items become one message when the person's group window allows: the first
   of a group after `group_wait_s`, then at most one per `group_interval_s`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from pumpwatch.alarms.hidden import is_hidden
from pumpwatch.alarms.notify import tokens
from pumpwatch.alarms.notify.config import Oncall
from pumpwatch.alarms.notify.messages import render
from pumpwatch.alarms.system_monitor import SYSTEM_KIND, is_system
from pumpwatch.core.config import Fleet
from pumpwatch.core.db.schema import (
    alarm,
    alarm_event,
    drill,
    escalation,
    notification,
    notification_alarm,
    notify_item,
    notify_pending,
)

log = logging.getLogger(__name__)

TtoLookup = Callable[[Collection[str]], dict[str, tuple[float, datetime]]]
MUTE_KINDS = {"shelve", "suppress", "out_of_service"}
UNMUTE_KINDS = {"unshelve", "unsuppress", "in_service"}


@dataclass
class NotifyContext:
    engine: Engine
    oncall: Oncall
    fleet: Fleet
    secret_key: str
    tto: TtoLookup | None = None


def _pg(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def _lock(stmt: Any, conn: Connection, skip: bool = True) -> Any:
    return stmt.with_for_update(skip_locked=skip) if _pg(conn) else stmt


# --- 1. journal events ----------------------------------------------------------------------------------


def process_events(ctx: NotifyContext, now: datetime, limit: int = 500) -> int:
    """Act on pending journal entries, oldest first. Returns how many were handled."""
    with ctx.engine.begin() as conn:
        q = (
            select(notify_pending.c.event_id, alarm_event)
            .join(alarm_event, alarm_event.c.id == notify_pending.c.event_id)
            .order_by(notify_pending.c.event_id)
            .limit(limit)
        )
        if _pg(conn):
            q = q.with_for_update(of=notify_pending, skip_locked=True)
        events = [dict(r._mapping) for r in conn.execute(q)]
        failed_alarms: set[int] = set()
        done = 0
        for ev in events:
            if ev["alarm_id"] in failed_alarms:  # keep the order of one alarm's events
                continue
            try:
                with conn.begin_nested():
                    a = conn.execute(select(alarm).where(alarm.c.id == ev["alarm_id"])).first()
                    if a is not None:
                        _handle(ctx, conn, ev, dict(a._mapping), now)
                    conn.execute(delete(notify_pending).where(notify_pending.c.event_id == ev["event_id"]))
                done += 1
            except Exception:
                log.exception("cannot act on journal entry %s (%s); will retry", ev["event_id"], ev["kind"])
                failed_alarms.add(ev["alarm_id"])
        return done


def _escalation(conn: Connection, alarm_id: int) -> dict[str, Any] | None:
    r = conn.execute(select(escalation).where(escalation.c.alarm_id == alarm_id)).first()
    return dict(r._mapping) if r else None


def _set_esc(conn: Connection, esc_id: int, now: datetime, **values: Any) -> None:
    conn.execute(update(escalation).where(escalation.c.id == esc_id).values(updated_at=now, **values))


def _drop_unsent(conn: Connection, alarm_id: int) -> None:
    """Queued alerts for this alarm not yet in a message, and outbox rows about it alone, are void."""
    conn.execute(
        delete(notify_item).where(
            notify_item.c.alarm_id == alarm_id,
            notify_item.c.notification_id.is_(None),
            notify_item.c.kind.in_(["alert", "final"]),
        )
    )
    only_this = (
        select(notification_alarm.c.notification_id)
        .group_by(notification_alarm.c.notification_id)
        .having(func.count() == 1)
        .having(func.max(notification_alarm.c.alarm_id) == alarm_id)
    )
    mine = select(notification_alarm.c.notification_id).where(notification_alarm.c.alarm_id == alarm_id)
    conn.execute(
        update(notification)
        .where(
            notification.c.state == "pending",
            notification.c.id.in_(mine),
            notification.c.id.in_(only_this),
        )
        .values(state="cancelled", last_error="acknowledged or muted before it was sent")
    )


def _told(conn: Connection, alarm_id: int) -> list[str]:
    """People already sent an alert about this alarm (in a message that exists)."""
    rows = conn.execute(
        select(notify_item.c.person)
        .where(
            notify_item.c.alarm_id == alarm_id,
            notify_item.c.kind.in_(["alert", "final"]),
            notify_item.c.notification_id.is_not(None),
        )
        .distinct()
    )
    return sorted(r.person for r in rows)


def _kind(ctx: NotifyContext, station_id: str) -> str:
    """The station kind a route matches: the station's, or `system` for the centre's system alarms."""
    st = ctx.fleet.stations.get(station_id)
    if st is not None:
        return st.kind
    return SYSTEM_KIND if is_system(station_id) else ""


def _queue(
    conn: Connection,
    now: datetime,
    person: str,
    a: dict[str, Any],
    kind: str,
    *,
    esc_id: int | None = None,
    step: int | None = None,
    detail: str | None = None,
) -> None:
    if kind in ("alert", "final"):  # one queued alert per person and alarm is enough
        have = conn.execute(
            select(notify_item.c.id).where(
                notify_item.c.person == person,
                notify_item.c.alarm_id == a["id"],
                notify_item.c.notification_id.is_(None),
                notify_item.c.kind.in_(["alert", "final"]),
            )
        ).first()
        if have is not None:
            return
    conn.execute(
        insert(notify_item).values(
            person=person,
            tenant_id=a["tenant_id"],
            alarm_id=a["id"],
            escalation_id=esc_id,
            kind=kind,
            step=step,
            priority=a["priority"],
            detail=detail,
            created_at=now,
        )
    )


def _drill_contacts_only(ctx: NotifyContext, conn: Connection, a: dict[str, Any], now: datetime) -> bool:
    """An alarm of a drill that tells its own contacts only: queue it to each (no escalation, no duty
    rotation). False when the alarm is no drill's or the drill says to notify as usual."""
    if a.get("drill_id") is None:
        return False
    d = conn.execute(select(drill.c.notify, drill.c.contacts).where(drill.c.id == a["drill_id"])).first()
    if d is None or d.notify != "drill_contacts":
        return False
    if is_hidden(a, now):
        return True
    for person in [p for p in d.contacts.split(",") if p]:
        if person in ctx.oncall.people:
            _queue(conn, now, person, a, "alert", detail="drill")
        else:
            log.warning("drill %s: contact %r is not on the on-call roster", a["drill_id"], person)
    return True


def _handle(
    ctx: NotifyContext, conn: Connection, ev: dict[str, Any], a: dict[str, Any], now: datetime
) -> None:
    kind = ev["kind"]
    esc = _escalation(conn, a["id"])
    tz = ctx.oncall.zones.get(a["tenant_id"])
    if kind == "raise":
        if a["state"] != "unacked_active" or not a["active"]:
            return  # acknowledged or cleared since: nothing to start
        if _drill_contacts_only(ctx, conn, a, now):
            return
        route = ctx.oncall.route(
            a["tenant_id"], _kind(ctx, a["station_id"]), a["station_id"], a["priority"], a["name"]
        )
        if route.policy is None:
            return
        state = "muted" if is_hidden(a, now) else "active"
        if esc is None:
            conn.execute(
                insert(escalation).values(
                    alarm_id=a["id"],
                    tenant_id=a["tenant_id"],
                    route=route.name,
                    policy=route.policy.id,
                    state=state,
                    step=0,
                    loop=0,
                    next_at=now,
                    started_at=now,
                    updated_at=now,
                )
            )
        elif esc["state"] in ("acked", "resolved", "exhausted"):  # active again: start over
            _set_esc(
                conn, esc["id"], now, state=state, step=0, loop=0, next_at=now, policy=route.policy.id,
                route=route.name, acked_by=None, acked_at=None,
            )  # fmt: skip
    elif kind == "ack":
        if esc is None:
            return
        _set_esc(conn, esc["id"], now, state="acked", acked_by=ev["actor"], acked_at=ev["at"], next_at=None)
        _drop_unsent(conn, a["id"])
        people = ctx.oncall.people
        # a console user whose username is a person's id is that person (named as on the roster)
        actor = people.get(ev["actor"] or "")
        who = actor.name if actor is not None else ev["actor"] or "someone"
        for person in _told(conn, a["id"]):
            if person == ev["actor"] or people.get(person) and people[person].name == ev["actor"]:
                continue
            at = ev["at"].astimezone(tz).strftime("%H:%M") if tz else ev["at"].isoformat()
            _queue(conn, now, person, a, "ack", esc_id=esc["id"], detail=f"by {who} at {at}")
    elif kind in ("clear", "reset"):
        if esc is None or ev["state"] not in ("normal", "unacked_rtn"):
            return  # a latching clear changes nothing for the people
        if esc["state"] in ("active", "muted", "exhausted"):
            _set_esc(conn, esc["id"], now, state="resolved", next_at=None)
        at = ev["at"].astimezone(tz).strftime("%H:%M") if tz else ev["at"].isoformat()
        for person in _told(conn, a["id"]):
            _queue(conn, now, person, a, "rtn", esc_id=esc["id"], detail=f"at {at}")
    elif kind in MUTE_KINDS:
        if esc is not None and esc["state"] == "active":
            _set_esc(conn, esc["id"], now, state="muted")
            _drop_unsent(conn, a["id"])
    elif kind in UNMUTE_KINDS and (
        esc is not None
        and esc["state"] == "muted"
        and a["state"] == "unacked_active"
        and not is_hidden(a, now)
    ):
        _set_esc(conn, esc["id"], now, state="active", next_at=now)


# --- 2. escalation steps --------------------------------------------------------------------------------


def escalate(ctx: NotifyContext, now: datetime, limit: int = 500) -> int:
    """Fire every due step. Returns how many escalations moved."""
    with ctx.engine.begin() as conn:
        q = (
            select(escalation)
            .where(escalation.c.state == "active", escalation.c.next_at <= now)
            .order_by(escalation.c.next_at, escalation.c.id)
            .limit(limit)
        )
        rows = [dict(r._mapping) for r in conn.execute(_lock(q, conn))]
        for esc in rows:
            a = dict(conn.execute(select(alarm).where(alarm.c.id == esc["alarm_id"])).one()._mapping)
            _fire(ctx, conn, esc, a, now)
        return len(rows)


def _fire(
    ctx: NotifyContext, conn: Connection, esc: dict[str, Any], a: dict[str, Any], now: datetime
) -> None:
    if a["state"] not in ("unacked_active",) or is_hidden(a, now):
        state = "muted" if a["state"] == "unacked_active" else "resolved"
        _set_esc(conn, esc["id"], now, state=state, next_at=None)  # a journal entry we act on is coming
        return
    policy = ctx.oncall.policies.get(esc["policy"])
    if policy is None:  # the configuration changed under a running escalation: take the route's now
        route = ctx.oncall.route(
            a["tenant_id"], _kind(ctx, a["station_id"]), a["station_id"], a["priority"], a["name"]
        )
        if route.policy is None:
            _set_esc(conn, esc["id"], now, state="resolved", next_at=None)
            return
        policy = route.policy
    step, loop = esc["step"], esc["loop"]
    if step >= len(policy.steps) and loop < policy.repeat:
        step, loop = 0, loop + 1
    if step >= len(policy.steps):
        _queue(conn, now, policy.final, a, "final", esc_id=esc["id"], step=step + 1)
        _set_esc(
            conn, esc["id"], now, state="exhausted", step=step, loop=loop, next_at=None, policy=policy.id
        )
        return
    s = policy.steps[step]
    for t in s.notify:
        person = ctx.oncall.targets(t, now)
        _queue(conn, now, person, a, "alert", esc_id=esc["id"], step=step + 1)
    _set_esc(
        conn, esc["id"], now, step=step + 1, loop=loop, next_at=now + timedelta(minutes=s.wait_min),
        policy=policy.id,
    )  # fmt: skip


# --- 3. grouping into messages --------------------------------------------------------------------------


def _last_message_at(conn: Connection, person: str) -> datetime | None:
    return conn.execute(
        select(func.max(notification.c.created_at)).where(
            notification.c.person == person,
            notification.c.kind == "alarm",
            notification.c.origin_id.is_(None),
        )
    ).scalar()


def flush(ctx: NotifyContext, now: datetime) -> int:
    """Turn each person's queued items into one message when the person's window allows. Returns the number
    of messages made."""
    cfg = ctx.oncall.notifier
    with ctx.engine.connect() as conn:
        waiting = conn.execute(
            select(notify_item.c.person, func.min(notify_item.c.created_at))
            .where(notify_item.c.notification_id.is_(None))
            .group_by(notify_item.c.person)
        ).all()
        due = []
        for person, first_at in waiting:
            last = _last_message_at(conn, person)
            at = first_at + timedelta(seconds=cfg.group_wait_s)
            if last is not None:
                at = max(at, last + timedelta(seconds=cfg.group_interval_s))
            if now >= at:
                due.append(person)
    made = 0
    for person in due:
        try:
            made += _flush_person(ctx, person, now)
        except Exception:
            log.exception("cannot make the message for %s; will retry", person)
    return made


def _flush_person(ctx: NotifyContext, person: str, now: datetime) -> int:
    oc = ctx.oncall
    p = oc.people.get(person)
    tto: dict[str, tuple[float, datetime]] = {}
    if ctx.tto is not None:  # read before the write transaction: on SQLite a second connection would wait
        with ctx.engine.connect() as conn:
            stations = set(
                conn.execute(
                    select(alarm.c.station_id)
                    .join(notify_item, notify_item.c.alarm_id == alarm.c.id)
                    .where(notify_item.c.person == person, notify_item.c.notification_id.is_(None))
                    .distinct()
                ).scalars()
            )
        tto = ctx.tto(stations)
    with ctx.engine.begin() as conn:
        q = select(notify_item).where(notify_item.c.person == person, notify_item.c.notification_id.is_(None))
        items = [
            dict(r._mapping) for r in conn.execute(_lock(q.order_by(notify_item.c.id), conn, skip=False))
        ]
        if not items:
            return 0
        if p is None:  # removed from the configuration: keep the record, say why nothing went out
            log.error("person %r has queued notifications but is no longer configured", person)
            conn.execute(
                update(notify_item)
                .where(notify_item.c.id.in_([i["id"] for i in items]))
                .values(notification_id=-1)
            )
            return 0
        ids = sorted({i["alarm_id"] for i in items if i["alarm_id"] is not None})
        alarms = {r.id: dict(r._mapping) for r in conn.execute(select(alarm).where(alarm.c.id.in_(ids)))}
        tenant = p.tenant
        dedupe = f"msg:{person}:{items[0]['id']}"
        nid = create_message(
            conn, ctx, person=person, tenant=tenant, kind="alarm", dedupe_key=dedupe, alarm_ids=ids, now=now,
            render_fn=lambda link: render(
                items, alarms,
                station_names={sid: s.name for sid, s in ctx.fleet.stations.items()},
                tto=tto,
                tz=oc.zones[tenant], link=link, summary_stations=oc.notifier.summary_stations,
            ),
        )  # fmt: skip
        conn.execute(
            update(notify_item)
            .where(notify_item.c.id.in_([i["id"] for i in items]))
            .values(notification_id=nid)
        )
        return 1


def ack_link(
    ctx: NotifyContext, notification_id: int, person: str, now: datetime, tenant: str | None = None
) -> str:
    cfg = ctx.oncall.notifier
    expires = now + timedelta(hours=cfg.link_ttl_h)
    token = tokens.sign(ctx.secret_key, notification_id, person, expires, tenant=tenant)
    return f"{cfg.public_url.rstrip('/')}/api/v1/notify/ack/{token}"


def recipient_label(ctx: NotifyContext, channel: str, to: str) -> str:
    """What the outbox shows as the recipient: the address, except where the address is a secret."""
    kind = getattr(ctx.oncall.channels.get(channel), "type", "")
    return f"{kind}:***" if kind == "apprise" else to


def create_message(
    conn: Connection,
    ctx: NotifyContext,
    *,
    person: str,
    tenant: str,
    kind: str,
    dedupe_key: str,
    alarm_ids: list[int],
    now: datetime,
    render_fn: Callable[[str | None], Any],
    contact_index: int = 0,
    only_channel: bool = False,
) -> int:
    """Store one message in the outbox for the person's contact `contact_index`, with its ack link."""
    oc = ctx.oncall
    p = oc.people[person]
    c = p.contacts[contact_index]
    has_next = not only_channel and contact_index + 1 < len(p.contacts)
    retry = oc.notifier.retry
    nid: int = conn.execute(
        insert(notification)
        .values(
            dedupe_key=dedupe_key,
            tenant_id=tenant,
            person=person,
            kind=kind,
            channel=c.channel,
            recipient=recipient_label(ctx, c.channel, c.to.get_secret_value()),
            contact_index=contact_index,
            subject="",
            body="",
            short="",
            state="pending",
            attempts=0,
            max_attempts=retry.attempts_before_fallback if has_next else retry.max_attempts,
            next_attempt_at=now,
            created_at=now,
        )
        .returning(notification.c.id)
    ).scalar_one()
    link = ack_link(ctx, nid, person, now, tenant) if alarm_ids else None
    text = render_fn(link)
    conn.execute(
        update(notification)
        .where(notification.c.id == nid)
        .values(subject=text.subject, body=text.body, short=text.short)
    )
    if alarm_ids:
        conn.execute(insert(notification_alarm), [{"notification_id": nid, "alarm_id": i} for i in alarm_ids])
    return nid


def purge_pending(engine: Engine, before: datetime) -> int:
    """Drop pending journal entries older than `before` (only for a fleet with no on-call configured)."""
    with engine.begin() as conn:
        return conn.execute(delete(notify_pending).where(notify_pending.c.created_at < before)).rowcount


def pending_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            "events": conn.execute(select(func.count()).select_from(notify_pending)).scalar_one(),
            "queued_items": conn.execute(
                select(func.count()).select_from(notify_item).where(notify_item.c.notification_id.is_(None))
            ).scalar_one(),
            "outbox": conn.execute(
                select(func.count()).select_from(notification).where(notification.c.state == "pending")
            ).scalar_one(),
            "escalations": conn.execute(
                select(func.count())
                .select_from(escalation)
                .where(or_(escalation.c.state == "active", and_(escalation.c.state == "muted")))
            ).scalar_one(),
        }
