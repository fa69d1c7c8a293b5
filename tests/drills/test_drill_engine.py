"""A drill end to end below the browser: simulator → Modbus → collector → alarms → API, on a fake clock.

A trainer starts the lightning drill through the API; while it runs the tenant's alarms and incident carry
the drill's id (API, journal), other tenants see no drill, a viewer cannot start one; an operator
acknowledges; the drill ends on its own; the report says what was raised when, who acknowledged, and the
fleet is back to normal (its faults undone)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from pumpwatch.alarms import store
from pumpwatch.api.main import create_app
from pumpwatch.app.backfill import continue_live, simulate_into
from pumpwatch.app.drills import DrillRunner
from pumpwatch.app.system import System
from pumpwatch.core import drills
from pumpwatch.core.clock import FakeClock
from pumpwatch.core.config import load_fleet
from pumpwatch.core.db.schema import alarm
from pumpwatch.simulators.fleet import SimulatedFleet
from tests.auth import LONG_SESSIONS, add_user, bearer, token
from tests.clocked import poll_step
from tests.drills import FULL_DEMO
from tests.simulators import on_free_ports

pytestmark = pytest.mark.integration
START = datetime(2026, 8, 1, 10, 0, tzinfo=UTC)

DRILL = """
name: feeder-drill
title: Feeder 1 lost (test)
tenant: kita
drill_contacts: [sato]
events:
  - {at: 20s, power_outage: {area: kita-feeder-1, duration: 2m}}
  - {at: 20s, comm_loss: {controller: kita-04}}
duration: 3m
"""


class Rig:
    def __init__(self, sim, system, clock, client, runner) -> None:
        self.sim, self.system, self.clock, self.client, self.runner = sim, system, clock, client, runner
        self.tokens: dict[str, str] = {}

    async def advance(self, seconds: float, step: float = 2.0) -> None:  # the demo polls every 2 s
        moved = 0.0
        while moved < seconds - 1e-9:
            await poll_step(
                self.clock, self.system.sources, step, physics=self.sim.step_now, nudge_after_s=None
            )
            await self.runner.tick()
            moved += step
        await self.system.alarms.drain()

    async def as_(self, who: str, method: str, path: str, **kw) -> httpx.Response:
        return await self.client.request(method, path, headers=bearer(self.tokens[who]), **kw)


@pytest.fixture
async def rig(sqlite_url: str) -> AsyncIterator[Rig]:
    fleet = on_free_ports(load_fleet(FULL_DEMO))
    clock = FakeClock(START)
    async with SimulatedFleet(fleet, clock, seed=3) as sim:
        system = await System.prepare(fleet, sqlite_url, clock)
        # an hour of history first, as the demo does (a day): the forecasters know each station's inflow
        models = simulate_into(
            fleet,
            system.engine,
            system.catalog,
            start=START - timedelta(hours=1),
            end=START,
            every_s=60,
            analyzers=system.analyzers,
            seed=3,
        )
        continue_live(sim, models)
        await system.start_collecting()
        runner = DrillRunner(sim, clock, system.engine, fleet)
        system.drills = runner
        app = create_app(system.api_context(auth=LONG_SESSIONS))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            rig = Rig(sim, system, clock, client, runner)
            for name, grants in {
                "trainer": [("kita", "trainer")],
                "op": [("kita", "operator")],
                "viewer": [("kita", "viewer")],
                "minami": [("minami", "trainer")],
            }.items():
                add_user(system.engine, name, grants)
                rig.tokens[name] = await token(client, name)
            client.cookies.clear()
            try:
                yield rig
            finally:
                await system.stop()


async def test_a_drill_end_to_end(rig: Rig) -> None:
    await rig.advance(10)
    assert (await rig.as_("op", "GET", "/api/v1/alarms")).json()["count"] == 0
    # who may start it
    r = await rig.as_("viewer", "POST", "/api/v1/drills", json={"scenario": DRILL})
    assert r.status_code == 403, r.text
    r = await rig.as_("minami", "POST", "/api/v1/drills", json={"scenario": DRILL})
    assert r.status_code == 404, r.text  # another tenant's: it does not exist for them
    r = await rig.as_("trainer", "POST", "/api/v1/drills", json={"scenario": "name: x\n"})
    assert r.status_code == 422 and any("events: Field required" in p for p in r.json()["problems"]), r.text
    r = await rig.as_("trainer", "POST", "/api/v1/drills", json={"scenario": DRILL})
    assert r.status_code == 201, r.text
    d = r.json()
    assert d["running"] and d["tenant"] == "kita" and d["started_by"] == "trainer"
    again = await rig.as_("trainer", "POST", "/api/v1/drills", json={"scenario": DRILL})
    assert again.status_code == 409 and "is running" in again.json()["detail"]
    # the banner's question
    running = (await rig.as_("op", "GET", "/api/v1/drills", params={"running": "true"})).json()
    assert [x["id"] for x in running["data"]] == [d["id"]]
    assert (await rig.as_("minami", "GET", "/api/v1/drills", params={"running": "true"})).json()["count"] == 0

    await rig.advance(40)
    alarms = (await rig.as_("op", "GET", "/api/v1/alarms", params={"view": "all_open", "limit": 500})).json()
    pf = [a for a in alarms["data"] if a["name"] == "power_failure"]
    assert {a["station"] for a in pf} == {"KITA-MP-01", "KITA-MP-02", "KITA-MP-03"}
    assert all(a["drill_id"] == d["id"] for a in alarms["data"]), alarms
    assert any(a["name"] == "comm_loss" and a["station"] == "KITA-MP-04" for a in alarms["data"])
    journal = store.alarm_journal(rig.system.engine, kinds=["raise"], tenant_ids=["kita"])
    assert journal and all(e["detail"].startswith(f"[DRILL {d['id']}]") for e in journal)
    incidents = (await rig.as_("op", "GET", "/api/v1/incidents")).json()["data"]
    assert [i["drill_id"] for i in incidents] == [d["id"]]
    assert incidents[0]["title"].startswith(f"[DRILL {d['id']}] ")
    # an operator acknowledges one
    first = pf[0]
    r = await rig.as_("op", "POST", f"/api/v1/alarms/{first['id']}/ack", json={})
    assert r.status_code == 200, r.text

    await rig.advance(142)  # past the drill's 3 minutes: it ends itself, its faults undone
    got = (await rig.as_("op", "GET", f"/api/v1/drills/{d['id']}")).json()
    assert not got["running"] and got["outcome"] == "completed"
    assert rig.sim.controller_running("kita-04") and rig.sim.stations["KITA-MP-01"].mains_ok
    rep = (await rig.as_("op", "GET", f"/api/v1/drills/{d['id']}/report")).json()
    kinds = [e["kind"] for e in rep["timeline"]]
    assert kinds[0] == "start" and kinds[-1] == "stop" and kinds.count("fault") >= 3
    acked = [a for a in rep["alarms"] if a["acked_by"] == "op"]
    assert len(acked) == 1 and acked[0]["ack_after_s"] > 0 and acked[0]["after_start_s"] >= 20
    assert rep["summary"]["alarms"] == len(rep["alarms"]) >= 4 and rep["summary"]["incidents"] == 1
    assert rep["summary"]["acked_by"] == ["op"]
    # alarms after the drill are real again
    rig.sim.set_mains(["MINAMI-MP-04"], ok=False)
    await rig.advance(30)
    with rig.system.engine.connect() as conn:
        row = conn.execute(select(alarm.c.drill_id).where(alarm.c.station_id == "MINAMI-MP-04")).first()
    assert row is not None and row.drill_id is None
    assert drills.active_drills(rig.system.engine) == []


async def test_a_trainer_stops_a_drill_and_the_field_is_put_right(rig: Rig) -> None:
    r = await rig.as_("trainer", "POST", "/api/v1/drills", json={"scenario": DRILL})
    assert r.status_code == 201, r.text
    did = r.json()["id"]
    await rig.advance(30)
    assert not rig.sim.stations["KITA-MP-02"].mains_ok and not rig.sim.controller_running("kita-04")
    r = await rig.as_("op", "POST", f"/api/v1/drills/{did}/stop")
    assert r.status_code == 403, r.text  # an operator takes part; a trainer runs it
    r = await rig.as_("trainer", "POST", f"/api/v1/drills/{did}/stop")
    assert r.status_code == 200 and r.json()["outcome"] == "stopped" and r.json()["stopped_by"] == "trainer"
    await rig.advance(10)
    assert rig.sim.stations["KITA-MP-02"].mains_ok and rig.sim.controller_running("kita-04")
    assert rig.sim.pending_changes == 0
    r = await rig.as_("trainer", "POST", f"/api/v1/drills/{did}/stop")
    assert r.status_code == 409


async def test_no_simulator_no_drill(rig: Rig) -> None:
    rig.system.drills = None
    app = create_app(rig.system.api_context(auth=LONG_SESSIONS))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        r = await client.post(
            "/api/v1/drills", json={"scenario": DRILL}, headers=bearer(rig.tokens["trainer"])
        )
    assert r.status_code == 409 and "simulated fleet only" in r.json()["detail"]


STORM = """
name: gen-drill
title: Feeder 1 lost, a generator sent (test)
tenant: kita
events:
  - {at: 5s, power_outage: {area: kita-feeder-1, duration: 30m}}
duration: 40m
"""


async def test_a_generator_sent_arrives_before_the_spill_and_the_station_pumps_again(rig: Rig) -> None:
    await rig.advance(4)
    r = await rig.as_("trainer", "POST", "/api/v1/drills", json={"scenario": STORM})
    assert r.status_code == 201, r.text
    did = r.json()["id"]
    await rig.advance(30)
    board = (await rig.as_("op", "GET", "/api/v1/dispatch")).json()
    mp3 = next(e for e in board["data"] if e["station"] == "KITA-MP-03")
    assert mp3["resources"] == [] and not mp3["late"] and mp3["tto_spill_min"] is not None
    # a viewer may look, not send; another tenant's resource does not exist
    r = await rig.as_("viewer", "POST", "/api/v1/resources/kita-gen-2/assign", json={"station": "KITA-MP-03"})
    assert r.status_code == 403, r.text
    r = await rig.as_("op", "POST", "/api/v1/resources/minami-gen-1/assign", json={"station": "KITA-MP-03"})
    assert r.status_code == 404, r.text
    r = await rig.as_("op", "POST", "/api/v1/resources/kita-gen-2/assign", json={"station": "KITA-MP-03"})
    assert r.status_code == 201, r.text
    sent = r.json()
    assert sent["state"] == "dispatched" and "km from kita-contractor" in sent["estimate"]
    r = await rig.as_("op", "POST", "/api/v1/resources/kita-gen-2/assign", json={"station": "KITA-MP-01"})
    assert r.status_code == 409, r.text
    board = (await rig.as_("op", "GET", "/api/v1/dispatch")).json()
    mp3 = next(e for e in board["data"] if e["station"] == "KITA-MP-03")
    (res,) = mp3["resources"]
    assert res["resource"] == "kita-gen-2" and res["kind"] == "generator" and res["capacity"] == "45 kVA"
    assert res["arrives_in_min"] == pytest.approx(sent["travel_s"] / 60, abs=0.2)
    assert res["late"] is (res["arrives_in_min"] > mp3["tto_spill_min"]) and mp3["late"] is res["late"]
    listed = {x["id"]: x for x in (await rig.as_("op", "GET", "/api/v1/resources")).json()["data"]}
    assert listed["kita-gen-2"]["station"] == "KITA-MP-03" and "minami-gen-1" not in listed
    # it arrives, is connected and runs: the panel has power, a pump runs, the station leaves the board
    rig.clock.advance(0)
    r = await rig.as_("op", "POST", f"/api/v1/assignments/{sent['id']}/state", json={"state": "running"})
    assert r.status_code == 409 and "next state is on_site" in r.json()["detail"]
    for state in ("on_site", "running"):
        r = await rig.as_("op", "POST", f"/api/v1/assignments/{sent['id']}/state", json={"state": state})
        assert r.status_code == 200, r.text
    assert rig.sim.stations["KITA-MP-03"].mains_ok
    rig.sim.stations["KITA-MP-03"].set_level(1.0)  # high enough that the pumps start at once
    await rig.advance(20)
    board = (await rig.as_("op", "GET", "/api/v1/dispatch")).json()
    assert "KITA-MP-03" not in {e["station"] for e in board["data"]}
    assert {"KITA-MP-01", "KITA-MP-02"} <= {e["station"] for e in board["data"]}
    r = await rig.as_("trainer", "POST", f"/api/v1/drills/{did}/stop")
    assert r.status_code == 200
    rep = (await rig.as_("op", "GET", f"/api/v1/drills/{did}/report")).json()
    (x,) = rep["dispatch"]
    assert x["resource"] == "kita-gen-2" and x["assigned_by"] == "op" and x["on_site_at"] is not None
    assert x["verdict"] == "in_time" and x["margin_s"] > 0 and x["spill_expected_at"] is not None
    assert rep["summary"]["in_time"] == 1 and rep["summary"]["too_late"] == 0
