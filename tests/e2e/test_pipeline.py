"""Simulator → Modbus TCP → collector → historian + alarms → API, on SQLite and on PostgreSQL.

The clock is a FakeClock: nothing moves until the test advances it, so values can be compared with the
simulator's state exactly (to the register map's resolution), and minutes pass in milliseconds.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from pumpwatch.api.main import create_app
from pumpwatch.app.system import System
from pumpwatch.core.clock import FakeClock
from pumpwatch.simulators.fleet import SimulatedFleet
from tests.auth import LONG_SESSIONS, log_in
from tests.clocked import poll_step
from tests.e2e.fleets import demo_fleet_on_free_ports, wait_until

pytestmark = pytest.mark.integration

START = datetime(2026, 7, 1, 1, 0, tzinfo=UTC)  # 10:00 in Tokyo


class Rig:
    def __init__(self, sim: SimulatedFleet, system: System, clock: FakeClock, client: httpx.AsyncClient):
        self.sim, self.system, self.clock, self.client = sim, system, clock, client

    def polls(self) -> int:
        return sum(s.stats.answered + s.stats.missed for s in self.system.sources)  # finished unit polls

    async def advance(self, seconds: float, step: float = 2.0) -> None:
        """Move the clock in steps of one poll interval and let every source poll at each step."""
        moved = 0.0
        while moved < seconds - 1e-9:
            await poll_step(self.clock, self.system.sources, step, limit_s=10, nudge_after_s=None)
            moved += step

    async def stations(self, **params) -> dict[str, dict]:
        r = await self.client.get("/api/v1/stations", params=params)
        assert r.status_code == 200, r.text
        return {s["id"]: s for s in r.json()["data"]}


@pytest.fixture
async def rig(db_url: str) -> AsyncIterator[Rig]:
    fleet = demo_fleet_on_free_ports()
    clock = FakeClock(START)
    async with SimulatedFleet(fleet, clock, seed=11) as sim:
        system = await System.prepare(fleet, db_url, clock)
        await system.start_collecting()
        transport = httpx.ASGITransport(app=create_app(system.api_context(auth=LONG_SESSIONS)))
        async with httpx.AsyncClient(transport=transport, base_url="http://pumpwatch.test") as client:
            await log_in(client, system.engine, fleet.tenants)
            r = Rig(sim, system, clock, client)
            units = sum(len(s.units) for s in system.sources)
            await wait_until(lambda: r.polls() >= units, 10, "the first poll of every unit")
            try:
                yield r
            finally:
                await system.stop()


def resolution(sp, expected: float) -> float:
    """Half a count of a scaled integer; a float32 carries about 7 significant digits."""
    return 1e-6 * max(1.0, abs(expected)) if sp.spec.type == "float32" else sp.spec.scale / 2 + 1e-9


async def test_live_values_match_the_simulator_to_the_maps_resolution(rig: Rig) -> None:
    await rig.advance(20)
    stations = await rig.stations()
    assert len(stations) == 12
    for sid, st in stations.items():
        truth = rig.sim.stations[sid].point_values()
        points = rig.system.fleet.points[sid]
        assert st["status"] in ("normal", "alarm"), (sid, st["status"])
        for name in points:  # measured points (derived ones have their own tests)
            pv = st["values"][name]
            assert pv["quality"] == "good", (sid, name, pv)
            expected = truth[name]
            if points[name].spec.is_state:
                assert pv["value"] is bool(expected), (sid, name)
            else:
                assert pv["value"] == pytest.approx(
                    float(expected), abs=resolution(points[name], expected)
                ), (
                    sid,
                    name,
                )
            assert pv["observed_at"].endswith("+00:00")


async def test_history_holds_every_poll_and_downsamples(rig: Rig) -> None:
    await rig.advance(120)
    await rig.system.writer.flush()
    url = "/api/v1/stations/KITA-MP-01/points/wet_well_level_m/history"
    end = rig.clock.now() + timedelta(seconds=1)  # the range is half-open: [start, end)
    params = {"start": START.isoformat(), "end": end.isoformat(), "max_points": 1000}
    raw = (await rig.client.get(url, params=params)).json()
    assert raw["downsampled"] is False
    # the first poll at 0 s, then one every 2 s for 120 s
    assert len(raw["data"]) == 61, [p["t"][14:19] for p in raw["data"]]
    ts = [p["t"] for p in raw["data"]]
    assert ts == sorted(ts)
    down = (await rig.client.get(url, params={**params, "max_points": 10})).json()
    assert down["downsampled"] is True
    assert 1 < len(down["data"]) <= 10
    assert sum(p["count"] for p in down["data"]) == 61
    values = [p["value"] for p in raw["data"]]
    assert min(values) <= min(p["min"] for p in down["data"]) + 1e-9
    # A replayed batch changes nothing (samples are keyed by point and time).
    from pumpwatch.core import historian

    pid = rig.system.catalog[("KITA-MP-01", "wet_well_level_m")]
    before = len(historian.read_history(rig.system.engine, pid, START, end, 10_000))
    historian.write_samples(rig.system.engine, [(pid, START, 9.99, 0)])
    after = historian.read_history(rig.system.engine, pid, START, end, 10_000)
    assert len(after) == before and after[0].value != 9.99


async def test_a_stopped_station_is_never_shown_live(rig: Rig) -> None:
    await rig.advance(4)
    await rig.sim.stop_controller("kita-03")
    await rig.advance(8)  # comm_loss_after = 3 missed polls at 2 s
    await rig.system.alarms.drain()  # the status comes from the comm-loss alarm (alarms/status.py)
    stations = await rig.stations()
    dead = stations["KITA-MP-03"]
    measured = rig.system.fleet.points["KITA-MP-03"]  # derived estimates (TTO) carry on by dead reckoning
    assert dead["status"] == "comm_loss"
    assert {dead["values"][n]["quality"] for n in measured} == {"comm_loss"}
    assert all(dead["values"][n]["value"] is None for n in measured)
    others = [sid for sid in stations if sid != "KITA-MP-03"]
    assert all(
        stations[s]["values"][n]["quality"] == "good" for s in others for n in rig.system.fleet.points[s]
    )
    await rig.system.alarms.drain()
    alarms = (await rig.client.get("/api/v1/alarms", params={"station": "KITA-MP-03"})).json()["data"]
    assert [a["name"] for a in alarms] == ["comm_loss"]
    # It comes back within the bounded backoff (real time: reconnect_max_s, whatever the fake clock does).
    await rig.sim.start_controller("kita-03")
    t0 = time.monotonic()
    while time.monotonic() - t0 < 15:
        await rig.advance(2)
        await rig.system.alarms.drain()
        if (await rig.stations())["KITA-MP-03"]["status"] != "comm_loss":
            break
    back = (await rig.stations())["KITA-MP-03"]["values"]
    assert all(back[n]["quality"] == "good" for n in measured)
    await rig.system.alarms.drain()
    (rtn,) = (await rig.client.get("/api/v1/alarms", params={"station": "KITA-MP-03"})).json()["data"]
    assert (rtn["name"], rtn["active"], rtn["state"]) == (
        "comm_loss",
        False,
        "unacked_rtn",
    )  # until acknowledged
    r = await rig.client.post(f"/api/v1/alarms/{rtn['id']}/ack", json={})
    assert r.status_code == 200 and r.json()["state"] == "normal"
    assert (await rig.client.get("/api/v1/alarms", params={"station": "KITA-MP-03"})).json()["count"] == 0


async def test_values_turn_stale_when_the_collector_stops(rig: Rig) -> None:
    await rig.advance(4)
    for t in rig.system._tasks[:1]:  # the collector dies silently: no comm_loss sample is ever written
        t.cancel()
    stale_after = rig.system.fleet.stale_after_s("KITA-MP-01")
    rig.clock.advance(stale_after - 1)
    assert (await rig.stations())["KITA-MP-01"]["values"]["wet_well_level_m"]["quality"] == "good"
    rig.clock.advance(2)
    st = (await rig.stations())["KITA-MP-01"]
    assert st["status"] == "stale"
    assert {v["quality"] for v in st["values"].values()} <= {"stale", "not_available"}
    # An API in another process reads the latest_value table: the same rule holds there.
    await rig.system.writer.flush()
    ctx = rig.system.api_context(in_process_live=False, auth=LONG_SESSIONS)
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://other", headers=rig.client.headers
    ) as other:
        body = (await other.get("/api/v1/stations/KITA-MP-01")).json()
    assert body["status"] == "stale"
    assert body["values"]["wet_well_level_m"]["value"] is not None


async def test_power_failure_and_high_water_alarms(rig: Rig) -> None:
    await rig.advance(10)
    rig.sim.set_mains(["KITA-MP-05"], ok=False)
    await rig.advance(2)
    await rig.system.alarms.drain()
    active = (await rig.client.get("/api/v1/alarms")).json()["data"]
    assert "power_failure" not in [a["name"] for a in active]  # on-delay: not yet
    # 3 s on-delay from the first poll that sees mains lost: the one at +2 s, or under load the one at +4 s
    await rig.advance(6)
    await rig.system.alarms.drain()
    active = (await rig.client.get("/api/v1/alarms", params={"station": "KITA-MP-05"})).json()["data"]
    assert [a["name"] for a in active] == ["power_failure"]
    assert active[0]["priority"] == "critical" and active[0]["state"] == "unacked_active"
    # With the pumps stopped the well fills; high water follows within the hour.
    for _ in range(120):
        await rig.advance(30, step=30)
        if rig.sim.stations["KITA-MP-05"].point_values()["wet_well_level_m"] > 1.5:
            break
    await rig.advance(10)
    await rig.system.alarms.drain()
    names = {
        a["name"]
        for a in (await rig.client.get("/api/v1/alarms", params={"station": "KITA-MP-05"})).json()["data"]
    }
    assert {"power_failure", "high_water", "hwl_float"} <= names
    assert not {n for n in names if n.startswith("pump")}  # consequences of the outage stay suppressed
    assert (await rig.stations())["KITA-MP-05"]["status"] == "power_failure"
    # Power back: pumps restart, the level falls, every alarm clears and the journal has each step.
    rig.sim.set_mains(["KITA-MP-05"], ok=True)
    for _ in range(60):
        await rig.advance(30, step=30)
        if rig.sim.stations["KITA-MP-05"].point_values()["wet_well_level_m"] < 1.2:
            break
    await rig.advance(20)
    await rig.system.alarms.drain()
    returned = (await rig.client.get("/api/v1/alarms", params={"station": "KITA-MP-05"})).json()["data"]
    assert returned and all(a["state"] == "unacked_rtn" and not a["active"] for a in returned)
    for a in returned:
        r = await rig.client.post(f"/api/v1/alarms/{a['id']}/ack", json={"comment": "seen"})
        assert r.status_code == 200
    assert (await rig.client.get("/api/v1/alarms", params={"station": "KITA-MP-05"})).json()["count"] == 0
    from pumpwatch.alarms import store

    done = store.list_alarms(rig.system.engine, open_=False, station_id="KITA-MP-05")
    assert {a["name"] for a in done} >= {"power_failure", "high_water"}
    for a in done:
        journal = store.alarm_journal(rig.system.engine, a["id"])
        # Each 30-s jump of the clock leaves the inputs older than stale_after_s until the next poll: the
        # active alarms say so (input_not_good, then input_good); the lifecycle is the rest.
        held = [e["kind"] for e in journal if e["kind"].startswith("input_")]
        assert held == ["input_not_good", "input_good"] * (len(held) // 2)
        assert [e["kind"] for e in journal if not e["kind"].startswith("input_")] == ["raise", "clear", "ack"]
        assert journal[-1]["actor"] == "tanaka"
    other = (await rig.client.get("/api/v1/alarms", params={"station": "KITA-MP-01"})).json()
    assert other["count"] == 0
