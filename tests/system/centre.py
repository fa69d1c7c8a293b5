"""A collector process of the demo fleet as the monitoring centre sees it, without field devices: the
system monitor, the historian writer (with a spool when asked), the alarm service, the notifier (group
wait 0, messages to files in the test's folder) and the API in-process, on a FakeClock. Users: the centre's
operator and viewer, a Kita operator and admin."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from pumpwatch.alarms import store
from pumpwatch.api.auth.users import UserError
from pumpwatch.api.main import create_app
from pumpwatch.api.webconfig import WebConfig
from pumpwatch.app.system import System
from pumpwatch.core.clock import FakeClock
from pumpwatch.core.config import load_fleet
from pumpwatch.core.db.schema import alarm, notification, notification_alarm
from pumpwatch.core.sharding import Shard
from tests.auth import LONG_SESSIONS, add_user, bearer, token
from tests.e2e.fleets import demo_fleet_dir_on_free_ports

METRICS_TOKEN = "scrape-token"  # /metrics on the API port needs one (api.exposure)
START = datetime(2026, 7, 1, 1, 0, tzinfo=UTC)  # Wednesday 10:00 in Tokyo
SECRET = "test-secret-key-for-the-centre-stack"
USERS = {
    "ctr-op": [("centre", "operator")],
    "ctr-view": [("centre", "viewer")],
    "kita-op": [("kita", "operator")],
    "kita-admin": [("kita", "admin")],
}


def centre_fleet_dir(tmp: Path) -> Path:
    """The demo fleet's files (its centre, on-call and rules as shipped), notifications to `tmp`."""
    d = demo_fleet_dir_on_free_ports(tmp)
    oc = d / "oncall.yaml"
    text = oc.read_text(encoding="utf-8").replace("group_wait_s: 30", "group_wait_s: 0")
    oc.write_text(text.replace("path: var/", f"path: {tmp}/"), encoding="utf-8")
    return d


@dataclass
class Centre:
    system: System
    clock: FakeClock
    client: httpx.AsyncClient
    tokens: dict[str, str]

    def h(self, user: str = "ctr-op") -> dict[str, str]:
        return bearer(self.tokens[user])

    async def check(self) -> list:
        """One round of the system monitor, its events stored."""
        assert self.system.monitor is not None and self.system.alarms is not None
        events = await self.system.monitor.check()
        await self.system.alarms.drain()
        return events

    async def journal(self, station: str, name: str) -> list[str]:
        rows = await asyncio.to_thread(store.alarm_journal, self.system.engine, tenant_ids=["centre"])
        return [r["kind"] for r in rows if r["station_id"] == station and r["name"] == name]

    async def listed(self, user: str = "ctr-op") -> set[tuple[str, str]]:
        """(station, alarm) of the open alarms the API lists for `user`."""
        r = await self.client.get("/api/v1/alarms", params={"view": "all_open"}, headers=self.h(user))
        assert r.status_code == 200, r.text
        return {(a["station"], a["name"]) for a in r.json()["data"] if a["active"]}

    async def ready(self) -> set[tuple[str, str]]:
        r = await self.client.get("/readyz")
        return {(a["station"], a["name"]) for a in r.json()["detail"]["system_alarms"]}

    async def notified(self, name: str) -> list[dict[str, Any]]:
        """Outbox rows about the system alarm `name` (after one dispatcher pass)."""
        assert self.system.notifier is not None
        await self.system.notifier.dispatch_once()

        def rows() -> list[dict[str, Any]]:
            with self.system.engine.connect() as conn:
                q = (
                    select(notification.c.tenant_id, notification.c.person, notification.c.subject)
                    .join(notification_alarm, notification_alarm.c.notification_id == notification.c.id)
                    .join(alarm, alarm.c.id == notification_alarm.c.alarm_id)
                    .where(alarm.c.name == name)
                )
                return [dict(r._mapping) for r in conn.execute(q)]

        return await asyncio.to_thread(rows)

    def on_call(self) -> str:
        assert self.system.notifier is not None
        return self.system.notifier.ctx.oncall.on_call("centre-duty", self.clock.now())


@contextlib.asynccontextmanager
async def centre_stack(
    tmp: Path,
    db_url: str,
    *,
    spool_bytes: int | None = None,
    shard: Shard | None = None,
    heartbeat_interval_s: float = 5.0,
    fleet_dir: Path | None = None,
    stations: list[str] | None = [],  # noqa: B006  (never mutated) — None: every station of the fleet
) -> AsyncIterator[Centre]:
    fleet = load_fleet(fleet_dir or centre_fleet_dir(tmp))
    clock = FakeClock(START)
    system = await System.prepare(fleet, db_url, clock, SECRET)
    if spool_bytes is not None:
        system.spool_dir = tmp / "spool"
        system.spool_capacity_bytes = spool_bytes
    system.shard = shard
    system.heartbeat_interval_s = heartbeat_interval_s
    try:
        await system.start_collecting(stations=stations)  # []: no field devices, the system's own parts
        for name, grants in USERS.items():
            with contextlib.suppress(UserError):  # a second process over the same database
                await asyncio.to_thread(add_user, system.engine, name, grants)
        app = create_app(system.api_context(auth=LONG_SESSIONS, web=WebConfig(metrics_token=METRICS_TOKEN)))
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://pumpwatch.test"
        ) as client:
            tokens = {u: await token(client, u) for u in USERS}
            client.cookies.clear()
            yield Centre(system, clock, client, tokens)
    finally:
        await system.stop()
