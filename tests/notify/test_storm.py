"""The earthquake case: 200 stations lose power within a minute. Raises go through the real AlarmService and
store under a FakeClock; the notifier runs as in production. Each on-call person gets a bounded number of
messages (one per group window), every critical alarm is delivered or escalated within 5 minutes, the
summary names how many stations and how many are near overflow, and deliveries and the ack by link are
visible through the API."""

from __future__ import annotations

import asyncio
import math
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import func, select

from pumpwatch.alarms import store
from pumpwatch.alarms.notify.config import load_oncall
from pumpwatch.alarms.notify.service import NotifierService
from pumpwatch.alarms.rules import RuleSet
from pumpwatch.alarms.service import AlarmService
from pumpwatch.api.context import ApiContext
from pumpwatch.api.main import create_app
from pumpwatch.core import historian
from pumpwatch.core.clock import FakeClock
from pumpwatch.core.config import load_fleet
from pumpwatch.core.db.engine import make_engine
from pumpwatch.core.db.migrate import upgrade
from pumpwatch.core.db.schema import alarm, notification, notification_alarm, notify_item
from pumpwatch.core.live import LiveSnapshot
from pumpwatch.core.sample import Quality, Sample
from tests.alarms.test_lifecycle_api import RULES
from tests.auth import LONG_SESSIONS, log_in
from tests.notify.conftest import SECRET_KEY
from tests.notify.receivers import SmtpServer

CITY = Path(__file__).resolve().parents[2] / "deploy" / "config" / "city"
GROUP_INTERVAL_S = 300
TARGET_S = 300  # delivered or escalated within 5 minutes
ONCALL = """\
notifier: {{group_wait_s: 30, group_interval_s: {gi}}}
channels:
  mail: {{type: email, host: 127.0.0.1, port: {port}, from: pumpwatch@city.example.jp}}
people:
  - {{id: h1, name: Hanamizu One, tenant: hanamizu, contacts: [{{channel: mail, to: h1@hanamizu.jp}}]}}
  - {{id: h2, name: Hanamizu Two, tenant: hanamizu, contacts: [{{channel: mail, to: h2@hanamizu.jp}}]}}
  - {{id: hchief, name: H Chief, tenant: hanamizu, contacts: [{{channel: mail, to: chief@hanamizu.jp}}]}}
  - {{id: y1, name: Yamabe One, tenant: yamabe, contacts: [{{channel: mail, to: y1@yamabe.jp}}]}}
  - {{id: y2, name: Yamabe Two, tenant: yamabe, contacts: [{{channel: mail, to: y2@yamabe.jp}}]}}
  - {{id: c1, name: Centre One, tenant: centre, contacts: [{{channel: mail, to: c1@centre.jp}}]}}
rotations:
  - {{id: h-duty, tenant: hanamizu, members: [h1, h2], start: 2026-08-31}}
policies:
  - id: h-std
    tenant: hanamizu
    steps: [{{notify: [{{rotation: h-duty}}], wait_min: 5}}, {{notify: [{{person: hchief}}], wait_min: 10}}]
    final: hchief
  - id: y-std
    tenant: yamabe
    steps: [{{notify: [{{person: y1}}], wait_min: 5}}, {{notify: [{{person: y2}}]}}]
    final: y2
  - {{id: c-std, tenant: centre, steps: [{{notify: [{{person: c1}}]}}], final: c1}}
routing:
  - {{tenant: hanamizu, policy: h-std}}
  - {{tenant: yamabe, policy: y-std}}
  - {{tenant: centre, policy: c-std}}
"""


async def test_two_hundred_stations_lose_power_within_a_minute(
    db_url: str, tmp_path: Path, smtp: SmtpServer
) -> None:
    fleet = load_fleet(CITY)
    engine = make_engine(db_url)
    upgrade(engine)
    catalog = historian.sync_catalog(engine, fleet)
    (tmp_path / "oncall.yaml").write_text(
        ONCALL.format(gi=GROUP_INTERVAL_S, port=smtp.port), encoding="utf-8"
    )
    oncall = load_oncall(tmp_path / "oncall.yaml", fleet)
    clock = FakeClock(datetime(2026, 9, 1, 3, 0, tzinfo=UTC))  # Tuesday 12:00 in Tokyo
    live = LiveSnapshot()
    alarms_svc = AlarmService(fleet, RuleSet({sid: RULES for sid in fleet.stations}, []), engine, clock)
    from pumpwatch.alarms.notify.service import tto_from_live

    notifier = NotifierService(engine, oncall, fleet, clock, SECRET_KEY, tto=tto_from_live(live, clock))
    ctx = ApiContext(
        fleet=fleet,
        engine=engine,
        clock=clock,
        catalog=catalog,
        live=live,
        notify=notifier,
        auth=LONG_SESSIONS,
    )
    persist = asyncio.create_task(alarms_svc._persist_forever())
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(ctx)), base_url="http://test")
    start = clock.now()
    try:
        victims = sorted(fleet.stations)[:200]
        # a few of them are close to overflow (the analyzer's derived point, fresh and good)
        near = set(victims[::40])
        for sid in near:
            live.accept([Sample(sid, "tto_spill_min", 18.0, clock.now(), Quality.GOOD)])
        for second in range(60):  # 200 stations in 60 s
            now = clock.now()
            batch = [Sample(sid, "mains_failed", 1.0, now, Quality.GOOD) for sid in victims[second::60]]
            alarms_svc.accept(batch)
            await alarms_svc.drain()
            clock.advance(1)
            await notifier.step()
        acked_link = None
        for _ in range(int(15 * 60 / 5)):  # 15 more minutes, a notifier pass every 5 s
            clock.advance(5)
            await notifier.step()
            if acked_link is None and clock.now() - start >= timedelta(minutes=2):
                # the duty officer takes the first summary from the phone
                [first] = smtp.to("h1@hanamizu.jp")[:1]
                m = re.search(r"http://127\.0\.0\.1:8000(/api/v1/notify/ack/\S+)", first.get_content())
                assert m is not None
                acked_link = m.group(1)
                r = await client.post(acked_link)
                assert r.status_code == 200 and "Acknowledged by Hanamizu One" in r.text
    finally:
        persist.cancel()
        await client.aclose()
    elapsed = (clock.now() - start).total_seconds()

    with engine.connect() as conn:
        crit = conn.execute(select(alarm).where(alarm.c.priority == "critical")).all()
        assert len(crit) == 200
        # bounded: at most one message per person per group window (+1 for the first)
        per_person = Counter(
            dict(
                conn.execute(
                    select(notification.c.person, func.count()).group_by(notification.c.person)
                ).all()
            )
        )
        bound = math.ceil(elapsed / GROUP_INTERVAL_S) + 1
        assert per_person and max(per_person.values()) <= bound, (per_person, bound)
        assert len(smtp.messages) == sum(per_person.values())
        # every critical alarm delivered (a sent message covers it) or escalated (step 2 fired) in time
        sent = dict(
            conn.execute(
                select(notification_alarm.c.alarm_id, func.min(notification.c.sent_at))
                .join(notification, notification.c.id == notification_alarm.c.notification_id)
                .where(notification.c.state == "sent")
                .group_by(notification_alarm.c.alarm_id)
            ).all()
        )
        escalated = dict(
            conn.execute(
                select(notify_item.c.alarm_id, func.min(notify_item.c.created_at))
                .where(notify_item.c.step >= 2)
                .group_by(notify_item.c.alarm_id)
            ).all()
        )
    late = []
    for a in crit:
        times = [t for t in (sent.get(a.id), escalated.get(a.id)) if t is not None]
        if not times or (min(times) - a.raised_at).total_seconds() > TARGET_S + 5:  # + one notifier pass
            late.append((a.station_id, a.raised_at, times))
    assert late == []
    # the summary a person reads
    first = smtp.to("h1@hanamizu.jp")[0]
    assert re.match(
        r"\[CRITICAL\] \d+ stations: power failure, \d+ below 30 min to overflow", first["Subject"]
    )
    # the ack by link acknowledged every alarm of that message, named the person, and stopped their escalation
    acked = store.list_alarms(engine, open_=None, limit=1000)
    by_h1 = [a for a in acked if a["acked_by"] == "Hanamizu One"]
    assert len(by_h1) >= 20
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(ctx)), base_url="http://test"
    ) as c:
        await log_in(c, engine, fleet.tenants, name="centre-admin", role="admin")
        r = await c.get("/api/v1/notify/deliveries", params={"person": "h1"})
        assert r.status_code == 200 and len(r.json()["deliveries"]) == per_person["h1"]
        a0 = by_h1[0]["id"]
        r = await c.get(f"/api/v1/notify/alarms/{a0}")
        body = r.json()
        assert body["escalation"]["state"] == "acked" and body["escalation"]["acked_by"] == "Hanamizu One"
        assert body["deliveries"][0]["person"] == "h1" and body["deliveries"][0]["state"] == "sent"
        r = await c.get(f"/api/v1/alarms/{a0}/journal")
        kinds = [(e["kind"], e.get("actor")) for e in r.json()["data"]]
        assert ("ack", "Hanamizu One") in kinds and any(k == "notified" for k, _ in kinds)
        r = await c.get("/api/v1/notify/escalations", params={"state": "acked", "tenant": "hanamizu"})
        assert len(r.json()["escalations"]) == len(by_h1)
    engine.dispose()
