"""What the API shows: deliveries, one alarm's notification history and escalation, escalations, on call
now. Every list takes `tenants` (None: all; an empty set: nothing)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from pumpwatch.alarms.notify.config import Oncall
from pumpwatch.core.db.schema import alarm, escalation, notification, notification_alarm, notify_item

DELIVERY_COLUMNS = [
    c for c in notification.c if c.name not in ("body", "short", "claimed_by")
]  # the body carries the signed ack link: not for a list


def deliveries(
    engine: Engine,
    *,
    tenants: Collection[str] | None = None,
    alarm_id: int | None = None,
    person: str | None = None,
    state: str | None = None,
    kind: str | None = None,
    limit: int = 500,
) -> list[dict[str, Any]]:
    if tenants is not None and not tenants:
        return []
    q = select(*DELIVERY_COLUMNS)
    if tenants is not None:
        q = q.where(notification.c.tenant_id.in_(list(tenants)))
    if alarm_id is not None:
        q = q.where(
            notification.c.id.in_(
                select(notification_alarm.c.notification_id).where(notification_alarm.c.alarm_id == alarm_id)
            )
        )
    if person is not None:
        q = q.where(notification.c.person == person)
    if state is not None:
        q = q.where(notification.c.state == state)
    if kind is not None:
        q = q.where(notification.c.kind == kind)
    q = q.order_by(notification.c.created_at.desc(), notification.c.id.desc()).limit(limit)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(q)]
        ids = [r["id"] for r in rows]
        links: dict[int, list[int]] = {}
        for i in range(0, len(ids), 500):
            for nid, aid in conn.execute(
                select(notification_alarm.c.notification_id, notification_alarm.c.alarm_id).where(
                    notification_alarm.c.notification_id.in_(ids[i : i + 500])
                )
            ):
                links.setdefault(nid, []).append(aid)
    for r in rows:
        r["alarm_ids"] = sorted(links.get(r["id"], []))
    return rows


def escalations(
    engine: Engine,
    *,
    tenants: Collection[str] | None = None,
    state: str | None = None,
    alarm_id: int | None = None,
    limit: int = 500,
) -> list[dict[str, Any]]:
    if tenants is not None and not tenants:
        return []
    q = select(escalation, alarm.c.station_id, alarm.c.name, alarm.c.priority).join(
        alarm, alarm.c.id == escalation.c.alarm_id
    )
    if tenants is not None:
        q = q.where(escalation.c.tenant_id.in_(list(tenants)))
    if state is not None:
        q = q.where(escalation.c.state == state)
    if alarm_id is not None:
        q = q.where(escalation.c.alarm_id == alarm_id)
    q = q.order_by(escalation.c.started_at.desc(), escalation.c.id.desc()).limit(limit)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(q)]
        for r in rows:
            r["queued"] = [
                dict(x._mapping)
                for x in conn.execute(
                    select(
                        notify_item.c.person, notify_item.c.kind, notify_item.c.step, notify_item.c.created_at
                    )
                    .where(notify_item.c.alarm_id == r["alarm_id"], notify_item.c.notification_id.is_(None))
                    .order_by(notify_item.c.id)
                )
            ]
    return rows


def on_call(oncall: Oncall, now: datetime, tenants: Collection[str] | None = None) -> list[dict[str, Any]]:
    out = []
    for tid in sorted(oncall.routing):
        if tenants is not None and tid not in tenants:
            continue
        out.append({"tenant": tid, "rotations": oncall.roster(tid, now)})
    return out


def test_requests_since(engine: Engine, person: str, since: datetime) -> list[datetime]:
    """When each test request to `person` since `since` was made, oldest first (one request may have queued
    a message per contact: they share the last part of their dedupe key)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(notification.c.dedupe_key, notification.c.created_at).where(
                notification.c.person == person,
                notification.c.kind == "test",
                notification.c.created_at >= since,
            )
        ).all()
    first: dict[str, datetime] = {}
    for key, at in rows:
        req = key.rsplit(":", 1)[-1]
        first[req] = min(at, first.get(req, at))
    return sorted(first.values())
