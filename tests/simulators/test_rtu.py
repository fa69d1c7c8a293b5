"""Telemetry RTU: one battery for a gateway's units, on the mains of the station it is installed at; blind
when the battery is flat, back when mains returns."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from pumpwatch.core.clock import FakeClock
from pumpwatch.simulators.fleet import SimulatedFleet
from pumpwatch.simulators.rtu import TelemetryRTU
from tests.simulators import mixed_fleet_on_free_ports, s16, settle, u32

T0 = datetime(2026, 7, 1, 0, 0, tzinfo=UTC)


class Mains:
    def __init__(self) -> None:
        self.ok = True

    def __call__(self) -> bool:
        return self.ok


def test_battery_drains_in_an_outage_then_the_rtu_dies_and_boots_again():
    mains = Mains()
    rtu = TelemetryRTU("gw", mains, T0, battery_hours=2.0, recharge_hours=4.0, boot_s=30)
    rtu.step(T0 + timedelta(minutes=10))
    pv = rtu.point_values()
    assert pv["rtu_battery_voltage_v"] == pytest.approx(13.6, abs=0.05) and not pv["rtu_on_battery"]
    assert pv["rtu_uptime_s"] == 600 and pv["rtu_heartbeat"] == 600
    mains.ok = False
    rtu.step(T0 + timedelta(minutes=70))
    pv = rtu.point_values()
    assert pv["rtu_on_battery"] and pv["rtu_battery_voltage_v"] == pytest.approx(12.8 - 2.3 / 2, abs=0.05)
    assert not pv["rtu_battery_low"]
    rtu.step(T0 + timedelta(minutes=100))
    assert rtu.point_values()["rtu_battery_low"]  # below 11.5 V
    assert rtu.unit_overlay()["battery_low"] is True
    rtu.step(T0 + timedelta(minutes=130))
    assert not rtu.alive and rtu.died_at == T0 + timedelta(minutes=130)  # 10 min + exactly 2 h
    hb = rtu.heartbeat
    assert hb == 130 * 60 - 1  # it died during its last second
    rtu.step(T0 + timedelta(minutes=150))
    assert rtu.heartbeat == hb and rtu.uptime_s == 0
    mains.ok = True
    rtu.step(T0 + timedelta(minutes=150, seconds=30))
    assert not rtu.alive, "booting"
    rtu.step(T0 + timedelta(minutes=150, seconds=31))
    assert rtu.alive and rtu.boots == 1 and rtu.uptime_s == 1
    rtu.step(T0 + timedelta(minutes=151, seconds=30))
    pv = rtu.point_values()
    assert pv["rtu_uptime_s"] == 60 and pv["rtu_heartbeat"] == hb + 60 and not pv["rtu_on_battery"]
    assert rtu.battery_soc == pytest.approx(90 / (4 * 3600))  # recharging from empty over 4 h


def test_a_short_outage_does_not_stop_the_rtu():
    mains = Mains()
    rtu = TelemetryRTU("gw", mains, T0, battery_hours=6.0)
    mains.ok = False
    rtu.step(T0 + timedelta(hours=1))
    mains.ok = True
    rtu.step(T0 + timedelta(hours=2))
    assert rtu.alive and rtu.boots == 0 and rtu.heartbeat == 7200 and rtu.uptime_s == 7200


def test_rtu_determinism_and_arguments():
    def run(step_s: float | None) -> dict:
        mains = Mains()
        rtu = TelemetryRTU("gw", mains, T0, seed=3, battery_hours=0.5)
        t = T0
        end = T0 + timedelta(hours=1)
        cut = T0 + timedelta(minutes=7)
        done = False
        while t < end:
            t = min(end, t + timedelta(seconds=step_s)) if step_s else end
            if not done and t >= cut:
                rtu.step(cut)
                mains.ok = False
                done = True
            rtu.step(t)
        return {**rtu.snapshot(), **rtu.point_values()}

    results = [run(s) for s in (1.0, 13.7, None)]
    assert results[0] == results[1] == results[2]
    with pytest.raises(ValueError):
        TelemetryRTU("gw", Mains(), datetime(2026, 7, 1))
    with pytest.raises(ValueError):
        TelemetryRTU("gw", Mains(), T0, battery_hours=0)


# --- in the fleet, over Modbus TCP ------------------------------------------------------------------------


@pytest.fixture
async def rtu_sim() -> AsyncIterator[tuple[SimulatedFleet, FakeClock]]:
    clock = FakeClock(T0)
    rtu_options = {"battery_hours": 0.25, "boot_s": 30}  # 15 min of battery, to keep the test short
    async with SimulatedFleet(mixed_fleet_on_free_ports(), clock, seed=7, rtu_options=rtu_options) as sim:
        yield sim, clock


async def advance(clock: FakeClock, seconds: float, step_s: float = 60.0) -> None:
    end = clock.monotonic() + seconds
    while clock.monotonic() < end:
        clock.advance(min(step_s, end - clock.monotonic()))
        await settle()


async def connect(sim: SimulatedFleet) -> AsyncModbusTcpClient:
    host, port = sim.address("rtu-a")
    client = AsyncModbusTcpClient(host, port=port, timeout=1, retries=0, reconnect_delay=0)
    assert await client.connect()
    return client


async def test_the_rtu_goes_blind_when_its_battery_runs_flat_and_comes_back(rtu_sim):
    sim, clock = rtu_sim
    assert set(sim.rtus) == {"rtu-a"} and list(sim.servers) == ["relay-1", "storm-1", "wwtp-1", "rtu-a"]
    rtu = sim.rtus["rtu-a"]
    await advance(clock, 120)
    c = await connect(sim)
    try:
        status = (await c.read_input_registers(0, count=4, device_id=9)).registers
        assert 1355 <= status[0] <= 1365 and u32(status[1], status[2]) == 120 and status[3] == 120
        assert (await c.read_discrete_inputs(0, count=2, device_id=9)).bits[:2] == [False, False]

        # MP-A (where the RTU is installed) loses mains; MP-B keeps its own.
        sim.set_mains(["MP-A"], False)
        await advance(clock, 600)
        assert sim.stations["MP-B"].mains_ok
        status = (await c.read_input_registers(0, count=4, device_id=9)).registers
        want = 10.5 + 2.3 * (1 - 600 / 900)  # 11.27 V after 10 of its 15 min
        assert status[0] / 100 == pytest.approx(want, abs=0.05)
        assert (await c.read_discrete_inputs(0, count=2, device_id=9)).bits[:2] == [True, True]
        for unit in (1, 2):  # mps-canonical: IR 14 battery ×0.01 V, DI 13 battery_low, DI 0 mains_failed
            ir = (await c.read_input_registers(13, count=2, device_id=unit)).registers
            assert ir[1] / 100 == pytest.approx(rtu.battery_voltage_v, abs=0.006)
            assert ir[0] == rtu.heartbeat == 720
            di = (await c.read_discrete_inputs(0, count=16, device_id=unit)).bits
            assert di[13] is True
            assert di[0] is (unit == 1), "only MP-A has lost its mains"
        words = (await c.read_input_registers(100, count=2, device_id=3)).registers  # MP-C, float map
        assert words != [0, 0]
        assert (await c.read_input_registers(14, count=1, device_id=3)).registers[0] == round(
            rtu.battery_voltage_v / 0.01
        )

        # 15 min on battery: flat. The RTU stops answering, the stations go on.
        await advance(clock, 301)
        await sim.sync_controllers()
        assert sim.rtu_blind("rtu-a") and not sim.controller_running("rtu-a")
        with pytest.raises(ModbusException):
            await c.read_input_registers(0, count=1, device_id=9)
    finally:
        c.close()
    host, port = sim.address("rtu-a")
    dead = AsyncModbusTcpClient(host, port=port, timeout=1, retries=0, reconnect_delay=0)
    assert not await dead.connect()
    dead.close()
    hb = rtu.heartbeat
    b_tick = sim.stations["MP-B"].tick
    await advance(clock, 300)
    assert sim.stations["MP-B"].tick == b_tick + 300 and rtu.heartbeat == hb
    assert sim.controller_running("relay-1"), "other controllers are not affected"
    await sim.start_controller("rtu-a")
    assert not sim.controller_running("rtu-a"), "a flat RTU cannot be started by hand"

    # Mains returns: the RTU boots (30 s) and serves again on the same address.
    sim.set_mains(["MP-A"], True)
    await advance(clock, 20, step_s=10)
    await sim.sync_controllers()
    assert sim.rtu_blind("rtu-a")
    await advance(clock, 20, step_s=10)
    await sim.sync_controllers()
    assert not sim.rtu_blind("rtu-a") and sim.controller_running("rtu-a")
    c = await connect(sim)
    try:
        status = (await c.read_input_registers(0, count=4, device_id=9)).registers
        uptime = u32(status[1], status[2])
        assert 0 < uptime <= 10 and status[3] == hb + uptime
        assert (await c.read_discrete_inputs(0, count=2, device_id=9)).bits[:2] == [False, False]
        level = (await c.read_input_registers(0, count=1, device_id=2)).registers[0]
        assert s16(level) == round(sim.stations["MP-B"].point_values()["wet_well_level_m"] / 0.01)
    finally:
        c.close()
    assert {t.get_name() for t in sim._power_tasks.values()} == {"simulators.rtu[rtu-a]"}
