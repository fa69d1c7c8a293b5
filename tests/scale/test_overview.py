"""`/api/v1/overview` agrees with `/api/v1/stations` on status, alarms, age and values, and is a snapshot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from pumpwatch.alarms import store
from pumpwatch.api.context import ApiContext
from pumpwatch.api.main import create_app
from pumpwatch.core.clock import FakeClock
from pumpwatch.core.config import load_fleet
from pumpwatch.core.db import make_engine, upgrade
from pumpwatch.core.live import LiveSnapshot
from pumpwatch.core.sample import Quality, Sample
from tests.auth import LONG_SESSIONS, log_in
from tests.conftest import DEMO_FLEET
from tests.services import free_port

NOW = datetime(2026, 7, 1, 1, 0, tzinfo=UTC)


async def test_overview_matches_the_station_list(tmp_path: Path) -> None:
    fleet = load_fleet(DEMO_FLEET)
    engine = make_engine(f"sqlite:///{tmp_path / 'o.db'}")
    upgrade(engine)
    live = LiveSnapshot()
    ids = sorted(fleet.stations)
    for i, sid in enumerate(ids):
        age = timedelta(seconds=600) if i == 1 else timedelta(seconds=1)  # one station's values are old
        q = Quality.COMM_LOSS if i == 2 else Quality.GOOD
        live.accept([Sample(sid, p, 0.0 if i != 3 else 1.0, NOW - age, q) for p in fleet.points[sid]])
    # a station's status is comm_loss by its comm-loss alarm (alarms/status.py), not by its values alone
    st2 = fleet.stations[ids[2]]
    store.raise_alarm(
        engine, tenant_id=st2.tenant, station_id=ids[2], name="comm_loss", priority="high",
        message="comm loss", value=None, at=NOW,
    )  # fmt: skip
    ctx = ApiContext(
        fleet=fleet, engine=engine, clock=FakeClock(NOW), catalog={}, live=live, auth=LONG_SESSIONS
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(ctx)), base_url="http://t"
    ) as c:
        await log_in(c, engine, fleet.tenants)
        full = {s["id"]: s for s in (await c.get("/api/v1/stations")).json()["data"]}
        r = await c.get("/api/v1/overview")
        assert r.status_code == 200
        body = r.json()
        kita = (await c.get("/api/v1/overview", params={"tenant": "kita"})).json()
    engine.dispose()
    over = {s["id"]: s for s in body["data"]}
    assert body["count"] == len(fleet.stations) == len(over)
    assert {s["tenant"] for s in kita["data"]} == {"kita"} and kita["count"] < body["count"]
    statuses = set()
    for sid, s in full.items():
        o = over[sid]
        statuses.add(o["status"])
        assert o["status"] == s["status"], sid
        assert o["active_alarms"] == s["active_alarms"]
        assert o["suppressed_alarms"] == s["suppressed_alarms"]
        assert o["live"] == s["live"]
        assert o["data_age_s"] == s["data_age_s"]
        assert o["values"] == {k: v["value"] for k, v in s["values"].items() if k in fleet.points[sid]}
    assert {"stale", "comm_loss"} <= statuses  # old values are never shown live


async def test_an_overview_that_cannot_be_rebuilt_is_refused_not_served_old(tmp_path: Path) -> None:
    """An API process without an alarm engine loses its database: the snapshot it has is served while
    young, and refused (503, with the reason) once older than MAX_AGE_S; never shown as if live."""
    from pumpwatch.api.routes.overview import MAX_AGE_S

    fleet = load_fleet(DEMO_FLEET)
    engine = make_engine(f"sqlite:///{tmp_path / 'o.db'}")
    upgrade(engine)
    live = LiveSnapshot()
    for sid in fleet.stations:
        live.accept([Sample(sid, p, 0.0, NOW, Quality.GOOD) for p in fleet.points[sid]])
    clock = FakeClock(NOW)
    ctx = ApiContext(fleet=fleet, engine=engine, clock=clock, catalog={}, live=live, auth=LONG_SESSIONS)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(ctx)), base_url="http://t"
    ) as c:
        await log_in(c, engine, fleet.tenants)
        assert (await c.get("/api/v1/overview")).json()["alarms_from"] == "database"
        # the database goes away: nothing listens where it was
        engine.dispose()
        ctx.engine = make_engine(f"postgresql://pumpwatch:x@127.0.0.1:{free_port()}/gone?connect_timeout=2")
        clock.advance(MAX_AGE_S / 2)
        r = await c.get("/api/v1/overview")  # the session is remembered; the young snapshot is served
        assert r.status_code == 200 and r.json()["at"] == NOW.isoformat()
        clock.advance(MAX_AGE_S)
        r = await c.get("/api/v1/overview")
        assert r.status_code == 503, r.text
        assert "cannot be brought up to date" in r.json()["detail"]
    ctx.engine.dispose()
