"""NotifierService: the loops (dispatch, send, heartbeat), the test message, and ack by link.

Runs inside `pumpwatch run`/`demo` (System) or alone as `pumpwatch notify run`: all its state is in the
database, so replicas may come and go. The heartbeat (a dead-man's switch such as healthchecks.io) is sent
only while both loops have completed a pass recently, so a wedged notifier goes quiet and is noticed
outside it. On the same condition each replica beats in the database (`service_heartbeat`, every
`DB_BEAT_S`), so the collectors' system monitor raises `notifier_stopped` when no replica runs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Collection
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import Engine, select, update

from pumpwatch.alarms import store
from pumpwatch.alarms.incidents import note_first_response
from pumpwatch.alarms.notify import tokens
from pumpwatch.alarms.notify.channels import Notifier, build_notifiers, redact
from pumpwatch.alarms.notify.config import Oncall
from pumpwatch.alarms.notify.dispatcher import (
    NotifyContext,
    TtoLookup,
    create_message,
    escalate,
    flush,
    process_events,
)
from pumpwatch.alarms.notify.messages import Text
from pumpwatch.alarms.notify.outbox import OutboxSender
from pumpwatch.core import historian
from pumpwatch.core.audit import Audit
from pumpwatch.core.backoff import Backoff
from pumpwatch.core.clock import Clock
from pumpwatch.core.config import Fleet
from pumpwatch.core.db.schema import alarm, notification, notification_alarm
from pumpwatch.core.live import LiveSnapshot
from pumpwatch.core.sample import Quality
from pumpwatch.core.sharding import service_beat

log = logging.getLogger(__name__)
TTO_POINT = "tto_spill_min"
TTO_MAX_AGE = timedelta(minutes=15)  # an older forecast is not shown
DB_BEAT_S = 10.0  # a replica's heartbeat in the database, at most this often


def tto_from_live(live: LiveSnapshot, clock: Clock) -> TtoLookup:
    def lookup(stations: Collection[str]) -> dict[str, tuple[float, datetime]]:
        now, out = clock.now(), {}
        for sid in stations:
            s = live.station(sid).get(TTO_POINT)
            if s and s.value is not None and s.quality == Quality.GOOD and now - s.observed_at <= TTO_MAX_AGE:
                out[sid] = (s.value, s.observed_at)
        return out

    return lookup


def tto_from_db(engine: Engine, catalog: dict[tuple[str, str], int], clock: Clock) -> TtoLookup:
    def lookup(stations: Collection[str]) -> dict[str, tuple[float, datetime]]:
        ids = {catalog[(sid, TTO_POINT)]: sid for sid in stations if (sid, TTO_POINT) in catalog}
        now, out = clock.now(), {}
        for pid, (at, v, q) in historian.read_latest(engine, ids).items():
            if v is not None and q == Quality.GOOD and now - at <= TTO_MAX_AGE:
                out[ids[pid]] = (v, at)
        return out

    return lookup


class NotifierService:
    def __init__(
        self,
        engine: Engine,
        oncall: Oncall,
        fleet: Fleet,
        clock: Clock,
        secret_key: str,
        *,
        tto: TtoLookup | None = None,
        notifiers: dict[str, Notifier] | None = None,
        worker: str | None = None,
    ) -> None:
        self.ctx = NotifyContext(engine, oncall, fleet, secret_key, tto)
        self.clock = clock
        self.notifiers = notifiers if notifiers is not None else build_notifiers(oncall)
        self.sender = OutboxSender(self.ctx, self.notifiers, clock, worker=worker)
        self.last_dispatch: float | None = None
        self.last_send: float | None = None
        self.heartbeats = 0
        self.instance = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.started_at = clock.now()
        self._db_beat_at: float | None = None

    async def dispatch_once(self) -> None:
        now = self.clock.now()
        await asyncio.to_thread(process_events, self.ctx, now)
        await asyncio.to_thread(escalate, self.ctx, now)
        await asyncio.to_thread(flush, self.ctx, now)
        self.last_dispatch = self.clock.monotonic()
        await self._db_beat()

    async def send_once(self) -> int:
        n = await self.sender.run_once()
        self.last_send = self.clock.monotonic()
        await self._db_beat()
        return n

    async def _db_beat(self) -> None:
        """This replica runs: say so in the database (both loops passed recently), at most every DB_BEAT_S."""
        t = self.clock.monotonic()
        if not self.healthy() or (self._db_beat_at is not None and t - self._db_beat_at < DB_BEAT_S):
            return
        await asyncio.to_thread(
            service_beat,
            self.ctx.engine,
            "notifier",
            self.instance,
            self.started_at,
            self.clock.now(),
            DB_BEAT_S,
        )
        self._db_beat_at = t

    async def step(self) -> None:
        """One pass of everything (tests drive this under a FakeClock)."""
        await self.dispatch_once()
        while await self.send_once():
            pass

    async def run(self, tick_s: float = 1.0) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._loop(self.dispatch_once, tick_s, "dispatch"), name="notify.dispatch")
            tg.create_task(self._loop(self.send_once, tick_s, "send"), name="notify.send")
            hb = self.ctx.oncall.notifier.heartbeat
            if hb is not None:
                tg.create_task(self._heartbeat_loop(), name="notify.heartbeat")

    async def _loop(self, fn: Callable[[], Awaitable[object]], tick_s: float, what: str) -> None:
        backoff = Backoff(2 * tick_s, 30.0)  # after a failed pass: 2, 4, 8 … ticks, at most 30 s
        while True:
            try:
                await fn()
                backoff.reset()
            except Exception:  # the database is down: keep going, the outbox keeps everything
                log.exception("notifier %s pass failed; retrying", what)
                backoff.failed()
            await self.clock.sleep(backoff.current_s or tick_s)

    def healthy(self) -> bool:
        hb = self.ctx.oncall.notifier.heartbeat
        limit = 2 * (hb.interval_s if hb else 60) + 5
        now = self.clock.monotonic()
        return all(t is not None and now - t <= limit for t in (self.last_dispatch, self.last_send))

    async def heartbeat_once(self) -> bool:
        hb = self.ctx.oncall.notifier.heartbeat
        if hb is None or not self.healthy():
            return False
        url = hb.url.get_secret_value()
        try:
            async with httpx.AsyncClient(timeout=hb.timeout_s) as client:
                r = await client.request(hb.method, url)
            r.raise_for_status()
        except httpx.HTTPError as exc:
            log.warning("heartbeat failed: %s", redact(type(exc).__name__, [url]))
            return False
        self.heartbeats += 1
        return True

    async def _heartbeat_loop(self) -> None:
        hb = self.ctx.oncall.notifier.heartbeat
        assert hb is not None
        await self.clock.sleep(min(hb.interval_s, 5))  # let the loops make a first pass
        while True:
            await self.heartbeat_once()
            await self.clock.sleep(hb.interval_s)

    # --- test messages -----------------------------------------------------------------------------------

    def queue_test(self, person: str, channel: str | None = None) -> list[int]:
        """One test message per contact of `person` (or the contact on `channel`). KeyError/ValueError for
        an unknown person or channel."""
        oc = self.ctx.oncall
        p = oc.people.get(person)
        if p is None:
            raise KeyError(f"no person {person!r}")
        idx = [i for i, c in enumerate(p.contacts) if channel is None or c.channel == channel]
        if not idx:
            raise ValueError(f"{p.name} has no contact on channel {channel!r}")
        now = self.clock.now()
        at = now.astimezone(oc.zones[p.tenant]).strftime("%Y-%m-%d %H:%M")
        out = []
        request = uuid.uuid4().hex  # one per test request, in each of its messages' dedupe key
        with self.ctx.engine.begin() as conn:
            for i in idx:
                ch = p.contacts[i].channel
                text = Text(
                    subject=f"pumpwatch test message for {p.name} ({ch})",
                    body=f"This is a test of the {ch} channel for {p.name}, sent {at}. No action needed.",
                    short=f"pumpwatch test ({ch}) for {p.name}, {at}. No action needed.",
                )
                out.append(
                    create_message(
                        conn,
                        self.ctx,
                        person=person,
                        tenant=p.tenant,
                        kind="test",
                        dedupe_key=f"test:{person}:{ch}:{request}",
                        alarm_ids=[],
                        now=now,
                        render_fn=_fixed(text),
                        contact_index=i,
                        only_channel=True,
                    )  # fmt: skip
                )
        return out


# --- ack by link --------------------------------------------------------------------------------------


class LinkSpent(tokens.TokenError):
    """A genuine link that has done its work: used once already, or everything in it is acknowledged."""


def _fixed(text: Text) -> Callable[[str | None], Text]:
    """A render function that ignores the link: the message is already written."""
    return lambda _link: text


def describe_token(ctx: NotifyContext, token: str, now: datetime) -> dict[str, Any]:
    """What a link would acknowledge (no change). Raises TokenError: forged, expired, or naming a message,
    person or tenant that does not go together (a link acknowledges only the alarms of its own message,
    of its own tenant, as the person it was sent to)."""
    t = tokens.verify(ctx.secret_key, token, now)
    with ctx.engine.connect() as conn:
        n = conn.execute(select(notification).where(notification.c.id == t.notification_id)).first()
        if n is None:
            raise tokens.TokenError("this link names a message that does not exist")
        person = ctx.oncall.people.get(t.person)
        if (
            n.person != t.person
            or (t.tenant is not None and t.tenant != n.tenant_id)
            or person is None
            or person.tenant != n.tenant_id
        ):
            raise tokens.TokenError("this link does not belong to that message")
        rows = conn.execute(
            select(alarm)
            .join(notification_alarm, notification_alarm.c.alarm_id == alarm.c.id)
            .where(
                notification_alarm.c.notification_id == t.notification_id, alarm.c.tenant_id == n.tenant_id
            )
            .order_by(alarm.c.id)
        ).all()
    return {
        "token": t,
        "person": person.name,
        "subject": n.subject,
        "used_at": n.link_used_at,
        "alarms": [dict(r._mapping) for r in rows],
    }


def spent_reason(info: dict[str, Any]) -> str | None:
    if info["used_at"] is not None:
        return f"this link was already used at {info['used_at'].isoformat(timespec='seconds')}"
    if not any(a["state"] in ACKABLE for a in info["alarms"]):
        by = sorted({a["acked_by"] for a in info["alarms"] if a.get("acked_by")})
        return "everything in this message is already acknowledged" + (f" (by {', '.join(by)})" if by else "")
    return None


ACKABLE = ("unacked_active", "unacked_rtn")


def ack_by_token(
    ctx: NotifyContext, token: str, now: datetime, source_ip: str | None = None
) -> dict[str, Any]:
    """Acknowledge every still-unacknowledged alarm of the message, journaled with the person's name and
    audited like an acknowledgement in the console (the signed link is the person's credential). The link
    is spent by it: a second use, or a use once everything is acknowledged, raises LinkSpent."""
    info = describe_token(ctx, token, now)
    why = spent_reason(info)
    if why is not None:
        raise LinkSpent(why)
    with ctx.engine.begin() as conn:  # claim the link first: two taps at once acknowledge once
        claimed = conn.execute(
            update(notification)
            .where(notification.c.id == info["token"].notification_id, notification.c.link_used_at.is_(None))
            .values(link_used_at=now)
        ).rowcount
    if claimed != 1:
        raise LinkSpent("this link was already used")
    acked, already = [], []
    for a in info["alarms"]:
        audit = Audit(
            at=now,
            action="alarm.ack",
            username=f"link:{info['person']}",
            source_ip=source_ip,
            tenant_id=a.get("tenant_id"),
            target=f"alarm:{a['id']} {a.get('station_id')}/{a.get('name')}",
            detail="by notification link",
        )
        try:
            store.acknowledge(
                ctx.engine, a["id"], actor=info["person"], at=now, comment="by notification link", audit=audit
            )
            acked.append(a)
            # an acknowledgement from the phone is the incident's first response as much as one in the console
            note_first_response(ctx.engine, a["id"], now, info["person"])
        except store.AlarmActionError:
            cur = store.get_alarm(ctx.engine, a["id"]) or a
            already.append(cur)
    return {**info, "acked": acked, "already": already}
