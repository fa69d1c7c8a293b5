"""Relay pump station (docs/domain.md §4.1): staged pumps, standby, generator, HV receiving, two gauges."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from pymodbus.client import AsyncModbusTcpClient

from pumpwatch.core.clock import FakeClock
from pumpwatch.simulators.fleet import SimulatedFleet
from pumpwatch.simulators.pumps import derive_stages
from pumpwatch.simulators.relay import RelayPumpStation
from tests.simulators import (
    assert_decodes_to,
    f32_abcd,
    mixed_fleet,
    mixed_fleet_on_free_ports,
    mixed_station,
    read_unit,
    s16,
    u32,
)

T0 = datetime(2026, 7, 1, 0, 0, tzinfo=UTC)  # 09:00 in Tokyo
Q_AVG = 30000 * 225 / 1000 / 1440  # 4.6875 m³/min: 30 000 people × 225 L/d


def quiet(**kw) -> RelayPumpStation:
    """RELAY-1 with constant inflow (no diurnal profile, no noise)."""
    kw.setdefault("initial_counters", False)
    return RelayPumpStation(mixed_station("RELAY-1"), 1, T0, diurnal=False, noise_sigma=0, **kw)


def run(st: RelayPumpStation, seconds: int):
    base = st.tick
    for s in range(1, seconds + 1):
        st.step(st.start + timedelta(seconds=base + s))
        yield base + s


def start_events(st: RelayPumpStation, seconds: int) -> list[tuple[int, int, int, float | None, float]]:
    """(second, pump index, pumps running after, control level, true level) for every pump start."""
    prev = [p.running for p in st.pumps]
    out = []
    for s in run(st, seconds):
        now = [p.running for p in st.pumps]
        for i in range(len(now)):
            if now[i] and not prev[i]:
                out.append((s, i, sum(now), st.control_level_m, st.level_m))
        prev = now
    return out


def test_stages_from_config_or_derived():
    cfg = mixed_station("RELAY-1")
    assert derive_stages(cfg) == [(1.6, 1.0), (1.9, 1.3), (2.2, 1.6)]
    bare = cfg.model_copy(update={"control": None})
    derived = [x for stage in derive_stages(bare) for x in stage]
    assert derived == pytest.approx([1.6, 1.0, 1.9, 1.65, 2.2, 1.95])
    st = quiet()
    assert st.capacity_m3_min == pytest.approx(8.1)  # 3 duty pumps × 2.7 (the standby does not count)
    assert st.q_avg_m3_min == pytest.approx(Q_AVG)


def test_staged_starts_stops_and_rotation():
    st = quiet(initial_level_m=1.2, rain_factor=1.5)  # 7.03 m³/min: more than two pumps, less than three
    events = start_events(st, 3 * 3600)
    first = events[:3]
    assert [n for _, _, n, _, _ in first] == [1, 2, 3]
    for (_, _, _, level, _), start in zip(first, (1.6, 1.9, 2.2), strict=True):
        assert level == pytest.approx(start, abs=0.01)
    assert all(b[0] - a[0] >= 10 for a, b in zip(events, events[1:], strict=False)), "stagger 10 s"
    later = events[3:]
    assert later and all(n == 3 and lvl == pytest.approx(2.2, abs=0.01) for _, _, n, lvl, _ in later)
    started = {i for _, i, _, _, _ in events}
    assert started == {0, 1, 2}, "the lead rotates over the duty pumps; the standby stays in reserve"
    assert st.pumps[3].starts == 0 and st.pumps[3].run_s == 0
    runs = [p.run_s for p in st.pumps[:3]]
    assert max(runs) / min(runs) < 1.5, "the rotation shares the running time"
    assert 1.55 < st.level_m < 2.25 and st.spilled_at is None
    pv = st.point_values()
    assert pv["pumps_running"] in (2, 3) and pv["starts_last_hour"] >= 2
    assert pv["force_main_flow_m3_min"] == pytest.approx(2.7 * pv["pumps_running"], rel=0.02)
    assert 0.11 < pv["discharge_pressure_mpa"] < 0.19  # 12 m static + friction (est.)
    assert pv["pump1_current_a"] in (0.0,) or 50 < pv["pump1_current_a"] < 58


def test_standby_takes_over_a_faulted_duty_pump():
    st = quiet(initial_level_m=2.0, rain_factor=1.5)
    list(run(st, 600))
    assert not st.pumps[3].running
    running = [i for i, p in enumerate(st.pumps) if p.running]
    st.set_pump_fault(running[0] + 1)
    ran = st.pumps[running[0]].run_s
    pv = st.point_values()
    assert pv[f"pump{running[0] + 1}_faulted"] and pv["minor_fault"] and not pv["major_fault"]
    list(run(st, 3600))
    assert st.pumps[3].starts >= 1 and st.pumps[3].run_s > 600, "the standby covers for the faulted pump"
    assert st.pumps[running[0]].run_s == ran and st.spilled_at is None
    st.set_pump_fault(running[0] + 1, False)
    list(run(st, 2))
    assert not st.pumps[3].running, "the duty pump is back: the standby stops"
    assert not st.point_values()["minor_fault"]
    for k in (1, 2, 3, 4):
        st.set_pump_fault(k)
    list(run(st, 1))
    assert st.point_values()["major_fault"] is True  # 重故障: no pump can run automatically


def test_generator_carries_the_station_through_an_outage():
    st = quiet(initial_level_m=1.8)
    list(run(st, 600))
    energy, fuel = st.energy_kwh, st.generator.fuel_l
    st.set_mains(False)
    t_out = st.tick
    gen_on = None
    starts: list[int] = []
    prev = [p.running for p in st.pumps]
    levels = []
    for s in run(st, 3600):
        if gen_on is None and st.generator.running:
            gen_on = s
        now = [p.running for p in st.pumps]
        starts += [s for i in range(4) if now[i] and not prev[i]]
        prev = now
        levels.append(st.level_m)
        if s == t_out + 15:
            pv = st.point_values()
            assert pv["mains_failed"] and not pv["hv_receiving_ok"] and pv["pumps_running"] == 0
            assert not pv["generator_running"] and not pv["major_fault"]
    assert gen_on == t_out + 21  # started 20 s after the outage (visible after that sub-step)
    assert starts[0] == gen_on + 5 and all(b - a >= 10 for a, b in zip(starts, starts[1:], strict=False))
    assert max(levels) < 2.3 and st.spilled_at is None, "the generator carries the pumps"
    pv = st.point_values()
    assert pv["on_generator_power"] and pv["generator_running"] and not pv["major_fault"]
    assert pv["receiving_power_kw"] == 0.0 and pv["hv_voltage_kv"] == 0.0
    assert st.energy_kwh == energy, "the grid meter stands still"
    used = fuel - st.generator.fuel_l
    assert 12 < used < 40, f"about 20 L/h at ~45 kW of a 441 kW set (est.), used {used:.1f} L"
    assert pv["generator_fuel_pct"] == pytest.approx(100 * st.generator.fuel_l / 4000)

    st.set_mains(True)
    t_back = st.tick
    list(run(st, 1))
    assert st.bus_source is None and not any(p.running for p in st.pumps), "changeover break"
    list(run(st, 60))
    assert st.bus_source == "mains" and any(p.running for p in st.pumps)
    assert st.generator.running, "cooling down unloaded"
    st.step(st.start + timedelta(seconds=t_back + 301))
    assert not st.generator.running
    assert st.energy_kwh > energy and st.point_values()["receiving_power_kw"] > 15


def test_a_generator_fault_during_an_outage_stops_pumping_and_spills():
    st = quiet(initial_level_m=1.8)
    list(run(st, 60))
    st.set_mains(False)
    st.set_generator_fault()
    list(run(st, 30))
    pv = st.point_values()
    assert not pv["major_fault"] and pv["minor_fault"] and pv["generator_fault"]
    list(run(st, 31))
    assert st.point_values()["major_fault"], "bus dead for a minute: no pump can run"
    z0 = st.level_m
    st.step(st.now + timedelta(hours=1))
    assert not any(p.running for p in st.pumps)
    assert st.level_m > z0 + 1.0
    st.set_level(5.9)
    st.step(st.now + timedelta(hours=1))
    assert st.spilled_at is not None and st.spilling
    assert st.level_m == pytest.approx(st.spill_level_m)
    assert st.overflow_m3 > 0


def test_hv_protection_trip_puts_the_station_on_the_generator():
    st = quiet(initial_level_m=1.8)
    list(run(st, 60))
    st.set_hv_fault("earth")
    list(run(st, 30))
    pv = st.point_values()
    assert pv["hv_earth_fault"] and not pv["hv_receiving_ok"] and not pv["mains_failed"]
    assert pv["hv_voltage_kv"] == pytest.approx(6.6, rel=0.03)  # the line is live, the breaker open
    assert pv["generator_running"] and pv["on_generator_power"] and pv["minor_fault"]
    st.set_hv_fault("earth", False)
    list(run(st, 10))
    assert st.point_values()["hv_receiving_ok"] and st.bus_source == "mains"
    with pytest.raises(ValueError):
        st.set_hv_fault("lightning")


def test_two_level_gauges():
    st = quiet(initial_level_m=1.2, rain_factor=1.5)
    st.set_gauge_fault(1, "dead")
    events = start_events(st, 600)
    assert events and events[0][3] == pytest.approx(1.6, abs=0.01), "controls on gauge 2"
    pv = st.point_values()
    assert pv["well_level_1_m"] == 0.0 and pv["level_gauge_1_fault"] and pv["level_gauge_deviation"]
    assert pv["minor_fault"] and not pv["major_fault"]
    assert pv["well_level_2_m"] == pytest.approx(st.level_m, abs=0.02)

    st = quiet(initial_level_m=1.2, rain_factor=1.5)
    st.set_gauge_fault(2, "freeze")  # frozen at the level it had: low
    events = start_events(st, 600)
    assert events[0][3] == pytest.approx(1.6, abs=0.01), "the panel uses the higher gauge"
    pv = st.point_values()
    assert pv["well_level_2_m"] == pytest.approx(1.2, abs=0.01) and pv["level_gauge_deviation"]
    assert not pv["level_gauge_2_fault"], "a frozen gauge raises no loop fault"

    st = quiet(initial_level_m=1.2, rain_factor=1.5)
    st.set_gauge_fault(1, "bias", bias_m=0.3)
    events = start_events(st, 600)
    assert events[0][3] == pytest.approx(1.6, abs=0.01)
    assert events[0][4] == pytest.approx(1.3, abs=0.01), "starts early: the panel takes the higher gauge"

    st = quiet(initial_level_m=1.2, rain_factor=1.5)
    st.set_gauge_fault(1, "dead")
    st.set_gauge_fault(2, "dead")
    events = start_events(st, 1800)
    assert st.point_values()["major_fault"], "no level measurement: no automatic control"
    assert events and all(lvl is None for _, _, _, lvl, _ in events)
    assert events[0][4] == pytest.approx(2.8, abs=0.02), "only the HWL float runs the pumps"
    with pytest.raises(ValueError):
        st.set_gauge_fault(1, "stuck")
    with pytest.raises(KeyError):
        st.set_gauge_fault(3, "dead")


def test_inflow_gate_holds_the_sewage_upstream():
    st = quiet(initial_level_m=1.2)
    st.set_inflow_gate(False)
    list(run(st, 600))
    assert st.level_m == pytest.approx(1.2, abs=1e-9)
    assert st.held_m3 == pytest.approx(Q_AVG * 10, rel=1e-6)
    pv = st.point_values()
    assert pv["inflow_gate_closed"] and not pv["inflow_gate_open"]
    st.set_inflow_gate(True)
    list(run(st, 600))
    assert st.held_m3 == pytest.approx(0.0, abs=1e-6) and st.level_m > 1.5


def test_screen_fault_blinds_the_screen_and_raises_the_channel():
    st = quiet(initial_level_m=1.2)
    list(run(st, 900))
    clean = st.inflow_channel_level_m
    st.set_screen_fault()
    st.step(st.now + timedelta(hours=2))
    pv = st.point_values()
    assert pv["screen_fault"] and not pv["screen_running"] and pv["minor_fault"]
    assert pv["inflow_channel_level_m"] == pytest.approx(clean + 0.4, abs=0.05)


def test_h2s_is_higher_at_night():
    day = RelayPumpStation(mixed_station("RELAY-1"), 1, datetime(2026, 7, 1, 0, 0, tzinfo=UTC))  # 09:00
    night = RelayPumpStation(mixed_station("RELAY-1"), 1, datetime(2026, 6, 30, 17, 0, tzinfo=UTC))  # 02:00
    for st in (day, night):
        st.step(st.start + timedelta(hours=1))
    assert night.h2s_ppm > 2 * day.h2s_ppm
    assert day.point_values()["h2s_spare_ppm"] is None


def test_determinism_does_not_depend_on_call_granularity():
    def fresh(seed=7):
        return RelayPumpStation(mixed_station("RELAY-1"), seed, T0)

    end = T0 + timedelta(hours=2)
    fault_at = T0 + timedelta(minutes=47)
    results = []
    for step_s in (1.0, 60.0, 7.3, None):
        st = fresh()
        t = T0
        done = False
        while t < end:
            t = min(end, t + timedelta(seconds=step_s)) if step_s else end
            if not done and t >= fault_at:
                st.step(fault_at)
                st.set_mains(False)
                st.set_pump_fault(2)
                done = True
            st.step(t)
        results.append(st.snapshot())
    assert all(r == results[0] for r in results[1:])
    other = fresh(seed=8)
    other.step(end)
    assert other.snapshot()["volume_m3"] != results[0]["volume_m3"]


def test_point_values_cover_the_register_and_metric_maps():
    st = RelayPumpStation(mixed_station("RELAY-1"), 3, T0)
    st.step(T0 + timedelta(minutes=5))
    pv = st.point_values()
    fleet = mixed_fleet()
    for p in fleet.register_maps["relay-canonical"].points:
        assert p.name in pv, p.name
        if p.is_state:
            assert isinstance(pv[p.name], bool), p.name
    for m in fleet.metric_maps["relay-metrics"].metrics:
        assert m.name in pv, m.name
        want = {"bool": bool, "int": int, "float": (int, float)}[m.type]
        assert isinstance(pv[m.name], want), m.name
        if m.type == "int":
            assert not isinstance(pv[m.name], bool), m.name
    assert pv["pump1_starts"] > 100_000 and pv["pump4_starts"] < pv["pump1_starts"] / 5  # standby: less
    with pytest.raises(ValueError):
        RelayPumpStation(mixed_station("STORM-1"), 1, T0)


# --- over Modbus TCP ---------------------------------------------------------------------------------------


@pytest.fixture
async def relay_sim() -> AsyncIterator[tuple[SimulatedFleet, FakeClock, AsyncModbusTcpClient]]:
    clock = FakeClock(T0)
    async with SimulatedFleet(mixed_fleet_on_free_ports(), clock, seed=7) as sim:
        host, port = sim.address("relay-1")
        client = AsyncModbusTcpClient(host, port=port, timeout=1, retries=0, reconnect_delay=0)
        assert await client.connect()
        try:
            yield sim, clock, client
        finally:
            client.close()


async def test_relay_map_over_modbus(relay_sim):
    sim, clock, c = relay_sim
    clock.advance(900)
    sim.step_now()
    st = sim.stations["RELAY-1"]
    st.set_pump_fault(3)
    pv = st.point_values()
    rmap = sim.fleet.register_maps["relay-canonical"]
    assert_decodes_to(await read_unit(c, rmap, 1), pv, rmap)
    # a few words by hand
    ir = (await c.read_input_registers(0, count=36, device_id=1)).registers
    assert s16(ir[0]) == round(pv["well_level_1_m"] / 0.01)
    assert ir[13] == 0xFFFF, "the spare H2S sensor is not fitted"
    assert ir[15] == pv["heartbeat"] == 900
    assert u32(ir[16], ir[17]) == pv["energy_kwh"] > 65535
    assert u32(ir[28], ir[29]) == pv["pump1_starts"]
    flow = (await c.read_input_registers(100, count=4, device_id=1)).registers
    assert f32_abcd(flow[0:2]) == pytest.approx(pv["force_main_flow_m3_min"], rel=1e-6)
    assert f32_abcd(flow[2:4]) == pytest.approx(pv["discharge_pressure_mpa"], rel=1e-6)
    hr = (await c.read_holding_registers(0, count=9, device_id=1)).registers
    assert [s16(w) for w in hr] == [160, 100, 190, 130, 220, 160, 280, 60, 600]
    di = (await c.read_discrete_inputs(0, count=36, device_id=1)).bits
    assert di[1] is True and di[0] is False  # receiving ok, no outage
    assert di[14] is True and di[12] is False  # pump3 faulted, pump1 not
    assert di[31] is True  # deodorizer
