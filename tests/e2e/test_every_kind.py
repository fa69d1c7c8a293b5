"""Every station kind over every protocol: simulator → Modbus TCP / MQTT JSON / Sparkplug B → collector →
historian → API, with values checked against the simulator to the map's resolution."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from pumpwatch.api.main import create_app
from pumpwatch.app.system import System
from pumpwatch.core.clock import FakeClock
from pumpwatch.core.config.models import PointSpec
from pumpwatch.simulators.fleet import SimulatedFleet
from tests.auth import LONG_SESSIONS, log_in
from tests.conftest import REPO
from tests.mqtt_broker import MosquittoBroker
from tests.simulators import mixed_fleet_on_free_ports

pytestmark = pytest.mark.integration
START = datetime(2026, 7, 1, 1, 0, tzinfo=UTC)

PROTOCOL_OF = {
    "RELAY-1": "modbus",
    "STORM-1": "modbus",
    "WWTP-1": "modbus",
    "MP-A": "modbus (RTU)",
    "MP-B": "modbus (RTU)",
    "MP-C": "modbus (RTU)",
    "MP-D": "mqtt_json",
    "RELAY-2": "sparkplug_b",
    "STORM-2": "sparkplug_b",
    "WWTP-2": "sparkplug_b",
}


class Rig:
    def __init__(self, sim, system, clock, client) -> None:
        self.sim, self.system, self.clock, self.client = sim, system, clock, client

    async def stations(self) -> dict[str, dict]:
        r = await self.client.get("/api/v1/stations")
        assert r.status_code == 200, r.text
        return {s["id"]: s for s in r.json()["data"]}

    def mismatches(self, stations: dict[str, dict]) -> list[str]:
        """Points whose API value is not the simulator's (to the map's resolution), or not good."""
        out = []
        for sid, st in stations.items():
            truth = self.sim.served_values(sid)
            for name, sp in self.system.fleet.points[sid].items():  # measured points, not derived ones
                pv = st["values"][name]
                expected = truth.get(name)
                if expected is None:
                    if pv["quality"] not in ("not_available", "no_data") and pv["value"] is not None:
                        out.append(f"{sid}.{name}: expected n/a, got {pv}")
                    continue
                if pv["quality"] != "good":
                    out.append(f"{sid}.{name}: quality {pv['quality']}")
                    continue
                if sp.spec.is_state:
                    if pv["value"] is not bool(expected):
                        out.append(f"{sid}.{name}: {pv['value']} != {expected}")
                    continue
                tol = resolution(sp.spec, float(expected))
                if not math.isclose(pv["value"], float(expected), abs_tol=tol):
                    out.append(f"{sid}.{name}: {pv['value']} != {expected} (±{tol})")
        return out


def resolution(spec, expected: float) -> float:
    if isinstance(spec, PointSpec) and spec.type != "float32":
        return abs(spec.scale) / 2 + 1e-9
    if isinstance(spec, PointSpec):
        return 1e-6 * max(1.0, abs(expected))  # float32
    return 1e-9 * max(1.0, abs(expected))  # MQTT carries doubles


@pytest.fixture
async def rig(mqtt_broker: MosquittoBroker, sqlite_url: str) -> AsyncIterator[Rig]:
    fleet = mixed_fleet_on_free_ports()
    fleet.mqtt = mqtt_broker.broker_config()
    # the project's alarm rules, as a fleet.yaml `alarm_rules:` would name them: a station's status comes
    # from its alarms (comm loss, power failure), not from its values alone
    fleet.alarm_rules = REPO / "deploy" / "config" / "rules" / "alarms.yaml"
    clock = FakeClock(START)
    async with SimulatedFleet(fleet, clock, seed=5, rtu_options={"battery_hours": 0.25}) as sim:
        system = await System.prepare(fleet, sqlite_url, clock)
        await system.start_collecting()
        app = create_app(system.api_context(auth=LONG_SESSIONS))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            await log_in(client, system.engine, fleet.tenants)
            try:
                yield Rig(sim, system, clock, client)
            finally:
                await system.stop()


async def settle_until(rig: Rig, pred, limit_s: float, what: str, step_s: float = 1.0):
    """Advance the clock a second at a time (polls and publishes happen) until `pred()` holds."""
    t0 = time.monotonic()
    last = None
    while time.monotonic() - t0 < limit_s:
        rig.clock.advance(step_s)
        rig.sim.step_now()  # before any woken poll runs: devices answer with the state at the new time
        await asyncio.sleep(0.05)
        last = await pred()
        if last is True:
            return
    raise AssertionError(f"not within {limit_s} s: {what}: {last}")


async def test_every_kind_over_every_protocol_reaches_the_api(rig: Rig) -> None:
    async def all_live():
        st = await rig.stations()
        bad = {sid for sid, s in st.items() if s["status"] not in ("normal", "alarm")}
        return True if not bad else sorted(bad)

    await settle_until(rig, all_live, 30, "every station live")
    # Move to an instant when every source polls or publishes (intervals 2, 5 and 5 s), then freeze time:
    # once those answers are in, the API shows the simulator's values exactly.
    elapsed = (rig.clock.now() - START).total_seconds()
    rig.clock.advance(math.ceil(elapsed / 10 + 1) * 10 - elapsed)
    rig.sim.step_now()

    async def exact():
        m = rig.mismatches(await rig.stations())
        return True if not m else m[:8]

    t0 = time.monotonic()
    while (m := await exact()) is not True:
        assert time.monotonic() - t0 < 10, m
        await asyncio.sleep(0.1)
    stations = await rig.stations()
    assert {s["kind"] for s in stations.values()} == {
        "manhole_pump",
        "relay_pump",
        "stormwater_pump",
        "treatment_plant",
    }
    for sid in PROTOCOL_OF:
        assert stations[sid]["status"] in ("normal", "alarm"), (sid, PROTOCOL_OF[sid])
    # kind-specific points made it through each protocol
    assert isinstance(stations["RELAY-2"]["values"]["generator_running"]["value"], bool)
    assert stations["STORM-2"]["values"]["outer_level_m"]["quality"] == "good"
    assert 6.0 < stations["WWTP-1"]["values"]["effluent_ph"]["value"] < 8.0
    assert stations["RELAY-1"]["values"]["h2s_spare_ppm"]["quality"] == "not_available"  # 0xFFFF
    assert stations["MP-A"]["values"]["rtu_battery_voltage_v"]["quality"] == "good"


async def test_rtu_on_battery_then_blind(rig: Rig) -> None:
    async def live():
        return (await rig.stations())["MP-B"]["status"] in ("normal", "alarm")

    await settle_until(rig, live, 30, "MP-B live")
    rig.sim.set_mains(["MP-A"], ok=False)  # the RTU's station loses power: the RTU runs on its battery

    async def on_battery():
        v = (await rig.stations())["MP-A"]["values"]["rtu_on_battery"]
        return v["value"] is True and v["quality"] == "good"

    await settle_until(rig, on_battery, 20, "RTU on battery visible")

    async def power_failure_raised():
        # second by second, as polls come: a rule completes its on-delay only on fresh data
        # (alarms/evaluator.py), which the 60-s steps below would never give it
        await rig.system.alarms.drain()
        return any(a["name"] == "power_failure" for a in rig.system.alarms.active_by_station()["MP-A"])

    await settle_until(rig, power_failure_raised, 20, "MP-A power failure raised")

    # The battery lasts 15 min here: then the RTU stops answering and every unit behind it is comm loss,
    # but for the station whose power failure explains it (its comm-loss alarm is suppressed by design).
    blind_status = {"MP-A": "power_failure", "MP-B": "comm_loss", "MP-C": "comm_loss"}

    async def blind():
        await rig.system.alarms.drain()
        st = await rig.stations()
        got = {s: st[s]["status"] for s in blind_status}
        return True if got == blind_status else got

    await settle_until(rig, blind, 60, "all units behind the RTU blind", step_s=60)
    st = await rig.stations()
    for s in blind_status:  # every value of the three units is lost, whatever the status word
        assert {st[s]["values"][n]["quality"] for n in rig.system.fleet.points[s]} == {"comm_loss"}, s
    assert st["MP-A"]["suppressed_alarms"] == ["comm_loss"]
    assert "comm_loss" not in st["MP-A"]["active_alarms"]
    assert st["RELAY-1"]["status"] in ("normal", "alarm")  # others unaffected
