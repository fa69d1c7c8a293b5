"""The seed city's whole fleet runs on one machine: 208 manhole pump stations, 2 relay and 1 stormwater
pump station and 5 plants of two municipalities, over Modbus (direct and RTU gateways), MQTT JSON and
Sparkplug B — every station live in the API."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from pumpwatch.api.main import create_app
from pumpwatch.app.system import System
from pumpwatch.core.clock import ScaledClock
from pumpwatch.core.config import load_fleet
from pumpwatch.simulators.fleet import SimulatedFleet
from tests.auth import log_in
from tests.mqtt_broker import MosquittoBroker
from tests.simulators import on_free_ports

pytestmark = pytest.mark.integration
CITY = Path(__file__).resolve().parents[2] / "deploy" / "config" / "city"


def test_city_fleet_is_the_plan() -> None:
    fleet = load_fleet(CITY)
    kinds = Counter(s.kind for s in fleet.stations.values())
    assert kinds == {"manhole_pump": 208, "relay_pump": 2, "stormwater_pump": 1, "treatment_plant": 5}
    assert all(len(s.pumps) == 2 for s in fleet.stations.values() if s.kind == "manhole_pump")
    relay = fleet.stations["HNM-RPS-1"]
    assert len(relay.pumps) == 4 and sum(p.standby for p in relay.pumps) == 1
    assert sum(p.rated_flow_m3_min for p in relay.pumps if not p.standby) == pytest.approx(8.1)
    storm = fleet.stations["HNM-SPS-1"]
    assert sum(p.rated_flow_m3_min for p in storm.pumps) == 192 and {p.drive for p in storm.pumps} == {
        "engine"
    }
    assert set(fleet.tenants) == {"hanamizu", "yamabe", "centre"} and fleet.centre == "centre"
    assert len({s.power_area for s in fleet.stations.values()}) >= 8
    protocols = Counter(getattr(c, "protocol", "modbus_tcp") for c in fleet.controllers.values())
    assert set(protocols) == {"modbus_tcp", "mqtt_json", "sparkplug_b"}
    assert all(s.id in fleet.points for s in fleet.stations.values())  # every station has a source


async def test_city_fleet_runs_on_one_machine(mqtt_broker: MosquittoBroker, sqlite_url: str) -> None:
    fleet = on_free_ports(load_fleet(CITY))
    fleet.mqtt = mqtt_broker.broker_config(client_id="pumpwatch-city-test")
    clock = ScaledClock(speed=2.0)
    t0 = time.monotonic()
    cpu0 = time.process_time()
    async with SimulatedFleet(fleet, clock, seed=1):
        system = await System.prepare(fleet, sqlite_url, clock)
        await system.start_collecting()
        app = create_app(system.api_context())
        try:
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://t"
            ) as client:
                await log_in(client, system.engine, fleet.tenants)
                statuses: Counter[str] = Counter()
                while time.monotonic() - t0 < 45:
                    body = (await client.get("/api/v1/stations")).json()
                    statuses = Counter(s["status"] for s in body["data"])
                    if body["count"] == 216 and statuses["normal"] + statuses["alarm"] == 216:
                        break
                    await asyncio.sleep(0.5)
                assert statuses["normal"] + statuses["alarm"] == 216, statuses
                live_after = time.monotonic() - t0
                # and it keeps up: polls on time, nothing rejected
                await asyncio.sleep(5)
                # Keeping up is a speed claim, measured with figures in `make bench` (0 late polls up to
                # 5,000 stations there); here, on a CI machine shared with the rest of the suite, a
                # cycle that overran now and then is tolerated, a collector that falls behind is not.
                late = sum(s.stats.late_cycles for s in system.sources)
                cycles = sum(s.stats.polls / max(1, len(s.units)) for s in system.sources)
                assert late <= 0.02 * cycles, f"{late} late of {cycles:.0f} poll cycles"
                assert system.mqtt is not None
                # Rejections are counted and kept as dead letters by design; alone this run sees none.
                # Sparkplug data that beats the rebirth we ask for on connecting (the nodes were born
                # before we subscribed; a loaded CI machine widens that window) is counted apart as
                # ignored, not rejected: it was 11 and 26 "rejections" in two full-suite runs. The bound
                # for real rejections stays at 1 % of what was received, with the reasons on failure.
                rejected = sum(system.mqtt.rejected.values())
                assert rejected <= 0.01 * system.mqtt.received, dict(system.mqtt.rejected)
                body = (await client.get("/api/v1/stations", params={"tenant": "yamabe"})).json()
                assert body["count"] == 24
        finally:
            await system.stop()
    cpu = time.process_time() - cpu0
    wall = time.monotonic() - t0
    print(f"city fleet: all 216 live after {live_after:.1f} s; CPU {100 * cpu / wall:.0f} % of one core")
