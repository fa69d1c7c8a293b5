"""Treatment plant (docs/domain.md §4.3): flows, effluent quality, DO control with blowers, power, 重故障."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta

import pytest
from pymodbus.client import AsyncModbusTcpClient

from pumpwatch.core.clock import FakeClock
from pumpwatch.simulators.fleet import SimulatedFleet
from pumpwatch.simulators.plant import TreatmentPlant
from tests.simulators import (
    assert_decodes_to,
    f32_abcd,
    mixed_fleet,
    mixed_fleet_on_free_ports,
    mixed_station,
    read_unit,
    u32,
)

MIDNIGHT = datetime(2026, 6, 30, 15, 0, tzinfo=UTC)  # 00:00 in Tokyo
T0 = datetime(2026, 7, 1, 0, 0, tzinfo=UTC)  # 09:00 in Tokyo


def plant(start: datetime = T0, **kw) -> TreatmentPlant:
    return TreatmentPlant(mixed_station("WWTP-1"), 7, start, **kw)  # design 10 000 m³/d


def hourly(st: TreatmentPlant, hours: int) -> list[dict]:
    out = []
    for h in range(1, hours + 1):
        st.step(st.start + timedelta(hours=h))
        out.append({**st.point_values(), "true_do": st.do_mg_l})
    return out


def test_a_day_at_the_plant():
    st = plant(MIDNIGHT)
    day = hourly(st, 24)
    inflow = [h["influent_flow_m3_h"] for h in day]
    assert sum(inflow) / 24 == pytest.approx(10000 * 0.75 / 24, rel=0.05), "average = 0.75 × design"
    assert inflow.index(max(inflow)) in (7, 8, 19, 20), "morning or evening peak (§1.3)"
    effluent = [h["effluent_flow_m3_h"] for h in day]
    assert effluent.index(max(effluent)) > inflow.index(max(inflow)) or max(effluent) < max(inflow)
    assert max(effluent) < max(inflow), "the tanks smooth the peaks"
    for h in day:
        assert 100 < h["influent_bod_mg_l"] < 150 and 55 < h["influent_ss_mg_l"] < 85
        assert 1.0 < h["effluent_bod_mg_l"] < 5.0 < 15  # ≈ 2.9 (limit 15)
        assert 0.2 < h["effluent_ss_mg_l"] < 4.0  # ≈ 1.2 (limit 40)
        assert 6.85 < h["effluent_ph"] < 7.15
        assert not h["major_fault"] and not h["minor_fault"]
    # DO tracks its 2 mg/L setpoint while the load is above one blower's turn-down (not at night)
    loaded = [h["true_do"] for h in day[8:23]]
    assert statistics.mean(loaded) == pytest.approx(2.0, abs=0.1) and max(abs(d - 2) for d in loaded) < 0.3
    assert max(h["blowers_running"] for h in day) >= 2 and min(h["blowers_running"] for h in day) == 1
    air = [h["air_flow_m3_min"] for h in day]
    assert max(air) > 2.5 * min(air), "air follows the load"
    assert all(h["receiving_power_kw"] > 40 for h in day)
    kwh_per_m3 = (st.energy_kwh - plant(MIDNIGHT).energy_kwh) / sum(inflow)
    assert 0.25 < kwh_per_m3 < 0.6, "Japanese plants use about 0.3–0.5 kWh/m³"


def test_do_follows_a_new_setpoint():
    st = plant()
    st.step(T0 + timedelta(minutes=30))
    st.set_do_setpoint(1.5)
    st.step(T0 + timedelta(hours=1, minutes=30))
    assert st.do_mg_l == pytest.approx(1.5, abs=0.15)
    assert st.point_values()["do_setpoint_mg_l"] == 1.5
    with pytest.raises(ValueError):
        st.set_do_setpoint(9)


def test_blower_loss_is_a_major_fault_and_suffocates_the_tank():
    st = plant()
    st.step(T0 + timedelta(minutes=30))
    st.set_blower_fault(1)
    st.step(T0 + timedelta(minutes=40))
    pv = st.point_values()
    assert pv["blower1_faulted"] and not pv["blower1_running"] and pv["minor_fault"] and not pv["major_fault"]
    assert pv["blowers_running"] >= 1 and pv["do_mg_l"] == pytest.approx(2.0, abs=0.3), "the others cover"
    st.set_blower_fault(2)
    st.set_blower_fault("blower3")
    st.step(T0 + timedelta(minutes=41))
    pv = st.point_values()
    assert pv["major_fault"] and pv["blowers_running"] == 0 and pv["air_flow_m3_min"] == 0.0
    st.step(T0 + timedelta(minutes=50))
    assert st.point_values()["do_mg_l"] < 0.2
    bod = st.effluent_bod_mg_l
    st.step(T0 + timedelta(hours=3))
    assert st.effluent_bod_mg_l > 2 * bod, "no air: effluent quality degrades over hours"
    with pytest.raises(KeyError):
        st.set_blower_fault(4)


def test_generator_carries_one_blower_and_a_generator_fault_is_a_major_fault():
    st = plant()
    st.step(T0 + timedelta(minutes=30))
    energy = st.energy_kwh
    st.set_mains(False)
    st.step(T0 + timedelta(minutes=30, seconds=10))
    pv = st.point_values()
    assert pv["mains_failed"] and pv["blowers_running"] == 0 and not pv["major_fault"]
    st.step(T0 + timedelta(minutes=32))
    pv = st.point_values()
    assert pv["generator_running"] and pv["on_generator_power"] and pv["blowers_running"] == 1
    assert not pv["major_fault"] and pv["receiving_power_kw"] == 0.0 and st.energy_kwh == energy
    assert st.generator.fuel_l < st.generator.tank_l

    st = plant()
    st.step(T0 + timedelta(minutes=30))
    st.set_mains(False)
    st.set_generator_fault()
    st.step(T0 + timedelta(minutes=30, seconds=59))
    assert not st.point_values()["major_fault"]
    st.step(T0 + timedelta(minutes=31, seconds=1))
    pv = st.point_values()
    assert pv["major_fault"] and pv["generator_fault"] and pv["blowers_running"] == 0
    st.set_mains(True)
    st.step(T0 + timedelta(minutes=32))
    pv = st.point_values()
    assert pv["blowers_running"] >= 1 and not pv["on_generator_power"]


def test_toxic_shock_puts_the_effluent_over_its_limit():
    st = plant()
    st.step(T0 + timedelta(minutes=30))
    st.set_toxic_shock(0.95)
    st.step(T0 + timedelta(minutes=40))
    pv = st.point_values()
    assert pv["do_mg_l"] > 2.5, "the poisoned biomass stops breathing: DO rises (a classic signature)"
    assert not pv["effluent_bod_over_limit"]
    st.step(T0 + timedelta(hours=3, minutes=30))
    pv = st.point_values()
    assert pv["effluent_bod_mg_l"] > 15 and pv["effluent_bod_over_limit"] and pv["major_fault"]
    assert pv["effluent_ph"] < 6.9
    with pytest.raises(ValueError):
        st.set_toxic_shock(1.0)


def test_rain_dilutes_and_washes_out():
    st = plant(noise_sigma=0, diurnal=False)
    st.step(T0 + timedelta(hours=1))
    dry = st.point_values()
    st.set_rain(40)
    st.step(T0 + timedelta(hours=4))
    wet = st.point_values()
    assert wet["rainfall_mm_h"] == 40 and st.rain_factor == 3.0
    assert wet["influent_flow_m3_h"] == pytest.approx(3 * dry["influent_flow_m3_h"], rel=1e-6)
    assert wet["influent_bod_mg_l"] < 0.5 * dry["influent_bod_mg_l"]
    assert wet["effluent_ss_mg_l"] > 4 * dry["effluent_ss_mg_l"]


def test_determinism_does_not_depend_on_call_granularity():
    end = T0 + timedelta(hours=2)
    fault_at = T0 + timedelta(minutes=47)
    results = []
    for step_s in (1.0, 60.0, 7.3, None):
        st = plant()
        t = T0
        done = False
        while t < end:
            t = min(end, t + timedelta(seconds=step_s)) if step_s else end
            if not done and t >= fault_at:
                st.step(fault_at)
                st.set_blower_fault(1)
                st.set_mains(False)
                done = True
            st.step(t)
        results.append(st.snapshot())
    assert all(r == results[0] for r in results[1:])


def test_point_values_cover_the_register_and_metric_maps():
    st = plant()
    st.step(T0 + timedelta(minutes=5))
    pv = st.point_values()
    fleet = mixed_fleet()
    for p in fleet.register_maps["wwtp-canonical"].points:
        assert p.name in pv, p.name
        if p.is_state:
            assert isinstance(pv[p.name], bool), p.name
    for m in fleet.metric_maps["wwtp-metrics"].metrics:
        want = {"bool": bool, "int": int, "float": (int, float)}[m.type]
        assert isinstance(pv[m.name], want), m.name


async def test_wwtp_map_over_modbus():
    clock = FakeClock(T0)
    async with SimulatedFleet(mixed_fleet_on_free_ports(), clock, seed=7) as sim:
        clock.advance(600)
        sim.step_now()
        st = sim.stations["WWTP-1"]
        host, port = sim.address("wwtp-1")
        c = AsyncModbusTcpClient(host, port=port, timeout=1, retries=0, reconnect_delay=0)
        assert await c.connect()
        try:
            pv = st.point_values()
            rmap = sim.fleet.register_maps["wwtp-canonical"]
            assert_decodes_to(await read_unit(c, rmap, 1), pv, rmap)
            ir = (await c.read_input_registers(0, count=54, device_id=1)).registers
            assert f32_abcd(ir[14:16]) == pytest.approx(pv["do_mg_l"], rel=1e-6)
            assert f32_abcd(ir[8:10]) == pytest.approx(pv["effluent_bod_mg_l"], rel=1e-6)
            assert ir[43] == pv["heartbeat"] == 600
            assert u32(ir[46], ir[47]) == pv["influent_total_m3"]
            hr = (await c.read_holding_registers(0, count=6, device_id=1)).registers
            assert hr[0:2] == [0x4000, 0x0000]  # 2.0 as float32 ABCD
            assert f32_abcd(hr[2:4]) == 15.0 and f32_abcd(hr[4:6]) == 40.0
        finally:
            c.close()
