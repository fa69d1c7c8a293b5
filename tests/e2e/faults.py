"""A fleet written as a user writes one (YAML files, the shipped maps and alarm rules), one station per way
of connecting, and the devices behind it, for the liveness tests (test_fault_matrix.py, test_foreign.py).

Stations (all `manhole_pump`, so a power failure suppresses their comm-loss alarm by the shipped rules):

| station | source | device in the test |
|---|---|---|
| MB-1 | Modbus TCP, its own telemetry unit (`mb-direct`) | `RawModbusServer` (tests/fakes.py) |
| GW-1, GW-2 | Modbus TCP, units 1 and 2 behind one gateway (`mb-gw`) | one `RawModbusServer` |
| J-1 | MQTT JSON (`lte`), publishing every second | `JsonPublisher` (simulators) |
| J-2 | MQTT JSON (`lte-quiet`), publishing only when the test says | `JsonPublisher` |
| SPN, SPD | Sparkplug B node `faults/e1`: its own metrics, and device SPD | `SparkplugEdgeNode` |

Time is a FakeClock moved one second per `step()`; every Modbus source polls once per step and the MQTT
devices publish once per step (Sparkplug: only what changed, report by exception). Bounds are measured in
clock time from the alarm store's `raised_at` / `cleared_at`.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from pumpwatch.alarms import store
from pumpwatch.api.main import create_app
from pumpwatch.app.system import System
from pumpwatch.core.clock import Clock, FakeClock
from pumpwatch.core.config import load_fleet
from pumpwatch.core.config.loader import Fleet
from pumpwatch.simulators.mqtt_json_publisher import JsonPublisher
from pumpwatch.simulators.sparkplug_node import SparkplugEdgeNode
from tests.auth import LONG_SESSIONS, log_in
from tests.clocked import poll_step
from tests.conftest import REPO
from tests.fakes import RawModbusServer
from tests.mqtt_broker import MosquittoBroker
from tests.services import free_port

START = datetime(2026, 7, 1, 1, 0, tzinfo=UTC)  # 10:00 in Tokyo
POLL_S, TIMEOUT_S, COMM_LOSS_AFTER, RECONNECT_MAX_S = 1.0, 0.2, 3, 1.0
EXPECTED_S = 2.0  # MQTT expected_interval_s: silence for 2 × this → comm loss
WATCHDOG_S = 1.0  # the MQTT watchdog's period (collector/sources/mqtt.py)

# Stated bounds (README "What pumpwatch alarms on, and how fast"), in clock seconds, comm_loss on_delay 0.
MODBUS_BOUND_S = COMM_LOSS_AFTER * POLL_S + TIMEOUT_S
DEATH_BOUND_S = WATCHDOG_S
SILENCE_BOUND_S = 2 * EXPECTED_S + WATCHDOG_S

STATION_TYPE = {
    "kind": "manhole_pump",
    "wet_well": {"diameter_m": 1.5},
    "levels": {
        "lwl_m": 0.35,
        "stop_m": 0.5,
        "start_m": 1.0,
        "lag_m": 1.2,
        "hwl_m": 1.4,
        "inlet_invert_m": 1.5,
        "spill_m": 3.0,
        "ground_m": 4.5,
    },
    "pumps": [
        {"name": "pump1", "rated_flow_m3_min": 0.5, "rated_current_a": 10, "power_kw": 2.2},
        {"name": "pump2", "rated_flow_m3_min": 0.5, "rated_current_a": 10, "power_kw": 2.2},
    ],
    "catchment": {"population": 375, "per_capita_l_day": 300},
}
MEASURED: list[tuple[str, str, float, float]] = []  # (station, alarm, bound, measured s), for the README
STATIONS = ("MB-1", "GW-1", "GW-2", "J-1", "J-2", "SPN", "SPD")
# A healthy, quiet station: level between stop and start, pumps idle, mains on.
HEALTHY: dict[str, float | bool] = {
    "wet_well_level_m": 0.8,
    "supply_voltage_v": 200.0,
    "battery_voltage_v": 13.2,
    "mains_failed": False,
}


def controllers(mb_direct: int, mb_gw: int) -> list[dict[str, Any]]:
    modbus = {
        "host": "127.0.0.1",
        "poll_interval_s": POLL_S,
        "timeout_s": TIMEOUT_S,
        "comm_loss_after": COMM_LOSS_AFTER,
        "reconnect_max_s": RECONNECT_MAX_S,
    }
    return [
        {"id": "mb-direct", "port": mb_direct, **modbus, "units": [unit(1, "MB-1")]},
        {"id": "mb-gw", "port": mb_gw, **modbus, "units": [unit(1, "GW-1"), unit(2, "GW-2")]},
        {
            "id": "lte",
            "protocol": "mqtt_json",
            "expected_interval_s": EXPECTED_S,
            "stations": [{"station": "J-1", "map": "mps-metrics"}],
        },
        {
            "id": "lte-quiet",
            "protocol": "mqtt_json",
            "topic_prefix": "scada/quiet",
            "expected_interval_s": EXPECTED_S,
            "stations": [{"station": "J-2", "map": "mps-metrics"}],
        },
        {
            "id": "edge",
            "protocol": "sparkplug_b",
            "group_id": "faults",
            "edge_node_id": "e1",
            "expected_interval_s": EXPECTED_S,
            "reorder_timeout_s": 1,
            "stations": [
                {"station": "SPN", "map": "mps-metrics"},
                {"station": "SPD", "map": "mps-metrics", "device_id": "SPD"},
            ],
        },
    ]


def unit(unit_id: int, station: str) -> dict[str, Any]:
    return {"unit_id": unit_id, "station": station, "map": "mps-canonical"}


def write_fleet(
    folder: Path,
    broker: MosquittoBroker,
    controllers: list[dict[str, Any]],
    stations: tuple[str, ...] = STATIONS,
) -> Path:
    """The fleet's files in `folder`, with copies of the shipped maps and alarm rules; returns fleet.yaml."""
    for d in ("maps", "metrics", "rules"):
        shutil.copytree(REPO / "deploy" / "config" / d, folder / d)
    files = {
        "fleet.yaml": {
            "name": "faults",
            "tenants": "tenants.yaml",
            "stations": "stations.yaml",
            "controllers": "controllers.yaml",
            "register_maps": "maps",
            "metric_maps": "metrics",
            "alarm_rules": "rules/alarms.yaml",
            "mqtt": {
                "host": broker.host,
                "port": broker.port,
                "client_id": "pumpwatch-faults",
                "keepalive_s": 5,
                "reconnect_max_s": RECONNECT_MAX_S,
            },
            "stale_factor": 3,
        },
        "tenants.yaml": {"tenants": [{"id": "city", "name": "City"}]},
        "stations.yaml": {
            "station_types": {"mps": STATION_TYPE},
            "stations": [
                {"id": s, "tenant": "city", "name": s, "type": "mps", "power_area": f"area-{s}"}
                for s in stations
            ],
        },
        "controllers.yaml": {"controllers": controllers},
    }
    for name, body in files.items():
        (folder / name).write_text(yaml.safe_dump(body, sort_keys=False))
    return folder / "fleet.yaml"


def modbus_tables(fleet: Fleet, station: str, server: RawModbusServer, unit_id: int, values: dict) -> None:
    """Put `values` (engineering units) into the server's registers per the station's register map."""
    u = server.unit(unit_id)
    for name, sp in fleet.points[station].items():
        spec = sp.spec
        v = values.get(name, 0)
        if spec.type == "bool":
            u.set(spec.table, spec.address, [1 if v else 0])
            continue
        raw = round((float(v) - spec.offset) / spec.scale)
        if spec.type in ("int32", "uint32"):
            u.set(spec.table, spec.address, [(raw >> 16) & 0xFFFF, raw & 0xFFFF])
        else:
            u.set(spec.table, spec.address, [raw & 0xFFFF])


class Live:
    """An MQTT device's values: a heartbeat that counts on every read (so report-by-exception sources have
    something to say each interval), until `frozen` (then the device has nothing to say: silence)."""

    def __init__(self, **values: float | bool) -> None:
        self.values: dict[str, float | bool] = {**HEALTHY, **values}
        self.frozen = False
        self._beat = 0

    def __call__(self) -> dict[str, float | bool]:
        if not self.frozen:
            self._beat += 1
        return {**self.values, "heartbeat": self._beat}


class Rig:
    """The system under test and its devices. With a FakeClock a step moves time one second (see the
    module docstring); with a real clock (devices in other processes) a step waits `real_step_s` and
    `slack_s` is added to every bound (scheduling on a loaded machine)."""

    def __init__(
        self, system: System, clock: Clock, client: httpx.AsyncClient, broker: MosquittoBroker | None
    ) -> None:
        self.system, self.clock, self.client, self.broker = system, clock, client, broker
        self.real_step_s = 0.25
        self.slack_s = 0.0 if isinstance(clock, FakeClock) else 1.0
        self.on_step: list[Callable[[], Awaitable[None]]] = []  # a device driver's beat
        self.servers: dict[str, RawModbusServer] = {}
        self.live: dict[str, Live] = {}
        self.json: JsonPublisher | None = None
        self.quiet: JsonPublisher | None = None
        self.node: SparkplugEdgeNode | None = None

    @property
    def fleet(self) -> Fleet:
        return self.system.fleet

    async def step(self, seconds: float = 1.0) -> None:
        """Move the clock; every Modbus source polls once; MQTT messages of this step are handled."""
        for beat in self.on_step:
            await beat()
        if not isinstance(self.clock, FakeClock):
            await asyncio.sleep(self.real_step_s)
        elif self.system.sources:
            await poll_step(self.clock, self.system.sources, seconds, limit_s=10, nudge_after_s=None)
        else:
            self.clock.advance(seconds)
        if self.quiet is not None and not self.live["J-2"].frozen and self.quiet_online():
            await self.quiet.publish_once("J-2")
        await asyncio.sleep(0.05)  # the broker's round trip on loopback

    def quiet_online(self) -> bool:
        return self.quiet is not None and self.quiet._links["J-2"].online  # noqa: SLF001 - test device

    async def alarm(self, station: str, name: str = "comm_loss") -> dict | None:
        """The open occurrence of `name` at `station` in the alarm store, after every event is stored."""
        assert self.system.alarms is not None
        await self.system.alarms.drain(until_stored=False)
        rows = store.list_alarms(self.system.engine, open_=True, station_id=station)
        return next((r for r in rows if r["name"] == name), None)

    async def until(
        self, what: str, pred: Callable[[], Any], limit_steps: int = 40, real_limit_s: float = 30
    ) -> Any:
        """Step the clock until `await pred()` is truthy; its value."""
        t0 = time.monotonic()
        for _ in range(limit_steps):
            got = await pred()
            if got:
                return got
            if time.monotonic() - t0 > real_limit_s:
                break
            await self.step()
        raise AssertionError(f"not within {limit_steps} steps: {what}")

    async def raised_within(
        self, station: str, since: datetime, bound_s: float, name: str = "comm_loss"
    ) -> dict:
        """Wait for `name` to be active at `station`; assert it was raised within `bound_s` of `since`."""

        async def active() -> dict | None:
            a = await self.alarm(station, name)
            return a if a is not None and a["active"] else None

        a = await self.until(f"{name} at {station}", active)
        took = ((a["last_raised_at"] or a["raised_at"]) - since).total_seconds()
        assert took <= bound_s + self.slack_s + 1e-6, f"{station} {name} took {took} s, bound {bound_s} s"
        MEASURED.append((station, name, bound_s, round(took, 3)))
        return a

    async def cleared(self, station: str, name: str = "comm_loss", limit_steps: int = 40) -> dict:
        """Wait until `name` at `station` is no longer active (it returned: unacknowledged, or closed)."""

        async def gone() -> dict | None:
            assert self.system.alarms is not None
            await self.system.alarms.drain(until_stored=False)
            rows = store.list_alarms(self.system.engine, open_=None, station_id=station)
            mine = [r for r in rows if r["name"] == name]
            return mine[0] if mine and not any(r["active"] for r in mine) else None

        return await self.until(f"{name} at {station} cleared", gone, limit_steps)

    def quality(self, station: str, point: str = "wet_well_level_m") -> str | None:
        s = self.system.live.station(station).get(point)
        return s.quality.label if s is not None else None

    async def status(self, station: str) -> str:
        r = await self.client.get(f"/api/v1/stations/{station}")
        assert r.status_code == 200, r.text
        return r.json()["status"]

    async def api_alarms(self, station: str, view: str = "open") -> list[dict]:
        r = await self.client.get("/api/v1/alarms", params={"station": station, "view": view})
        assert r.status_code == 200, r.text
        return r.json()["data"]


async def open_rig(stack: AsyncExitStack, folder: Path, broker: MosquittoBroker, db_url: str) -> Rig:
    """Devices up, the system collecting, the API in process, every station's first values in."""
    ports = {"mb-direct": free_port(), "mb-gw": free_port()}
    fleet_yaml = write_fleet(folder, broker, controllers(ports["mb-direct"], ports["mb-gw"]))
    fleet = load_fleet(fleet_yaml.parent)
    clock = FakeClock(START)
    servers = {cid: RawModbusServer(port=p) for cid, p in ports.items()}
    modbus_tables(fleet, "MB-1", servers["mb-direct"], 1, HEALTHY)
    modbus_tables(fleet, "GW-1", servers["mb-gw"], 1, HEALTHY)
    modbus_tables(fleet, "GW-2", servers["mb-gw"], 2, HEALTHY)
    for s in servers.values():
        await stack.enter_async_context(s)
    system = await System.prepare(fleet, db_url, clock)
    await system.start_collecting()
    stack.push_async_callback(system.stop)
    app = create_app(system.api_context(auth=LONG_SESSIONS))
    client = await stack.enter_async_context(
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://faults.test")
    )
    await log_in(client, system.engine, fleet.tenants)
    rig = Rig(system, clock, client, broker)
    rig.servers = servers
    rig.live = {s: Live() for s in ("J-1", "J-2", "SPN", "SPD")}
    mm = fleet.metric_maps["mps-metrics"]
    bc = fleet.mqtt
    assert bc is not None
    ctrl = fleet.controllers
    rig.json = JsonPublisher(bc, ctrl["lte"], {"J-1": (rig.live["J-1"], mm)}, clock, interval_s=1)  # type: ignore[arg-type]
    rig.quiet = JsonPublisher(bc, ctrl["lte-quiet"], {"J-2": (rig.live["J-2"], mm)}, clock, interval_s=1e9)  # type: ignore[arg-type]
    rig.node = SparkplugEdgeNode(
        bc,
        ctrl["edge"],  # type: ignore[arg-type]
        {"SPN": (rig.live["SPN"], mm), "SPD": (rig.live["SPD"], mm)},
        clock,
        interval_s=1,
    )
    for dev in (rig.json, rig.quiet, rig.node):
        await stack.enter_async_context(dev)
        await asyncio.wait_for(dev.wait_online(), 10)

    async def all_good() -> bool:
        return all(rig.quality(s) == "good" for s in STATIONS)

    await rig.until("every station's first good values", all_good)
    return rig


async def rig_context(folder: Path, broker: MosquittoBroker, db_url: str) -> AsyncIterator[Rig]:
    async with AsyncExitStack() as stack:
        yield await open_rig(stack, folder, broker, db_url)
