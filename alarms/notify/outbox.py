"""The outbox sender: claim due messages, send them, record the outcome; retry, fall back, never double.

- A message is stored (dispatcher) before anything is sent, so a crash loses nothing.
- `claim` takes due rows with a lease (`claimed_until`), in one transaction (FOR UPDATE SKIP LOCKED on
  PostgreSQL; SQLite serialises writers): two replicas never send the same row while the lease holds. A
  sender that dies after its claim leaves the row to be taken again once the lease runs out.
- Delivery is at least once: a row sent but not recorded (crash in between) is sent again, with the same
  dedupe key, so the receiver sees the same SMTP Message-ID / Idempotency-Key and can drop the repeat.
- A retryable failure waits `base_s × 2^(attempts-1)` (at most `max_s`); after `attempts_before_fallback`
  (or at once for a permanent failure) the person's next contact gets the message as a new row.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, or_, select, update

from pumpwatch.alarms.notify.channels import Notifier, NotifyError, OutgoingMessage, redact
from pumpwatch.alarms.notify.dispatcher import NotifyContext, recipient_label
from pumpwatch.core.backoff import exponential
from pumpwatch.core.clock import Clock
from pumpwatch.core.db.schema import alarm_event, notification, notification_alarm

log = logging.getLogger(__name__)


def claim(ctx: NotifyContext, worker: str, now: datetime, limit: int = 20) -> list[dict[str, Any]]:
    lease = timedelta(seconds=ctx.oncall.notifier.retry.lease_s)
    with ctx.engine.begin() as conn:
        q = (
            select(notification)
            .where(
                notification.c.state == "pending",
                notification.c.next_attempt_at <= now,
                or_(notification.c.claimed_until.is_(None), notification.c.claimed_until <= now),
            )
            .order_by(notification.c.next_attempt_at, notification.c.id)
            .limit(limit)
        )
        if conn.dialect.name == "postgresql":
            q = q.with_for_update(skip_locked=True)
        rows = [dict(r._mapping) for r in conn.execute(q)]
        if rows:
            conn.execute(
                update(notification)
                .where(notification.c.id.in_([r["id"] for r in rows]))
                .values(claimed_until=now + lease, claimed_by=worker, attempts=notification.c.attempts + 1)
            )
        for r in rows:
            r["attempts"] += 1
            r["claimed_by"] = worker
        return rows


def _alarm_ids(ctx: NotifyContext, nid: int) -> list[int]:
    with ctx.engine.connect() as conn:
        return sorted(
            conn.execute(
                select(notification_alarm.c.alarm_id).where(notification_alarm.c.notification_id == nid)
            ).scalars()
        )


def record_sent(ctx: NotifyContext, row: dict[str, Any], now: datetime) -> bool:
    """Mark sent (if the lease is still ours) and journal it on each alarm the message covers."""
    people = ctx.oncall.people
    who = people[row["person"]].name if row["person"] in people else row["person"]
    with ctx.engine.begin() as conn:
        done = conn.execute(
            update(notification)
            .where(
                notification.c.id == row["id"],
                notification.c.claimed_by == row["claimed_by"],
                notification.c.state == "pending",
            )
            .values(state="sent", sent_at=now, claimed_until=None, last_error=None)
        ).rowcount
        if done:
            ids = list(
                conn.execute(
                    select(notification_alarm.c.alarm_id).where(
                        notification_alarm.c.notification_id == row["id"]
                    )
                ).scalars()
            )
            detail = f"notified {who} by {row['channel']} (message {row['id']})"
            if ids:
                conn.execute(
                    insert(alarm_event),
                    [{"alarm_id": i, "at": now, "kind": "notified", "detail": detail} for i in ids],
                )
        return bool(done)


def record_failure(ctx: NotifyContext, row: dict[str, Any], err: NotifyError, now: datetime) -> None:
    retry = ctx.oncall.notifier.retry
    p = ctx.oncall.people.get(row["person"])
    with ctx.engine.begin() as conn:
        mine = and_mine(row)
        if err.retryable and row["attempts"] < row["max_attempts"]:
            conn.execute(
                update(notification)
                .where(*mine)
                .values(
                    last_error=str(err),
                    claimed_until=None,
                    next_attempt_at=now
                    + timedelta(seconds=exponential(row["attempts"], retry.base_s, retry.max_s)),
                )
            )
            return
        if not conn.execute(
            update(notification).where(*mine).values(state="failed", last_error=str(err), claimed_until=None)
        ).rowcount:
            return
        nxt = row["contact_index"] + 1
        if p is None or nxt >= len(p.contacts) or row["kind"] == "test":
            log.error(
                "message %s to %s could not be delivered on any contact: %s", row["id"], row["person"], err
            )
            return
        c = p.contacts[nxt]
        origin = row["origin_id"] or row["id"]
        base = row["dedupe_key"].split("#", 1)[0]
        nid = conn.execute(
            insert(notification)
            .values(
                dedupe_key=f"{base}#{nxt}",
                tenant_id=row["tenant_id"],
                person=row["person"],
                kind=row["kind"],
                channel=c.channel,
                recipient=recipient_label(ctx, c.channel, c.to.get_secret_value()),
                contact_index=nxt,
                origin_id=origin,
                subject=row["subject"],
                body=row["body"],
                short=row["short"],
                state="pending",
                attempts=0,
                max_attempts=retry.attempts_before_fallback
                if nxt + 1 < len(p.contacts)
                else retry.max_attempts,
                next_attempt_at=now,
                created_at=now,
            )
            .returning(notification.c.id)
        ).scalar_one()
        links = conn.execute(
            select(notification_alarm.c.alarm_id).where(notification_alarm.c.notification_id == row["id"])
        ).scalars()
        rows = [{"notification_id": nid, "alarm_id": i} for i in links]
        if rows:
            conn.execute(insert(notification_alarm), rows)
        log.warning(
            "message %s to %s failed on %s (%s); falling back to %s",
            *(row["id"], row["person"], row["channel"], err, c.channel),
        )


def and_mine(row: dict[str, Any]) -> list[Any]:
    return [
        notification.c.id == row["id"],
        notification.c.claimed_by == row["claimed_by"],
        notification.c.state == "pending",
    ]


def outgoing(ctx: NotifyContext, row: dict[str, Any]) -> OutgoingMessage:
    p = ctx.oncall.people.get(row["person"])
    if p is None or row["contact_index"] >= len(p.contacts):
        raise NotifyError(f"{row['person']} has no contact {row['contact_index']} any more", retryable=False)
    c = p.contacts[row["contact_index"]]
    ack = None
    for line in row["body"].splitlines():
        if line.startswith("Acknowledge ") and "/api/v1/notify/ack/" in line:
            ack = line.rsplit(" ", 1)[-1]
    return OutgoingMessage(
        dedupe_key=row["dedupe_key"].split("#", 1)[0],  # the same for a fallback: it is one message
        to=c.to.get_secret_value(),
        subject=row["subject"],
        body=row["body"],
        short=row["short"],
        person=row["person"],
        person_name=p.name,
        tenant=row["tenant_id"],
        kind=row["kind"],
        created_at=row["created_at"],
        ack_url=ack,
        alarm_ids=tuple(_alarm_ids(ctx, row["id"])),
    )


class OutboxSender:
    """Sends what is due. Stateless apart from its worker id: any number may run against one database."""

    def __init__(
        self,
        ctx: NotifyContext,
        notifiers: dict[str, Notifier],
        clock: Clock,
        *,
        worker: str | None = None,
        batch: int = 20,
        after_claim: Callable[[list[dict[str, Any]]], Awaitable[None]] | None = None,
    ) -> None:
        self.ctx, self.notifiers, self.clock = ctx, notifiers, clock
        self.worker = worker or f"sender-{uuid.uuid4().hex[:8]}"
        self.batch = batch
        self.after_claim = after_claim  # tests: stop here to play a crash between claim and send
        self.sent = 0
        self.failed = 0

    async def run_once(self) -> int:
        rows = await asyncio.to_thread(claim, self.ctx, self.worker, self.clock.now(), self.batch)
        if not rows:
            return 0
        if self.after_claim is not None:
            await self.after_claim(rows)
        await asyncio.gather(*(self._send(r) for r in rows))
        return len(rows)

    async def _send(self, row: dict[str, Any]) -> None:
        notifier = self.notifiers.get(row["channel"])
        secrets: list[str] = []
        try:
            msg = await asyncio.to_thread(outgoing, self.ctx, row)
            if notifier is None:
                raise NotifyError(f"no channel {row['channel']!r} is configured", retryable=False)
            secrets = notifier.secrets(msg)
            await notifier.notify(msg)
        except NotifyError as exc:
            err = NotifyError(redact(str(exc), secrets), retryable=exc.retryable)
            self.failed += 1
            log.warning(
                "message %s (%s, attempt %d) failed: %s", row["id"], row["channel"], row["attempts"], err
            )
            await asyncio.to_thread(record_failure, self.ctx, row, err, self.clock.now())
            return
        except Exception as exc:  # a bug in a channel must not stop the others; never print its text
            err = NotifyError(f"{row['channel']}: unexpected {type(exc).__name__}", retryable=True)
            self.failed += 1
            log.error(
                "message %s (%s) failed unexpectedly: %s", row["id"], row["channel"], type(exc).__name__
            )
            await asyncio.to_thread(record_failure, self.ctx, row, err, self.clock.now())
            return
        if await asyncio.to_thread(record_sent, self.ctx, row, self.clock.now()):
            self.sent += 1
