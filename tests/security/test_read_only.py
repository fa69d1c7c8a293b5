"""Read-only toward the field (goal 12): a capture of what the collector sends in a default run.

Modbus: a recording proxy between the collector and every simulated controller parses each request's
MBAP header and function code: only reads (1, 2, 3, 4), never a write (5, 6, 15, 16, 22, 23).
MQTT: a recording proxy between the collector and the broker parses each packet the collector sends.
"An MQTT command" is a PUBLISH to a device: Sparkplug DCMD, NCMD other than "Node Control/Rebirth", or
anything under a JSON device prefix. The collector publishes only its own host STATE (and has it as its
will) and, when `rebirth_requests` is on (the default), NCMD "Node Control/Rebirth" = true, a Sparkplug
protocol request to the edge node to resend its births, which changes no process value. With
`rebirth_requests: false` it publishes no NCMD at all.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from pumpwatch.app.system import System
from pumpwatch.core.clock import FakeClock
from pumpwatch.protocols import sparkplug as spb
from pumpwatch.simulators.fleet import SimulatedFleet
from tests.e2e.fleets import demo_fleet_on_free_ports
from tests.mqtt_broker import MosquittoBroker
from tests.security.conftest import T0
from tests.security.wire import MODBUS_WRITES, ModbusTap, MqttTap
from tests.simulators import mixed_fleet_on_free_ports

pytestmark = pytest.mark.integration


async def wait_for(pred, limit_s: float, what: str, clock: FakeClock | None = None, sim=None) -> None:
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > limit_s:
            raise AssertionError(f"not within {limit_s} s: {what}")
        if clock is not None:
            clock.advance(1.0)
            if sim is not None:
                sim.step_now()
        await asyncio.sleep(0.05)


async def test_modbus_capture_of_a_default_run_has_no_write(sqlite_url: str) -> None:
    fleet = demo_fleet_on_free_ports()
    clock = FakeClock(T0)
    async with SimulatedFleet(fleet, clock, seed=2):
        taps = [ModbusTap(c.port) for c in fleet.controllers.values()]
        for t in taps:
            await t.__aenter__()
        try:
            fleet.controllers = {
                cid: c.model_copy(update={"port": t.port})
                for (cid, c), t in zip(fleet.controllers.items(), taps, strict=True)
            }
            system = await System.prepare(fleet, sqlite_url, clock)
            await system.start_collecting()
            try:
                units = sum(len(c.units) for c in fleet.controllers.values())
                polls = lambda: sum(s.stats.answered for s in system.sources)  # noqa: E731
                await wait_for(lambda: polls() >= 5 * units, 60, "five answered polls of every unit", clock)
            finally:
                await system.stop()
        finally:
            for t in taps:
                await t.__aexit__(None, None, None)
    seen = sum((t.functions() for t in taps), start=__import__("collections").Counter())
    assert not any(t.errors for t in taps)
    assert sum(seen.values()) >= 5 * units  # the capture saw the traffic
    assert set(seen) <= {1, 2, 3, 4}, f"function codes sent: {dict(seen)}"
    assert not set(seen) & MODBUS_WRITES
    assert all(f.protocol == 0 for t in taps for f in t.frames)


async def mqtt_capture(broker: MosquittoBroker, sqlite_url: str, rebirth: bool) -> list:
    fleet = mixed_fleet_on_free_ports()
    fleet.mqtt = broker.broker_config()
    if not rebirth:
        fleet.controllers = {
            cid: c.model_copy(update={"rebirth_requests": False}) if c.protocol == "sparkplug_b" else c
            for cid, c in fleet.controllers.items()
        }
    clock = FakeClock(T0)
    async with SimulatedFleet(fleet, clock, seed=4) as sim, MqttTap(broker.port) as tap:
        fleet.mqtt = fleet.mqtt.model_copy(update={"port": tap.port})
        system = await System.prepare(fleet, sqlite_url, clock)
        await system.start_collecting([s.station for c in fleet.mqtt_controllers() for s in c.stations])
        try:
            assert system.mqtt is not None
            await wait_for(lambda: system.mqtt.received >= 30, 60, "30 MQTT messages in", clock, sim)
        finally:
            await system.stop()
        return tap.packets


def command_publishes(packets, host_id: str = "pumpwatch") -> list[str]:
    """Every PUBLISH that is a command to a device (see the module docstring)."""
    bad = []
    for p in packets:
        if p.kind != 3 or p.topic == f"{spb.NAMESPACE}/STATE/{host_id}":
            continue
        parts = p.topic.split("/")
        if parts[0] == spb.NAMESPACE and len(parts) >= 4 and parts[2] == "NCMD":
            metrics = spb.decode(p.payload).metrics
            if [(m.name, m.value) for m in metrics] == [("Node Control/Rebirth", True)]:
                continue
        bad.append(p.topic)
    return bad


async def test_mqtt_capture_of_a_default_run_has_no_command(mqtt_broker: MosquittoBroker, sqlite_url: str):
    packets = await mqtt_capture(mqtt_broker, sqlite_url, rebirth=True)
    publishes = [p for p in packets if p.kind == 3]
    assert publishes, "the capture saw no PUBLISH at all"
    assert command_publishes(packets) == []
    connects = [p for p in packets if p.kind == 1]
    assert connects and all(p.will_topic == f"{spb.NAMESPACE}/STATE/pumpwatch" for p in connects)
    ncmd = [p.topic for p in publishes if "/NCMD/" in p.topic]
    assert ncmd, "a default run asks the edge node for its births once connected"


async def test_no_ncmd_at_all_with_rebirth_requests_off(mqtt_broker: MosquittoBroker, sqlite_url: str):
    packets = await mqtt_capture(mqtt_broker, sqlite_url, rebirth=False)
    topics = {p.topic for p in packets if p.kind == 3}
    assert topics == {f"{spb.NAMESPACE}/STATE/pumpwatch"}, topics


def test_the_capture_check_catches_a_command() -> None:
    """The checker can fail: a DCMD, a write-like NCMD and a JSON command are flagged."""
    from tests.security.wire import MqttPacket

    write = spb.encode(spb.Payload(1, 0, (spb.metric("Pumps/Pump1/Start", True),)))
    packets = [
        MqttPacket(3, "spBv1.0/g/DCMD/e/d", b""),
        MqttPacket(3, "spBv1.0/g/NCMD/e", write),
        MqttPacket(3, "scada/v1/KITA-MP-01/cmd", b"{}"),
        MqttPacket(3, "spBv1.0/g/NCMD/e", spb.encode(spb.rebirth_request(1))),
        MqttPacket(3, "spBv1.0/STATE/pumpwatch", b"{}"),
    ]
    assert command_publishes(packets) == ["spBv1.0/g/DCMD/e/d", "spBv1.0/g/NCMD/e", "scada/v1/KITA-MP-01/cmd"]
