"""Every view of a station says the same for the same state: GET /stations, GET /stations/{id}, the
overview and the live stream's snapshot, on SQLite and PostgreSQL; and what they say follows the one
definition (alarms/status.py) through the real alarm store and rule file."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import orjson

from pumpwatch.alarms import store
from pumpwatch.alarms.analyzers.build import all_analyzers
from pumpwatch.alarms.rules import load_rules
from pumpwatch.alarms.status import LADDER
from pumpwatch.api.context import ApiContext
from pumpwatch.api.main import create_app
from pumpwatch.core import historian
from pumpwatch.core.clock import FakeClock
from pumpwatch.core.config import load_fleet
from pumpwatch.core.db import make_engine, upgrade
from pumpwatch.core.live import LiveSnapshot
from pumpwatch.core.sample import Quality, Sample
from tests.auth import LONG_SESSIONS, log_in
from tests.conftest import DEMO_FLEET

NOW = datetime(2026, 9, 1, 3, 0, tzinfo=UTC)
EXPECTED = {
    "KITA-MP-01": "normal",
    "KITA-MP-02": "power_failure",  # its comm-loss alarm is suppressed by the power failure
    "KITA-MP-03": "comm_loss",
    "KITA-MP-04": "normal",  # back after a comm loss; one point was never published again
    "KITA-MP-05": "stale",
    "KITA-MP-06": "alarm",  # shelved: off the list, still true of the station
    "KITA-MP-07": "maintenance",
    "KITA-MP-08": "no_data",
}
NOT_REPUBLISHED = "pump2_running"
COMPARED = (
    "status",
    "active_alarms",
    "suppressed_alarms",
    "live",
    "out_of_service",
    "heard_at",
    "data_age_s",
)


def _state(fleet, engine, live: LiveSnapshot) -> None:
    def put(sid: str, age_s: float, q: Quality = Quality.GOOD, only: set[str] | None = None) -> None:
        at = NOW - timedelta(seconds=age_s)
        value = None if q is Quality.COMM_LOSS else 0.0
        live.accept([Sample(sid, p, value, at, q) for p in fleet.points[sid] if only is None or p in only])

    raise_ = lambda sid, name, **kw: store.raise_alarm(  # noqa: E731
        engine, tenant_id="kita", station_id=sid, name=name, priority="high", message=name, value=None,
        at=NOW - timedelta(seconds=60), **kw,
    )  # fmt: skip
    special = {"KITA-MP-02", "KITA-MP-03", "KITA-MP-04", "KITA-MP-05", "KITA-MP-08"}
    for sid in fleet.stations:
        if sid not in special:
            put(sid, 1)
    put("KITA-MP-02", 5, Quality.COMM_LOSS)
    raise_("KITA-MP-02", "power_failure")
    raise_("KITA-MP-02", "comm_loss", suppressed_by="power_failure")
    put("KITA-MP-03", 5, Quality.COMM_LOSS)
    raise_("KITA-MP-03", "comm_loss")
    # KITA-MP-04: lost 40 s ago, back 30 s ago with every point but one
    put("KITA-MP-04", 40, Quality.COMM_LOSS)
    put("KITA-MP-04", 1, only=set(fleet.points["KITA-MP-04"]) - {NOT_REPUBLISHED})
    put("KITA-MP-05", fleet.stale_after_s("KITA-MP-05") + 1)
    hw = raise_("KITA-MP-06", "high_water")
    store.shelve(
        engine, hw.id, actor="sato", at=NOW, kind="timed", until=NOW + timedelta(hours=1), reason="known"
    )
    raise_("KITA-MP-07", "door_open")
    store.set_out_of_service(engine, "KITA-MP-07", out=True, actor="eng", at=NOW, reason="pump pulled")


async def _snapshot(app) -> dict:
    hub = app.state.hub
    sub = hub.subscribe(None, None)
    try:
        for _ in range(200):
            if sub.queue:
                break
            await asyncio.sleep(0.025)
        _, kind, data = sub.queue.popleft()
        assert kind == "snapshot"
        return orjson.loads(data)
    finally:
        hub.close()


async def test_stations_one_station_overview_and_stream_agree(db_url: str) -> None:
    fleet = load_fleet(DEMO_FLEET)
    analyzers = all_analyzers(fleet)
    derived = {sid: {p.name for a in an for p in a.outputs} for sid, an in analyzers.items()}
    rules = load_rules(fleet.alarm_rules, fleet, derived)
    engine = make_engine(db_url)
    upgrade(engine)
    catalog = historian.sync_catalog(engine, fleet)
    live = LiveSnapshot()
    _state(fleet, engine, live)
    ctx = ApiContext(
        fleet=fleet,
        engine=engine,
        clock=FakeClock(NOW),
        catalog=catalog,
        live=live,
        rules=rules,
        auth=LONG_SESSIONS,
    )
    app = create_app(ctx)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            await log_in(c, engine, fleet.tenants)
            listed = {s["id"]: s for s in (await c.get("/api/v1/stations")).json()["data"]}
            one = {sid: (await c.get(f"/api/v1/stations/{sid}")).json() for sid in fleet.stations}
            over = {s["id"]: s for s in (await c.get("/api/v1/overview")).json()["data"]}
            snap = await _snapshot(app)
    finally:
        engine.dispose()
    streamed = {s["id"]: s for s in snap["stations"]}
    assert snap["status_ladder"] == list(LADDER)
    assert set(listed) == set(one) == set(over) == set(streamed) == set(fleet.stations)
    for sid in fleet.stations:
        want = {k: listed[sid][k] for k in COMPARED}
        assert {k: one[sid][k] for k in COMPARED} == want, sid
        assert {k: over[sid][k] for k in COMPARED} == want, sid
        assert {k: streamed[sid][k] for k in COMPARED} == want, sid
        assert one[sid]["values"] == listed[sid]["values"] == streamed[sid]["values"], sid
        assert over[sid]["values"] == {
            k: v["value"] for k, v in listed[sid]["values"].items() if k in over[sid]["values"]
        }
    got = {sid: listed[sid]["status"] for sid in EXPECTED}
    assert got == EXPECTED
    assert all(listed[s]["status"] == "normal" for s in fleet.stations if s.startswith("MINAMI"))
    pf = listed["KITA-MP-02"]
    assert (pf["active_alarms"], pf["suppressed_alarms"]) == (["power_failure"], ["comm_loss"])
    assert not pf["live"]
    back = listed["KITA-MP-04"]
    assert back["live"]
    assert back["values"][NOT_REPUBLISHED]["quality"] == "stale"
    assert back["values"][NOT_REPUBLISHED]["age_s"] == 40.0
    others = {n: v["quality"] for n, v in back["values"].items() if n in fleet.points["KITA-MP-04"]}
    assert {q for n, q in others.items() if n != NOT_REPUBLISHED} == {"good"}
    assert listed["KITA-MP-05"]["live"] is False
    assert listed["KITA-MP-06"]["active_alarms"] == ["high_water"] and listed["KITA-MP-06"]["live"]
    assert listed["KITA-MP-07"]["out_of_service"] is True
    assert listed["KITA-MP-08"]["data_age_s"] is None
