"""End to end: the demo fleet behind real loopback sockets, read with pymodbus's client, decoded by hand."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from pumpwatch.core.clock import FakeClock, ScaledClock
from pumpwatch.core.config.models import ControllerConfig, ModbusUnit, StationConfig
from pumpwatch.simulators.fleet import SimulatedFleet
from pumpwatch.simulators.kinds import make_station, options_for
from tests.simulators import demo_fleet_on_free_ports, mixed_fleet, mixed_fleet_on_free_ports, settle

T0 = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
async def sim() -> AsyncIterator[tuple[SimulatedFleet, FakeClock]]:
    clock = FakeClock(T0)
    async with SimulatedFleet(demo_fleet_on_free_ports(), clock, seed=7) as s:
        yield s, clock


async def connect(sim: SimulatedFleet, controller: str) -> AsyncModbusTcpClient:
    host, port = sim.address(controller)
    assert host == "127.0.0.1"
    client = AsyncModbusTcpClient(host, port=port, timeout=1, retries=0, reconnect_delay=0)
    assert await client.connect()
    return client


def s16(word: int) -> int:
    return word - 0x10000 if word & 0x8000 else word


def f32_cdab(words: list[int]) -> float:
    return struct.unpack(">f", struct.pack(">HH", words[1], words[0]))[0]


DI_ORDER = [
    "mains_failed", "pump1_running", "pump2_running", "pump1_faulted", "pump2_faulted", "hwl_float",
    "lwl_float", "earth_leakage", "phase_loss", "level_sensor_fault", "door_open", "local_mode",
    "spd_tripped", "battery_low", "panel_overtemp", "both_running",
]  # fmt: skip


async def test_canonical_map_decodes_to_the_physics(sim):
    s, clock = sim
    clock.advance(900)
    s.step_now()
    st = s.stations["KITA-MP-01"]
    st.set_pump_fault(2)
    c = await connect(s, "kita-01")
    try:
        ir = (await c.read_input_registers(0, count=15, device_id=1)).registers
        di = (await c.read_discrete_inputs(0, count=16, device_id=1)).bits
        hr = (await c.read_holding_registers(0, count=5, device_id=1)).registers
    finally:
        c.close()
    pv = st.point_values()
    assert s16(ir[0]) == round(pv["wet_well_level_m"] / 0.01)
    assert abs(s16(ir[0]) * 0.01 - st.level_m) < 0.02
    assert ir[1] == round(pv["pump1_current_a"] / 0.1) and ir[2] == round(pv["pump2_current_a"] / 0.1)
    assert ir[3] == round(pv["supply_voltage_v"] / 0.1) and 1950 <= ir[3] <= 2050
    assert ir[4] << 16 | ir[5] == pv["pump1_run_hours_h"] == int(st.pumps[0].run_hours)
    assert ir[6] << 16 | ir[7] == pv["pump2_run_hours_h"]
    assert ir[8] << 16 | ir[9] == pv["pump1_starts"] > 65535
    assert ir[10] << 16 | ir[11] == pv["pump2_starts"]
    assert ir[12] == pv["starts_last_hour"]
    assert ir[13] == pv["heartbeat"] == 900
    assert ir[14] == round(pv["battery_voltage_v"] / 0.01)
    assert di == [bool(pv[name]) for name in DI_ORDER]
    assert di[4] is True  # pump2_faulted
    assert [s16(w) for w in hr] == [50, 100, 120, 140, 35]


async def test_float_map(sim):
    s, clock = sim
    clock.advance(120)
    s.step_now()
    pv = s.stations["KITA-MP-03"].point_values()
    c = await connect(s, "kita-03")
    try:
        ir = (await c.read_input_registers(0, count=108, device_id=1)).registers
    finally:
        c.close()
    assert ir[0:4] == [0, 0, 0, 0]  # unused, readable
    assert f32_cdab(ir[100:102]) == pytest.approx(pv["wet_well_level_m"], rel=1e-6)
    assert f32_cdab(ir[102:104]) == pytest.approx(pv["pump1_current_a"], rel=1e-6, abs=1e-9)
    assert f32_cdab(ir[106:108]) == pytest.approx(pv["supply_voltage_v"], rel=1e-6)
    assert ir[13] == pv["heartbeat"] == 120


async def test_gateway_serves_several_units(sim):
    s, clock = sim
    clock.advance(60)
    s.step_now()
    c = await connect(s, "minami-gw")
    try:
        levels = {}
        for unit, sid in ((1, "MINAMI-MP-01"), (2, "MINAMI-MP-02"), (4, "MINAMI-MP-04")):
            word = (await c.read_input_registers(0, count=1, device_id=unit)).registers[0]
            assert s16(word) == round(s.stations[sid].point_values()["wet_well_level_m"] / 0.01)
            levels[unit] = word
        assert len(set(levels.values())) > 1, "different stations, different levels"
        words = (await c.read_input_registers(100, count=2, device_id=3)).registers  # unit 3: float map
        assert f32_cdab(words) == pytest.approx(s.stations["MINAMI-MP-03"].point_values()["wet_well_level_m"])
        hr1 = (await c.read_holding_registers(0, count=5, device_id=1)).registers  # mps-small set points
        hr3 = (await c.read_holding_registers(0, count=5, device_id=3)).registers  # mps-ref set points
        assert hr1[1] == 90 and hr3[1] == 100
        r = await c.read_input_registers(0, count=1, device_id=5)
        assert r.isError()
    finally:
        c.close()


async def test_writes_are_refused(sim):
    s, _ = sim
    c = await connect(s, "kita-02")
    try:
        r = await c.write_register(1, 999, device_id=1)
        assert r.isError() and r.exception_code == 1
        r = await c.write_coil(0, True, device_id=1)
        assert r.isError()
        assert (await c.read_holding_registers(1, count=1, device_id=1)).registers == [100]
    finally:
        c.close()


async def test_physics_task_follows_the_clock(sim):
    s, clock = sim
    c = await connect(s, "kita-05")
    try:
        assert (await c.read_input_registers(13, count=1, device_id=1)).registers == [0]
        for _ in range(30):
            clock.advance(10)
            await settle()
        assert (await c.read_input_registers(13, count=1, device_id=1)).registers == [300]
        assert all(st.now == T0.replace(minute=5) for st in s.stations.values())
    finally:
        c.close()


async def test_stop_and_start_a_controller(sim):
    s, clock = sim
    c = await connect(s, "kita-04")
    other = await connect(s, "kita-06")
    try:
        assert not (await c.read_input_registers(0, count=15, device_id=1)).isError()
        await s.stop_controller("kita-04")
        assert not s.controller_running("kita-04")
        await settle()
        with pytest.raises(ModbusException):
            await c.read_input_registers(0, count=15, device_id=1)
        c.close()
        host, port = s.address("kita-04")
        dead = AsyncModbusTcpClient(host, port=port, timeout=1, retries=0, reconnect_delay=0)
        assert not await dead.connect()
        dead.close()
        # the station keeps simulating, the other controllers keep answering
        clock.advance(120)
        await settle()
        assert s.stations["KITA-MP-04"].heartbeat == 120
        assert not (await other.read_input_registers(0, count=1, device_id=1)).isError()
        await s.start_controller("kita-04")
        c = await connect(s, "kita-04")
        assert (await c.read_input_registers(13, count=1, device_id=1)).registers == [120]
    finally:
        c.close()
        other.close()
    with pytest.raises(KeyError):
        await s.stop_controller("nope")


async def test_power_area_outage(sim):
    s, clock = sim
    ids = s.power_area_outage("kita-feeder-1", ok=False)
    assert ids == ["KITA-MP-01", "KITA-MP-02", "KITA-MP-03"]
    clock.advance(30)
    s.step_now()
    c = await connect(s, "kita-02")
    c4 = await connect(s, "kita-04")
    try:
        assert (await c.read_discrete_inputs(0, count=1, device_id=1)).bits[0] is True
        assert (await c.read_input_registers(3, count=1, device_id=1)).registers == [0]
        assert (await c4.read_discrete_inputs(0, count=1, device_id=1)).bits[0] is False
        assert s.power_area_outage("kita-feeder-1", ok=True) == ids
        assert (await c.read_discrete_inputs(0, count=1, device_id=1)).bits[0] is False
    finally:
        c.close()
        c4.close()
    s.set_mains(["MINAMI-MP-04"], False)
    assert s.stations["MINAMI-MP-04"].mains_ok is False
    with pytest.raises(KeyError):
        s.set_mains(["NOPE"], False)
    assert s.power_area_outage("no-such-feeder", ok=False) == []


async def test_scaled_clock_runs_the_physics():
    clock = ScaledClock(T0, speed=60)
    async with SimulatedFleet(demo_fleet_on_free_ports(), clock) as s:
        c = await connect(s, "kita-01")
        try:
            await asyncio.sleep(0.5)  # ≈ 30 simulated seconds
            hb = (await c.read_input_registers(13, count=1, device_id=1)).registers[0]
        finally:
            c.close()
        assert 15 <= hb <= 600  # ≈ 30; generous for a loaded machine


async def test_seeds_are_stable_and_nothing_is_left_running():
    clock = FakeClock(T0)
    fleet = demo_fleet_on_free_ports()
    async with SimulatedFleet(fleet, clock, seed=7) as a:
        levels_a = {sid: st.level_m for sid, st in a.stations.items()}
        assert a.station_seed("KITA-MP-01") == 2559288910  # crc32("7:KITA-MP-01"): the same in every process
        assert any(t.get_name() == "simulators.physics" for t in asyncio.all_tasks())
    assert {t for t in asyncio.all_tasks() if t is not asyncio.current_task()} == set()
    async with SimulatedFleet(fleet, FakeClock(T0), seed=7) as b:
        assert {sid: st.level_m for sid, st in b.stations.items()} == levels_a
    async with SimulatedFleet(fleet, FakeClock(T0), seed=8) as other:
        assert {sid: st.level_m for sid, st in other.stations.items()} != levels_a
    assert len(levels_a) == 12


async def test_every_kind_is_simulated(port: int):
    fleet = demo_fleet_on_free_ports()
    fleet.stations["WWTP-1"] = StationConfig(
        id="WWTP-1", tenant="kita", name="plant", kind="treatment_plant", plant={"design_flow_m3_d": 5000}
    )
    fleet.controllers["plant"] = ControllerConfig(
        id="plant",
        host="127.0.0.1",
        port=port,
        units=[ModbusUnit(unit_id=1, station="WWTP-1", map="mps-canonical")],
    )
    async with SimulatedFleet(fleet, FakeClock(T0)) as s:
        assert type(s.stations["WWTP-1"]).__name__ == "TreatmentPlant"
        assert "plant" in s.servers and len(s.servers) == 10
        c = await connect(s, "plant")
        try:  # a map of another kind: the points the plant does not have read as zeros
            assert (await c.read_holding_registers(0, count=5, device_id=1)).registers == [0] * 5
            assert (await c.read_discrete_inputs(0, count=1, device_id=1)).bits[0] is False  # mains_failed
        finally:
            c.close()


async def test_bind_failure_cleans_up():
    fleet = demo_fleet_on_free_ports()
    taken = fleet.controllers["kita-01"].port
    fleet.controllers["kita-08"] = fleet.controllers["kita-08"].model_copy(update={"port": taken})
    with pytest.raises(RuntimeError):
        async with SimulatedFleet(fleet, FakeClock(T0)):
            pass
    # everything bound before the failure was released again
    fleet.controllers.pop("kita-08")
    async with SimulatedFleet(fleet, FakeClock(T0)) as s:
        assert s.controller_running("kita-01")


async def test_a_fleet_with_every_kind():
    """tests/simulators/fleets/mixed: one station of each kind over Modbus, an RTU gateway, and stations
    that only MQTT controllers serve (simulated and stepped all the same)."""
    fleet = mixed_fleet_on_free_ports()
    clock = FakeClock(T0)
    options = {"noise_sigma": 0.0, "initial_counters": False}
    kinds = {"relay_pump": {"generator_start_delay_s": 12.0}}
    async with SimulatedFleet(fleet, clock, station_options=options, kind_options=kinds) as s:
        models = {sid: type(st).__name__ for sid, st in s.stations.items()}
        assert models == {
            "RELAY-1": "RelayPumpStation",
            "RELAY-2": "RelayPumpStation",
            "STORM-1": "StormwaterPumpStation",
            "STORM-2": "StormwaterPumpStation",
            "WWTP-1": "TreatmentPlant",
            "WWTP-2": "TreatmentPlant",
            "MP-A": "ManholePumpStation",
            "MP-B": "ManholePumpStation",
            "MP-C": "ManholePumpStation",
            "MP-D": "ManholePumpStation",
        }
        assert sorted(s.servers) == sorted(c.id for c in fleet.modbus_controllers())
        assert s.stations["RELAY-2"].generator.start_delay_s == 12.0
        assert s.stations["WWTP-2"].q_avg_m3_d == 4000 * 0.75
        for _ in range(3):
            clock.advance(20)
            await settle()
        assert all(st.now == T0 + timedelta(seconds=60) for st in s.stations.values())
        assert s.stations["MP-D"].heartbeat == 60, "MQTT-only stations step too"
        # every point the configuration gives a station has a value from its model (or its RTU)
        for sid, points in fleet.points.items():
            pv = s.stations[sid].point_values()
            for name in points:
                if name.startswith("rtu_"):
                    assert name in s.rtus["rtu-a"].point_values()
                else:
                    assert name in pv, (sid, name)
        for ctrl in fleet.modbus_controllers():
            c = await connect(s, ctrl.id)
            try:
                for u in ctrl.units:
                    r = await c.read_discrete_inputs(0, count=1, device_id=u.unit_id)
                    assert not r.isError(), (ctrl.id, u.unit_id)
            finally:
                c.close()


async def test_station_options_are_checked():
    fleet = mixed_fleet_on_free_ports()
    with pytest.raises(TypeError):
        SimulatedFleet(fleet, FakeClock(T0), station_options={"noise_sigmaa": 0})
    with pytest.raises(TypeError):
        SimulatedFleet(fleet, FakeClock(T0), kind_options={"treatment_plant": {"generator_start_delay": 3}})
    with pytest.raises(ValueError):
        SimulatedFleet(fleet, FakeClock(T0), kind_options={"pumping_station": {}})
    st = make_station(mixed_fleet().stations["STORM-1"], 1, T0, timezone="UTC", base_flow_m3_min=0.5)
    assert st.base_flow_m3_min == 0.5 and options_for("manhole_pump", {"base_flow_m3_min": 1}) == {}
    with pytest.raises(TypeError):
        make_station(mixed_fleet().stations["MP-A"], 1, T0, base_flow_m3_min=0.5)
