"""An API on the demo fleet with a FakeClock and users of both tenants (kita: A, minami: B)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, insert

from pumpwatch.alarms import incidents, store
from pumpwatch.alarms.notify.config import load_oncall
from pumpwatch.alarms.notify.service import NotifierService
from pumpwatch.api.auth.config import AuthConfig
from pumpwatch.api.context import ApiContext
from pumpwatch.api.main import create_app
from pumpwatch.core import historian
from pumpwatch.core.audit import Audit
from pumpwatch.core.clock import FakeClock
from pumpwatch.core.config import Fleet, load_fleet
from pumpwatch.core.db.engine import make_engine
from pumpwatch.core.db.migrate import upgrade
from pumpwatch.core.db.schema import (
    drill,
    escalation,
    incident,
    incident_station,
    notification,
    notification_alarm,
    notify_item,
    resource_assignment,
)
from tests.auth import PASSWORD, add_user, token
from tests.conftest import DEMO_FLEET

T0 = datetime(2026, 9, 1, 0, 0, tzinfo=UTC)
CONSOLE = {"X-Pumpwatch-CSRF": "1"}

USERS = {
    "boss": [("kita", "admin"), ("minami", "admin"), ("centre", "admin")],  # the centre admin
    "kita-admin": [("kita", "admin")],
    "kita-op": [("kita", "operator")],
    "kita-eng": [("kita", "engineer")],
    "kita-view": [("kita", "viewer")],
    "minami-op": [("minami", "operator")],
    "centre": [("kita", "operator"), ("minami", "operator")],
}


@dataclass
class Api:
    client: httpx.AsyncClient
    engine: Engine
    clock: FakeClock
    fleet: Fleet
    cfg: AuthConfig

    async def login(self, name: str, password: str = PASSWORD, ip: str | None = None) -> httpx.Response:
        return await self.client.post("/api/v1/auth/login", json={"username": name, "password": password})

    async def token(self, name: str) -> str:
        """Signed in (with the second factor where the user's grants need one), as a Bearer token."""
        t = await token(self.client, name)
        self.client.cookies.clear()
        return t


async def make_api(
    url: str, cfg: AuthConfig | None = None, fleet: Fleet | None = None
) -> tuple[Api, ApiContext]:
    fleet = fleet or load_fleet(DEMO_FLEET)
    engine = make_engine(url)
    upgrade(engine)
    catalog = historian.sync_catalog(engine, fleet)
    clock = FakeClock(T0)
    cfg = cfg or AuthConfig()
    for name, grants in USERS.items():
        add_user(engine, name, grants)
    ctx = ApiContext(fleet=fleet, engine=engine, clock=clock, catalog=catalog, auth=cfg)
    # like the console: its changes made with the session cookie carry the anti-CSRF header (api.csrf)
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(ctx)), base_url="http://t", headers=CONSOLE
    )
    return Api(client, engine, clock, fleet, cfg), ctx


ACK_SECRET = "test-secret-key-for-ack-links-0123456789"


def attach_notifier(api: Api, ctx: ApiContext, tmp: Path) -> None:
    """On-call notification in `ctx` (the test on-call file; nothing is sent unless a test steps it), so
    the signed ack links are served and checked."""
    text = (Path(__file__).parent.parent / "notify" / "oncall.yaml.in").read_text(encoding="utf-8")
    path = tmp / "oncall.yaml"
    path.write_text(
        text.replace("$group_interval_s", "300")
        .replace("$smtp_port", "9")
        .replace("$hook_url", "http://127.0.0.1:9")
        .replace("$hook_secret", "s"),
        encoding="utf-8",
    )
    ctx.notify = NotifierService(api.engine, load_oncall(path, api.fleet), api.fleet, ctx.clock, ACK_SECRET)


@pytest.fixture
async def api(sqlite_url: str) -> AsyncIterator[Api]:
    a, _ = await make_api(sqlite_url)
    async with a.client:
        yield a
    a.engine.dispose()


def fill(engine: Engine, catalog: dict[tuple[str, str], int]) -> dict[str, int]:
    """Rows of both tenants in every tenant table; returns B's (minami's) object ids."""
    ids: dict[str, int] = {}
    for sid in ["KITA-MP-01", "MINAMI-MP-01"]:
        tenant = sid.split("-")[0].lower()
        pid = catalog[(sid, "wet_well_level_m")]
        historian.write_samples(engine, [(pid, T0 + timedelta(seconds=s), 1.0 + s, 0) for s in range(5)])
        a = store.raise_alarm(
            engine,
            tenant_id=tenant,
            station_id=sid,
            name="power_failure",
            priority="critical",
            message="outage",
            value=1.0,
            at=T0,
        )
        store.set_out_of_service(engine, sid, out=True, actor="x", at=T0, reason="work")
        with engine.begin() as conn:
            iid = conn.execute(
                insert(incident)
                .values(tenant_id=tenant, kind="area_power_outage", title="t", phase="report", opened_at=T0)
                .returning(incident.c.id)
            ).scalar_one()
            conn.execute(insert(incident_station).values(incident_id=iid, station_id=sid, joined_at=T0))
        incidents.add_note(engine, iid, actor="x", at=T0, text="note", phase=None)
        _notification_rows(engine, tenant, a.id)
        did, asg = _drill_and_assignment_rows(engine, tenant, sid)
        ids = {"alarm_id": a.id, "incident_id": iid, "drill_id": did, "assignment_id": asg}
        Audit(at=T0, action="alarm.ack", username="x", tenant_id=tenant, target=f"alarm:{a.id}").record(
            engine
        )
    return ids


def _drill_and_assignment_rows(engine: Engine, tenant: str, sid: str) -> tuple[int, int]:
    """A finished drill of the tenant and a generator of its sent to the station (issue 18's tables)."""
    with engine.begin() as conn:
        did = conn.execute(
            insert(drill)
            .values(
                tenant_id=tenant, name=f"{tenant}-drill", title=f"{tenant} drill", scenario="x: 1",
                notify="drill_contacts", contacts="", started_at=T0, started_by="x",
                ends_at=T0 + timedelta(minutes=30), stopped_at=T0 + timedelta(minutes=30),
                outcome="completed",
            )
            .returning(drill.c.id)
        ).scalar_one()  # fmt: skip
        asg = conn.execute(
            insert(resource_assignment)
            .values(
                tenant_id=tenant, resource_id=f"{tenant}-gen-1", station_id=sid, state="dispatched",
                assigned_at=T0, assigned_by="x", eta_at=T0 + timedelta(minutes=10), travel_s=600.0,
                updated_at=T0,
            )
            .returning(resource_assignment.c.id)
        ).scalar_one()  # fmt: skip
    return int(did), int(asg)


def _notification_rows(engine: Engine, tenant: str, alarm_id: int) -> None:
    """An escalation, a queued item and a sent message about the alarm (the notifier's tables)."""
    with engine.begin() as conn:
        esc = conn.execute(
            insert(escalation)
            .values(
                alarm_id=alarm_id, tenant_id=tenant, route="r", policy="p", state="active",
                started_at=T0, updated_at=T0,
            )
            .returning(escalation.c.id)
        ).scalar_one()  # fmt: skip
        nid = conn.execute(
            insert(notification)
            .values(
                dedupe_key=f"k-{tenant}", tenant_id=tenant, person=f"{tenant}-duty", kind="alarm",
                channel="mail", recipient=f"duty@{tenant}.example.jp", subject=f"{tenant} outage",
                body="b", short="s", state="sent", max_attempts=3, next_attempt_at=T0, created_at=T0,
            )
            .returning(notification.c.id)
        ).scalar_one()  # fmt: skip
        conn.execute(insert(notification_alarm).values(notification_id=nid, alarm_id=alarm_id))
        conn.execute(
            insert(notify_item).values(
                person=f"{tenant}-duty", tenant_id=tenant, alarm_id=alarm_id, escalation_id=esc,
                kind="alert", created_at=T0, notification_id=nid,
            )
        )  # fmt: skip
