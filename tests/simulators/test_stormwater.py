"""Stormwater pump station (docs/domain.md §4.2): runoff, river, gate, engine pumps, curtailment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pymodbus.client import AsyncModbusTcpClient

from pumpwatch.core.clock import FakeClock
from pumpwatch.simulators.fleet import SimulatedFleet
from pumpwatch.simulators.stormwater import StormwaterPumpStation
from tests.simulators import (
    assert_decodes_to,
    mixed_fleet,
    mixed_fleet_on_free_ports,
    mixed_station,
    read_unit,
    s16,
    u32,
)

T0 = datetime(2026, 7, 1, 0, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def quiet(**kw) -> StormwaterPumpStation:
    """STORM-1 without base-flow noise. 40 ha, C 0.6, 2 × 96 m³/min engine pumps, gate closes at 3.0 m,
    curtailment at 6.5 m (resume below 6.0 m)."""
    kw.setdefault("initial_counters", False)
    return StormwaterPumpStation(mixed_station("STORM-1"), 1, T0, noise_sigma=0, **kw)


def running(st: StormwaterPumpStation) -> list[bool]:
    return [p.running for p in st.pumps]


def test_rational_method_runoff():
    st = quiet(initial_level_m=1.5, gate_area_m2=0)
    st.set_rain(50.0)
    st.step(T0 + timedelta(minutes=15))
    q = 0.6 * 50 * 40 / 360  # Q = C·i·A/360 = 3.33 m³/s
    assert st.runoff_m3_s == pytest.approx(q * (1 - 2.718281828**-1), rel=0.01)  # one time constant
    st.step(T0 + timedelta(hours=2))
    assert st.runoff_m3_s == pytest.approx(q, rel=0.001)
    assert st.inflow_m3_s == pytest.approx(q + 0.2 / 60, rel=0.001)  # plus the dry-weather base flow
    assert all(running(st)), "3.3 m³/s needs both pumps (3.2 m³/s)"
    z = st.level_m
    st.step(T0 + timedelta(hours=3))
    assert st.level_m > z > 2.4, "more than both pumps can take: the level keeps rising"
    with pytest.raises(ValueError):
        st.set_rain(-1)


def test_rain_gauge_intensities_and_total():
    st = quiet(gate_area_m2=0)
    st.set_hyetograph([10, 20, 30], interval_s=600)
    st.step(T0 + timedelta(minutes=30))
    pv = st.point_values()
    assert pv["rain_10min_mm_h"] == pytest.approx(30.0)
    assert pv["rain_60min_mm_h"] == pytest.approx((10 + 20 + 30) / 6)  # mm in the last hour
    assert pv["rain_total_mm"] == pytest.approx(10.0)
    st.step(T0 + timedelta(minutes=45))
    pv = st.point_values()
    assert pv["rain_10min_mm_h"] == 0.0 and pv["rain_total_mm"] == pytest.approx(10.0)
    st.step(T0 + timedelta(hours=8))  # dry for more than 6 h: the next rain is a new event
    st.set_rain(12.0)
    st.step(T0 + timedelta(hours=8, minutes=10))
    pv = st.point_values()
    assert pv["rain_total_mm"] == pytest.approx(2.0) and pv["rain_10min_mm_h"] == pytest.approx(12.0)


def test_river_follows_the_rain_with_a_lag():
    st = quiet(gate_area_m2=0)
    base = st.outer_level_m
    assert base == st.levels.stop_m  # default: the river sits at the pump stop level in dry weather
    st.set_rain(40.0)
    st.step(T0 + timedelta(minutes=10))
    early = st.outer_level_m - base
    st.step(T0 + timedelta(hours=1))
    hour = st.outer_level_m - base
    assert early < 0.3 * hour
    assert hour == pytest.approx(0.08 * 40 * (1 - 2.718281828**-1), rel=0.01)
    st.set_rain(0.0)
    st.step(T0 + timedelta(hours=1, minutes=30))
    assert st.outer_level_m - base > 0.5 * hour, "the river falls slowly after the rain stops"
    st.set_river_level(5.0)
    st.step(T0 + timedelta(hours=1, minutes=31))
    assert st.outer_level_m == 5.0
    st.set_river_level(None)
    st.step(T0 + timedelta(hours=1, minutes=32))
    assert st.outer_level_m < 5.0


def test_gate_closes_on_back_flow_and_reopens():
    st = quiet(initial_level_m=1.9)
    assert st.gate_position_pct == 100
    st.set_river_level(2.5)  # above the inner level but below gate_close_m (3.0): the flap holds, no action
    st.step(T0 + timedelta(minutes=5))
    assert st.gate_position_pct == 100
    st.set_river_level(3.2)
    st.step(T0 + timedelta(minutes=6))
    pv = st.point_values()
    assert pv["discharge_gate_position_pct"] == pytest.approx(50.0, abs=1) and not pv["discharge_gate_open"]
    st.step(T0 + timedelta(minutes=7, seconds=1))
    pv = st.point_values()
    assert pv["discharge_gate_closed"] and pv["discharge_gate_position_pct"] == 0.0
    st.set_river_level(1.0)  # falls below the inner level
    st.step(T0 + timedelta(minutes=10))
    assert st.point_values()["discharge_gate_open"]


def test_gravity_drains_through_the_open_gate():
    st = quiet(initial_level_m=3.0)
    st.set_river_level(1.0)
    st.step(T0 + timedelta(seconds=2))
    assert st.gravity_m3_s == pytest.approx(0.6 * 2.0 * (2 * 9.81 * (3.0 - 2.0)) ** 0.5, rel=0.05)  # sill 2.0
    st.set_gate_fault()
    st.set_river_level(4.0)
    st.step(T0 + timedelta(minutes=10))
    pv = st.point_values()
    assert pv["discharge_gate_fault"] and pv["discharge_gate_position_pct"] == 100 and pv["minor_fault"]
    assert st.gravity_m3_s == 0.0, "one-way: no gravity flow while the river is higher"


def test_engine_pumps_run_through_a_grid_outage_then_curtailment_stops_them():
    st = quiet(initial_level_m=1.8)
    st.set_river_level(4.0)
    st.set_rain(60.0)
    st.step(T0 + timedelta(minutes=30))
    assert all(running(st))
    st.set_mains(False)
    st.step(T0 + timedelta(minutes=30, seconds=5))
    pv = st.point_values()
    assert pv["mains_failed"] and all(running(st)), "engine-driven pumps do not need the grid"
    assert not pv["generator_running"], "the auxiliary generator is still starting"
    st.step(T0 + timedelta(minutes=31))
    pv = st.point_values()
    assert pv["generator_running"] and all(running(st)) and not pv["major_fault"]
    assert pv["pump1_lube_oil_pressure_mpa"] == pytest.approx(0.45)
    assert pv["pump1_cooling_water_temp_c"] > 60
    fuel = list(st.fuel_l)

    st.set_river_level(6.6)  # 運転調整: stop pumping to protect the levee
    st.step(T0 + timedelta(minutes=31, seconds=2))
    pv = st.point_values()
    assert pv["curtailment_active"] and not any(running(st)) and pv["pumps_running"] == 0
    assert pv["pump1_ready"] and pv["pump2_ready"] and not pv["major_fault"], "stopped by rule, not by fault"
    assert pv["pump1_lube_oil_pressure_mpa"] == 0.0
    z = st.level_m
    st.set_river_level(6.2)  # below the stop level, above the resume level: still curtailed
    st.step(T0 + timedelta(minutes=41))
    assert st.curtailment_active and not any(running(st)) and st.level_m > z + 0.5
    st.set_river_level(5.9)
    st.step(T0 + timedelta(minutes=41, seconds=2))
    assert not st.curtailment_active and sum(running(st)) == 1
    st.step(T0 + timedelta(minutes=41, seconds=32))
    assert all(running(st)), "second engine 30 s later (stagger)"
    assert all(f1 < f0 for f0, f1 in zip(fuel, st.fuel_l, strict=True))
    assert st.starting_air_mpa < 2.9
    assert st.point_values()["pump2_starts"] == st.pumps[1].starts == 2


def test_curtailment_floods_the_inner_area():
    st = quiet(initial_level_m=3.0)
    st.set_river_level(6.6)
    st.set_rain(80.0)
    st.step(T0 + timedelta(hours=2))
    assert not any(p.starts for p in st.pumps)
    assert st.spilled_at is not None and st.spilling and st.overflow_m3 > 1000
    assert st.level_m == pytest.approx(st.spill_level_m)


def test_no_engine_start_without_auxiliary_power_or_starting_air():
    st = quiet(initial_level_m=1.5)
    st.set_mains(False)
    st.set_generator_fault()
    st.set_level(2.1)
    st.step(T0 + timedelta(minutes=5))
    pv = st.point_values()
    assert not any(running(st)) and not pv["pump1_ready"]
    assert pv["major_fault"], "no auxiliary power: no engine can start"
    st.set_generator_fault(False)
    st.step(T0 + timedelta(minutes=6))
    assert st.point_values()["generator_running"] and any(running(st))

    st = quiet(initial_level_m=1.5, starting_air_mpa=1.8, compressor_mpa_s=0.0)
    st.set_level(2.5)
    st.step(T0 + timedelta(minutes=2))
    assert sum(running(st)) == 1, "1.8 MPa: one start (−0.4), then below the 1.5 MPa minimum"
    pv = st.point_values()
    assert pv["starting_air_pressure_mpa"] == pytest.approx(1.4) and pv["minor_fault"]
    assert not pv["pump2_ready"]


def test_an_empty_day_tank_stops_the_engine():
    st = quiet(initial_level_m=2.5)
    st.set_fuel(1, 0.05)
    st.step(T0 + timedelta(minutes=5))
    assert not st.pumps[0].running and st.fuel_l[0] == 0.0
    pv = st.point_values()
    assert pv["pump1_fuel_low"] and pv["pump1_engine_fuel_pct"] == 0.0 and pv["minor_fault"]
    assert not pv["major_fault"], "pump 2 can still run"


def test_determinism_does_not_depend_on_call_granularity():
    def fresh(seed=7):
        st = StormwaterPumpStation(mixed_station("STORM-1"), seed, T0)
        st.set_hyetograph([5, 20, 60, 80, 40, 10], interval_s=600)
        return st

    end = T0 + timedelta(hours=2)
    outage_at = T0 + timedelta(minutes=47)
    results = []
    for step_s in (1.0, 60.0, 7.3, None):
        st = fresh()
        t = T0
        done = False
        while t < end:
            t = min(end, t + timedelta(seconds=step_s)) if step_s else end
            if not done and t >= outage_at:
                st.step(outage_at)
                st.set_mains(False)
                done = True
            st.step(t)
        results.append(st.snapshot())
    assert all(r == results[0] for r in results[1:])
    assert results[0]["rain_total_mm"] == pytest.approx((5 + 20 + 60 + 80 + 40 + 10) / 6)


def test_point_values_cover_the_register_and_metric_maps():
    st = StormwaterPumpStation(mixed_station("STORM-1"), 3, T0)
    st.step(T0 + timedelta(minutes=5))
    pv = st.point_values()
    fleet = mixed_fleet()
    for p in fleet.register_maps["storm-canonical"].points:
        assert p.name in pv, p.name
        if p.is_state:
            assert isinstance(pv[p.name], bool), p.name
    for m in fleet.metric_maps["storm-metrics"].metrics:
        want = {"bool": bool, "int": int, "float": (int, float)}[m.type]
        assert isinstance(pv[m.name], want), m.name


async def test_storm_map_over_modbus():
    clock = FakeClock(T0)
    async with SimulatedFleet(mixed_fleet_on_free_ports(), clock, seed=7) as sim:
        st = sim.stations["STORM-1"]
        st.set_river_level(3.4)
        st.set_rain(30.0)
        clock.advance(1800)
        sim.step_now()
        host, port = sim.address("storm-1")
        c = AsyncModbusTcpClient(host, port=port, timeout=1, retries=0, reconnect_delay=0)
        assert await c.connect()
        try:
            pv = st.point_values()
            rmap = sim.fleet.register_maps["storm-canonical"]
            assert_decodes_to(await read_unit(c, rmap, 1), pv, rmap)
            ir = (await c.read_input_registers(0, count=26, device_id=1)).registers
            assert s16(ir[1]) == round(pv["outer_level_m"] / 0.01) and 330 <= s16(ir[1]) <= 350
            assert ir[2] == 0, "gate closed against the river"
            assert ir[3] == 300 and ir[5] == round(pv["rain_total_mm"] / 0.1)  # 30.0 mm/h ×0.1
            assert u32(ir[20], ir[21]) == pv["pump1_starts"] > 65535
            hr = (await c.read_holding_registers(0, count=8, device_id=1)).registers
            assert [s16(w) for w in hr] == [200, 140, 240, 170, 300, 650, 600, 350]
            di = (await c.read_discrete_inputs(0, count=22, device_id=1)).bits
            assert di[14] is True and di[13] is False and di[16] is False  # gate closed, not curtailed
        finally:
            c.close()
