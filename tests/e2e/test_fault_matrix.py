"""The fault matrix: every way of connecting × every way its source dies → the comm-loss alarm in the store
within the stated bound, cleared after recovery, and suppressed (not hidden from the journal) under a
power failure that explains it. README "What pumpwatch alarms on, and how fast" states the bounds.

| protocol | ways of dying |
|---|---|
| Modbus direct | stops answering (timeouts), connection refused |
| Modbus gateway unit | the unit stops answering, the gateway answers 0x0B for it, the gateway refuses |
| MQTT JSON | will (`status` offline by the broker), clean offline, silence, this host's broker gone |
| Sparkplug node | NDEATH as will, clean NDEATH, silence, broker gone (with the JSON case) |
| Sparkplug device | DDEATH, silence while its node lives |

The fleet, devices and clock are in tests/e2e/faults.py. Every test also checks that the other stations of
the fleet raised nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.e2e import faults
from tests.e2e.faults import DEATH_BOUND_S, MODBUS_BOUND_S, SILENCE_BOUND_S, STATIONS, Rig
from tests.mqtt_broker import MosquittoBroker

pytestmark = pytest.mark.integration


async def expect_status(rig: Rig, station: str, expected: str | set[str]) -> None:
    """The station's status in the API (alarms/status.py: from active unsuppressed alarms)."""
    got = await rig.status(station)
    assert got in ({expected} if isinstance(expected, str) else expected), (station, got, expected)


@pytest.fixture(scope="module", autouse=True)
def _figures() -> Iterator[None]:
    """The measured times, for the README's table: test-artifacts/fault-matrix.tsv."""
    yield
    out = faults.REPO / "test-artifacts" / "fault-matrix.tsv"
    out.parent.mkdir(exist_ok=True)
    rows = [f"{s}\t{n}\t{b}\t{t}" for s, n, b, t in faults.MEASURED]
    out.write_text("station\talarm\tbound_s\tmeasured_s\n" + "\n".join(rows) + "\n")


@pytest.fixture
async def rig(tmp_path: Path, mqtt_broker: MosquittoBroker, sqlite_url: str) -> AsyncIterator[Rig]:
    async for r in faults.rig_context(tmp_path, mqtt_broker, sqlite_url):
        yield r


async def no_other_comm_loss(rig: Rig, *affected: str) -> None:
    for s in STATIONS:
        if s not in affected:
            a = await rig.alarm(s)
            assert a is None or not a["active"], f"{s} lost too: {a}"


async def killed_then_lost(rig: Rig, stations: tuple[str, ...], bound_s: float) -> list[dict]:
    since = rig.clock.now()
    got = [await rig.raised_within(s, since, bound_s) for s in stations]
    await no_other_comm_loss(rig, *stations)
    for s in stations:
        measured = rig.fleet.points[s]
        snap = rig.system.live.station(s)
        assert {snap[n].quality.label for n in measured if n in snap} == {"comm_loss"}, s
        await expect_status(rig, s, "comm_loss")
        api = [a["name"] for a in await rig.api_alarms(s)]
        assert "comm_loss" in api, (s, api)
    return got


async def recovered(rig: Rig, stations: tuple[str, ...]) -> None:
    for s in stations:
        a = await rig.cleared(s)
        assert a["state"] in ("unacked_rtn", "normal"), a

    async def good() -> bool:
        return all(rig.quality(s) == "good" for s in stations)

    await rig.until("values good again", good)
    for s in stations:
        await expect_status(rig, s, {"normal", "alarm"})


async def stale_at_once(rig: Rig, stations: tuple[str, ...], limit_s: float = 2.0) -> None:
    """A death message reaches the collector within `limit_s` real seconds: every value STALE, no step."""
    t0 = time.monotonic()
    while not all(rig.quality(s) == "stale" for s in stations):
        assert time.monotonic() - t0 < limit_s, {s: rig.quality(s) for s in stations}
        await asyncio.sleep(0.02)


async def power_failure(rig: Rig, station: str) -> None:
    await rig.raised_within(station, rig.clock.now(), 3 + 2 * faults.POLL_S, name="power_failure")


async def suppressed_comm_loss(rig: Rig, station: str, bound_s: float) -> None:
    a = await rig.raised_within(station, rig.clock.now(), bound_s)
    assert a["suppressed_by"] == "power_failure", a
    assert "comm_loss" not in [x["name"] for x in await rig.api_alarms(station)]  # not on the operator's list
    assert "comm_loss" in [x["name"] for x in await rig.api_alarms(station, "hidden")]
    pf = await rig.alarm(station, "power_failure")
    assert pf is not None and pf["active"] and pf["input_quality"] in ("stale", "comm_loss"), pf
    api_pf = next(x for x in await rig.api_alarms(station) if x["name"] == "power_failure")
    assert api_pf["input_not_good_since"] is not None  # the held alarm says why it cannot clear
    await expect_status(rig, station, "power_failure")


# --- Modbus ----------------------------------------------------------------------------------------------


async def test_modbus_direct(rig: Rig) -> None:
    server = rig.servers["mb-direct"]
    # stops answering: the connection stays open, every request times out
    server.unit(1).mode = "silent"
    await killed_then_lost(rig, ("MB-1",), MODBUS_BOUND_S)
    server.unit(1).mode = "ok"
    await recovered(rig, ("MB-1",))
    # connection refused
    await server.stop()
    await killed_then_lost(rig, ("MB-1",), MODBUS_BOUND_S)
    await server.start()
    await recovered(rig, ("MB-1",))
    # under a power failure the comm loss is explained: suppressed, the power failure held
    faults.modbus_tables(rig.fleet, "MB-1", server, 1, {**faults.HEALTHY, "mains_failed": True})
    await power_failure(rig, "MB-1")
    server.unit(1).mode = "silent"
    await suppressed_comm_loss(rig, "MB-1", MODBUS_BOUND_S)
    server.unit(1).mode = "ok"
    await rig.cleared("MB-1")
    faults.modbus_tables(rig.fleet, "MB-1", server, 1, faults.HEALTHY)
    await rig.cleared("MB-1", "power_failure")


async def test_modbus_gateway_unit(rig: Rig) -> None:
    gw = rig.servers["mb-gw"]
    # the unit behind the gateway stops answering (the gateway stays silent too): timeouts for unit 2 only
    gw.unit(2).mode = "silent"
    await killed_then_lost(rig, ("GW-2",), MODBUS_BOUND_S)
    assert rig.quality("GW-1") == "good"
    gw.unit(2).mode = "ok"
    await recovered(rig, ("GW-2",))
    # the gateway answers "target device failed to respond" (0x0B) for it: as silent as a dead unit
    gone = gw.units.pop(2)
    await killed_then_lost(rig, ("GW-2",), MODBUS_BOUND_S)
    gw.units[2] = gone
    await recovered(rig, ("GW-2",))
    # the gateway itself refuses: every unit behind it
    await gw.stop()
    await killed_then_lost(rig, ("GW-1", "GW-2"), MODBUS_BOUND_S)
    await gw.start()
    await recovered(rig, ("GW-1", "GW-2"))
    # power failure at unit 2's station, then unit 2 lost
    faults.modbus_tables(rig.fleet, "GW-2", gw, 2, {**faults.HEALTHY, "mains_failed": True})
    await power_failure(rig, "GW-2")
    gw.unit(2).mode = "silent"
    await suppressed_comm_loss(rig, "GW-2", MODBUS_BOUND_S)
    gw.unit(2).mode = "ok"
    await rig.cleared("GW-2")


# --- MQTT JSON -------------------------------------------------------------------------------------------


async def test_mqtt_json(rig: Rig) -> None:
    assert rig.json is not None and rig.quiet is not None
    # the device's will: the broker publishes `status` offline for it
    await rig.json.kill("J-1")
    await stale_at_once(rig, ("J-1",))
    await killed_then_lost(rig, ("J-1",), DEATH_BOUND_S)
    rig.json.revive("J-1")
    await asyncio.wait_for(rig.json.wait_online(2), 10)
    await recovered(rig, ("J-1",))
    # a clean offline (retained) before disconnecting
    await rig.json.stop("J-1")
    await stale_at_once(rig, ("J-1",))
    await killed_then_lost(rig, ("J-1",), DEATH_BOUND_S)
    rig.json.revive("J-1")
    await asyncio.wait_for(rig.json.wait_online(3), 10)
    await recovered(rig, ("J-1",))
    # silence: the session stays up, nothing is published (a hung modem)
    rig.live["J-2"].frozen = True
    await killed_then_lost(rig, ("J-2",), SILENCE_BOUND_S)
    rig.live["J-2"].frozen = False
    await recovered(rig, ("J-2",))
    # power failure, then the will
    rig.live["J-1"].values["mains_failed"] = True
    await power_failure(rig, "J-1")
    await rig.json.kill("J-1")
    await stale_at_once(rig, ("J-1",))
    await suppressed_comm_loss(rig, "J-1", DEATH_BOUND_S)
    rig.json.revive("J-1")
    await rig.cleared("J-1")


async def test_this_host_loses_its_broker(rig: Rig) -> None:
    """Every MQTT station (JSON and Sparkplug) turns comm loss within the silence bound of its last
    message; the Modbus stations are untouched; all clear when the broker is back."""
    mqtt = ("J-1", "J-2", "SPN", "SPD")
    rig.broker.stop()
    await killed_then_lost(rig, mqtt, SILENCE_BOUND_S)
    rig.broker.start()
    await recovered(rig, mqtt)


# --- Sparkplug B -----------------------------------------------------------------------------------------


async def test_sparkplug_node(rig: Rig) -> None:
    node = rig.node
    assert node is not None
    both = ("SPN", "SPD")
    # NDEATH as the node's will: the node and its device
    await node.kill()
    await stale_at_once(rig, both)
    await killed_then_lost(rig, both, DEATH_BOUND_S)
    node.revive()
    await asyncio.wait_for(node.wait_online(2), 10)
    await recovered(rig, both)
    # a clean NDEATH
    await node.stop()
    await stale_at_once(rig, both)
    await killed_then_lost(rig, both, DEATH_BOUND_S)
    node.revive()
    await asyncio.wait_for(node.wait_online(3), 10)
    await recovered(rig, both)
    # silence: connected, nothing changes, so nothing is published (report by exception)
    rig.live["SPN"].frozen = rig.live["SPD"].frozen = True
    await killed_then_lost(rig, both, SILENCE_BOUND_S)
    rig.live["SPN"].frozen = rig.live["SPD"].frozen = False
    await recovered(rig, both)
    # power failure at the node's station: its comm loss suppressed, the device's (mains on) not
    rig.live["SPN"].values["mains_failed"] = True
    await power_failure(rig, "SPN")
    await node.kill()
    await stale_at_once(rig, both)
    await suppressed_comm_loss(rig, "SPN", DEATH_BOUND_S)
    spd = await rig.raised_within("SPD", rig.clock.now(), DEATH_BOUND_S)
    assert spd["suppressed_by"] is None
    node.revive()
    await rig.cleared("SPN")
    await rig.cleared("SPD")


async def test_sparkplug_device(rig: Rig) -> None:
    node = rig.node
    assert node is not None
    # DDEATH: the device is gone, its node lives on
    await node.device_death("SPD")
    await stale_at_once(rig, ("SPD",))
    await killed_then_lost(rig, ("SPD",), DEATH_BOUND_S)
    assert rig.quality("SPN") == "good"
    await node.rebirth()
    await recovered(rig, ("SPD",))
    # silence of the device alone (its values stop changing: nothing to report), the node's data goes on
    rig.live["SPD"].frozen = True
    await killed_then_lost(rig, ("SPD",), SILENCE_BOUND_S)
    rig.live["SPD"].frozen = False
    await recovered(rig, ("SPD",))
    # power failure at the device's station, then DDEATH
    rig.live["SPD"].values["mains_failed"] = True
    await power_failure(rig, "SPD")
    await node.device_death("SPD")
    await stale_at_once(rig, ("SPD",))
    await suppressed_comm_loss(rig, "SPD", DEATH_BOUND_S)
    await node.rebirth()
    await rig.cleared("SPD")
