"""Devices this project did not write, configured only through the documented config format (fleet YAML,
a register map and metric maps written as an integrator writes them from the vendor's documentation):

- a Modbus TCP device served by pyModbusTCP (not pymodbus), in its own process;
- a Sparkplug B edge node written with pysparkplug (not pumpwatch's codec), in its own virtualenv;
- `mosquitto_pub` publishing the README's JSON topics, with an MQTT will.

For each: values read correctly; death, will and silence end in the comm-loss alarm within the stated bound
(plus 1 s of slack: real processes, real time, a loaded machine); recovery clears it. The clock is real.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import struct
import sys
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from pumpwatch.api.main import create_app
from pumpwatch.app.system import System
from pumpwatch.core.clock import SystemClock
from pumpwatch.core.config import load_fleet
from tests.auth import LONG_SESSIONS, log_in
from tests.conftest import REPO
from tests.e2e import faults
from tests.e2e.faults import Rig, write_fleet
from tests.foreign import venv
from tests.mqtt_broker import MosquittoBroker
from tests.services import free_port, service_missing

pytestmark = pytest.mark.integration

POLL_S, TIMEOUT_S, COMM_LOSS_AFTER, EXPECTED_S = 0.5, 0.3, 3, 1.0
MODBUS_BOUND_S = COMM_LOSS_AFTER * POLL_S + TIMEOUT_S
DEATH_BOUND_S = 1.0
SILENCE_BOUND_S = 2 * EXPECTED_S + 1.0

# The vendor's register list, as an integrator copies it into a map (wire addresses, CDAB floats).
VENDOR_MAP = """\
# Vendor RTU "XR-20" register list, rev. 3 (0-based wire addresses; floats low word first)
name: vendor-xr20
address_base: 0
word_order: CDAB
points:
  - {name: mains_failed, table: discrete_input, address: 0, type: bool}
  - {name: pump1_running, table: discrete_input, address: 1, type: bool}
  - {name: pump2_running, table: discrete_input, address: 2, type: bool}
  - {name: pump1_faulted, table: discrete_input, address: 3, type: bool}
  - {name: pump2_faulted, table: discrete_input, address: 4, type: bool}
  - {name: hwl_float, table: coil, address: 0, type: bool}
  - {name: wet_well_level_m, table: holding_register, address: 100, type: int16, scale: 0.001, unit: m,
     valid_min: -0.5, valid_max: 10}
  - {name: pump1_current_a, table: holding_register, address: 101, type: float32, unit: A}
  - {name: pump2_current_a, table: holding_register, address: 103, type: float32, unit: A}
  - {name: pump1_starts, table: input_register, address: 10, type: uint32, word_order: ABCD, kind: counter}
  - {name: supply_voltage_v, table: input_register, address: 20, type: uint16, scale: 0.1, unit: V}
"""
VENDOR_NODE = """\
name: vendor-node
metrics:
  - {name: mains_failed, metric: Power/MainsFail, type: bool}
  - {name: heartbeat, metric: Beat, type: int, kind: counter}
"""
VENDOR_DEVICE = """\
name: vendor-device
metrics:
  - {name: wet_well_level_m, metric: Level, type: float, unit: m, valid_min: -0.5, valid_max: 10}
  - {name: pump1_running, metric: Pump1/Run, type: bool}
  - {name: mains_failed, metric: Power/MainsFail, type: bool}
  - {name: pump1_starts, metric: Starts1, type: int, kind: counter}
  - {name: heartbeat, metric: Beat, type: int, kind: counter}
"""


def float_cdab(x: float) -> list[int]:
    hi, lo = struct.unpack(">HH", struct.pack(">f", x))
    return [lo, hi]


REGISTERS = {  # what the device holds: level 1.234 m, pump 1 running at 12.5 A, 70,000 starts, 203.1 V
    "discrete_inputs": {"0": [False, True, False, False, False]},
    "coils": {"0": [False]},
    "holding_registers": {"100": [1234, *float_cdab(12.5), *float_cdab(0.0)]},
    "input_registers": {"10": [70000 >> 16, 70000 & 0xFFFF], "20": [2031]},
}


class Process:
    """A device in its own process, stopped by its pid only."""

    def __init__(self, *argv: str, stdin: bool = False) -> None:
        self.argv, self.stdin = argv, stdin
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, ready: str | None = None) -> Process:
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.PIPE if self.stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        if ready is not None:
            await self.expect(ready)
        return self

    async def expect(self, line: str, timeout: float = 10) -> None:  # noqa: ASYNC109
        assert self.proc is not None and self.proc.stdout is not None
        try:
            got = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        except TimeoutError:
            got = b""
        if got.decode().strip() != line:
            err = b""
            if self.proc.returncode is not None and self.proc.stderr is not None:
                err = await self.proc.stderr.read()
            raise AssertionError(f"{self.argv[0]}: expected {line!r}, got {got!r} {err.decode()[-2000:]}")

    async def send(self, line: str, ack: str | None = None) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()
        if ack is not None:
            await self.expect(ack)

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.returncode is None:
            os.kill(self.proc.pid, sig)

    async def kill(self) -> None:
        if self.proc is None:
            return
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            await self.proc.wait()
        self.proc = None


async def open_rig(
    stack: AsyncExitStack, folder: Path, broker: MosquittoBroker | None, controllers: list[dict], stations
) -> Rig:
    fleet_yaml = write_fleet(folder, broker, controllers, stations) if broker else None
    if fleet_yaml is None:
        raise AssertionError("a broker is needed for the fleet file")
    (folder / "maps" / "vendor-xr20.yaml").write_text(VENDOR_MAP)
    (folder / "metrics" / "vendor-node.yaml").write_text(VENDOR_NODE)
    (folder / "metrics" / "vendor-device.yaml").write_text(VENDOR_DEVICE)
    fleet = load_fleet(fleet_yaml.parent)
    clock = SystemClock()
    system = await System.prepare(fleet, f"sqlite:///{folder / 'pumpwatch.db'}", clock)
    await system.start_collecting()
    stack.push_async_callback(system.stop)
    app = create_app(system.api_context(auth=LONG_SESSIONS))
    client = await stack.enter_async_context(
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://foreign.test")
    )
    await log_in(client, system.engine, fleet.tenants)
    return Rig(system, clock, client, broker)


async def values(rig: Rig, station: str) -> dict[str, Any]:
    r = await rig.client.get(f"/api/v1/stations/{station}")
    assert r.status_code == 200, r.text
    return {k: (v["value"], v["quality"]) for k, v in r.json()["values"].items()}


async def lost_and_back(rig: Rig, stations: tuple[str, ...], since: float, bound_s: float) -> None:
    """Every one of `stations` raised comm_loss within `bound_s` of `since` (a clock timestamp)."""
    from datetime import UTC, datetime

    at = datetime.fromtimestamp(since, UTC)
    for s in stations:
        await rig.raised_within(s, at, bound_s)


@pytest.fixture(scope="module", autouse=True)
def _figures() -> Iterator[None]:
    """The measured times, for the README's table: test-artifacts/foreign-devices.tsv."""
    first = len(faults.MEASURED)
    yield
    out = REPO / "test-artifacts" / "foreign-devices.tsv"
    out.parent.mkdir(exist_ok=True)
    rows = [f"{s}\t{n}\t{b}\t{t}" for s, n, b, t in faults.MEASURED[first:]]
    out.write_text("station\talarm\tbound_s\tmeasured_s\n" + "\n".join(rows) + "\n")


def stamp(rig: Rig) -> float:
    return rig.clock.now().timestamp()


# --- pyModbusTCP -----------------------------------------------------------------------------------------


async def test_a_pymodbustcp_device(tmp_path: Path, mqtt_broker: MosquittoBroker) -> None:
    port = free_port()
    ctrl = {
        "id": "xr20",
        "host": "127.0.0.1",
        "port": port,
        "poll_interval_s": POLL_S,
        "timeout_s": TIMEOUT_S,
        "comm_loss_after": COMM_LOSS_AFTER,
        "reconnect_max_s": 0.5,
        "units": [{"unit_id": 1, "station": "XR-1", "map": "vendor-xr20"}],
    }
    device = Process(sys.executable, "-m", "tests.foreign.modbus_device", str(port), json.dumps(REGISTERS))
    async with AsyncExitStack() as stack:
        stack.push_async_callback(device.kill)
        await device.start("serving")
        rig = await open_rig(stack, tmp_path, mqtt_broker, [ctrl], ("XR-1",))
        expected = {
            "wet_well_level_m": (1.234, "good"),
            "pump1_running": (True, "good"),
            "pump2_running": (False, "good"),
            "mains_failed": (False, "good"),
            "hwl_float": (False, "good"),
            "pump1_current_a": (12.5, "good"),
            "pump1_starts": (70000.0, "good"),
            "supply_voltage_v": (203.1, "good"),
        }

        async def read_right() -> bool:
            got = await values(rig, "XR-1")
            return all(
                got[k][1] == q and (got[k][0] == v or (isinstance(v, float) and abs(got[k][0] - v) < 1e-6))
                for k, (v, q) in expected.items()
            )

        await rig.until("the vendor's values, decoded per the map", read_right)
        # stops answering: the process is frozen, its connection open
        since = stamp(rig)
        device.signal(signal.SIGSTOP)
        await lost_and_back(rig, ("XR-1",), since, MODBUS_BOUND_S)
        device.signal(signal.SIGCONT)
        await rig.cleared("XR-1")
        # dies: connection reset, then refused
        await device.kill()
        since = stamp(rig)
        await lost_and_back(rig, ("XR-1",), since, MODBUS_BOUND_S)
        await device.start("serving")
        await rig.cleared("XR-1")
        await rig.until("values good again", read_right)


# --- pysparkplug ----------------------------------------------------------------------------------------


async def test_a_pysparkplug_edge_node(tmp_path: Path, mqtt_broker: MosquittoBroker) -> None:
    python = venv.ensure()
    ctrl = {
        "id": "vendor-edge",
        "protocol": "sparkplug_b",
        "group_id": "vendor",
        "edge_node_id": "n1",
        "expected_interval_s": EXPECTED_S,
        "stations": [
            {"station": "FN", "map": "vendor-node"},
            {"station": "FD", "map": "vendor-device", "device_id": "D1"},
        ],
    }
    script = str(REPO / "tests" / "foreign" / "sparkplug_node.py")
    argv = (str(python), script, mqtt_broker.host, str(mqtt_broker.port), "vendor", "n1", "D1")
    async with AsyncExitStack() as stack:
        rig = await open_rig(stack, tmp_path, mqtt_broker, [ctrl], ("FN", "FD"))
        node = Process(*argv, stdin=True)
        stack.push_async_callback(lambda: node.kill())
        await node.start("ok")
        beating = True

        async def beat() -> None:
            if beating and node.proc is not None:
                await node.send("beat", "ok")

        rig.on_step.append(beat)

        async def born() -> bool:
            got = await values(rig, "FD")
            return got["wet_well_level_m"] == (1.05, "good") and got["pump1_starts"] == (42.0, "good")

        await rig.until("the node's births decoded", born)
        assert (await values(rig, "FD"))["pump1_running"] == (True, "good")
        assert (await values(rig, "FN"))["mains_failed"] == (False, "good")
        await node.send("dset Level 1.5", "ok")

        async def level_15() -> bool:
            return (await values(rig, "FD"))["wet_well_level_m"] == (1.5, "good")

        await rig.until("DDATA", level_15)
        # DDEATH: the device alone
        since = stamp(rig)
        await node.send("ddeath", "ok")
        await lost_and_back(rig, ("FD",), since, DEATH_BOUND_S)
        assert (await values(rig, "FN"))["heartbeat"][1] == "good"
        await node.send("dbirth", "ok")
        await rig.cleared("FD")
        # silence: connected, nothing published
        beating = False
        since = stamp(rig)
        await lost_and_back(rig, ("FN", "FD"), since, SILENCE_BOUND_S)
        beating = True
        await rig.cleared("FN")
        await rig.cleared("FD")
        # a clean disconnect: pysparkplug 0.6 sends NDEATH with the *next* session's bdSeq (a quirk we accept)
        beating = False  # a disconnected pysparkplug node cannot publish
        since = stamp(rig)
        await node.send("stop", "ok")
        await lost_and_back(rig, ("FN", "FD"), since, DEATH_BOUND_S)
        await node.kill()
        await node.start("ok")
        beating = True
        await rig.cleared("FN")
        await rig.cleared("FD")
        # killed: the broker publishes the will (NDEATH with the birth's bdSeq)
        since = stamp(rig)
        await node.kill()
        await lost_and_back(rig, ("FN", "FD"), since, DEATH_BOUND_S)
        await node.start("ok")
        await rig.cleared("FN")
        await rig.cleared("FD")


# --- mosquitto_pub --------------------------------------------------------------------------------------


def mosquitto_pub() -> str:
    found = shutil.which("mosquitto_pub")
    if found is None:
        service_missing("mosquitto_pub", "install it with `apt-get install mosquitto-clients`; .ci/run does")
    return found  # type: ignore[return-value]


async def test_mosquitto_pub_as_a_json_device(tmp_path: Path, mqtt_broker: MosquittoBroker) -> None:
    pub = mosquitto_pub()
    ctrl = {
        "id": "lte",
        "protocol": "mqtt_json",
        "expected_interval_s": EXPECTED_S,
        "stations": [{"station": "MQ-1", "map": "mps-metrics"}],
    }
    host, port = mqtt_broker.host, str(mqtt_broker.port)
    topic = "scada/v1/MQ-1"
    base = (pub, "-h", host, "-p", port, "-q", "1")

    async def once(t: str, payload: str, *extra: str) -> None:
        p = await Process(*base, "-t", t, "-m", payload, *extra).start()
        assert p.proc is not None
        assert await asyncio.wait_for(p.proc.wait(), 10) == 0

    def device() -> Process:  # one long session (`-l`: a line of stdin, a message) with its will
        will = (
            "--will-topic",
            f"{topic}/status",
            "--will-payload",
            "offline",
            "--will-retain",
            "--will-qos",
            "1",
        )
        return Process(*base, "-i", "mq-1", "-k", "5", "-t", topic, "-l", *will, stdin=True)

    async with AsyncExitStack() as stack:
        rig = await open_rig(stack, tmp_path, mqtt_broker, [ctrl], ("MQ-1",))
        dev = device()
        stack.push_async_callback(lambda: dev.kill())
        await dev.start()
        await once(f"{topic}/status", "online", "-r")
        publishing = True

        async def publish() -> None:
            if publishing and dev.proc is not None:
                # keys are the metric map's wire names (`metric`, else the point name)
                wire = {"WetWell/Level": 0.77, "Pumps/Pump1/Running": True}
                body = {"ts": int(time.time() * 1000), "values": wire}
                await dev.send(json.dumps(body))

        rig.on_step.append(publish)
        await once(f"{topic}/pump1_starts", json.dumps({"v": 12, "q": "good"}))

        async def read_right() -> bool:
            got = await values(rig, "MQ-1")
            return got["wet_well_level_m"] == (0.77, "good") and got["pump1_running"] == (True, "good")

        await rig.until("values from mosquitto_pub", read_right)
        assert (await values(rig, "MQ-1"))["pump1_starts"][0] == 12.0
        # killed: the broker publishes the will, `status` offline
        since = stamp(rig)
        await dev.kill()
        await lost_and_back(rig, ("MQ-1",), since, DEATH_BOUND_S)
        dev = device()
        await dev.start()
        await once(f"{topic}/status", "online", "-r")
        await rig.cleared("MQ-1")
        # silence: the session lives, nothing is published
        publishing = False
        since = stamp(rig)
        await lost_and_back(rig, ("MQ-1",), since, SILENCE_BOUND_S)
        publishing = True
        await rig.cleared("MQ-1")
        # a clean shutdown: the last words are `status` offline, retained
        publishing = False
        since = stamp(rig)
        await once(f"{topic}/status", "offline", "-r")
        await lost_and_back(rig, ("MQ-1",), since, DEATH_BOUND_S)
        await once(f"{topic}/status", "online", "-r")
        publishing = True
        await rig.cleared("MQ-1")
