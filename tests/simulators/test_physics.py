from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pumpwatch.core.config.models import StationConfig
from pumpwatch.simulators.inflow import DIURNAL, diurnal_factor
from pumpwatch.simulators.manhole import ManholePumpStation
from tests.simulators import demo_fleet, station_config

T0 = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)  # 19:00 in Tokyo


def quiet(station: str = "KITA-MP-01", **kw) -> ManholePumpStation:
    """Constant average inflow: no diurnal profile, no noise."""
    kw.setdefault("seed", 1)
    return ManholePumpStation(station_config(station), start=T0, diurnal=False, noise_sigma=0, **kw)


def run(st: ManholePumpStation, seconds: int):
    """Step second by second; yield (second, station) after each."""
    base = st.tick
    for s in range(1, seconds + 1):
        st.step(st.start + timedelta(seconds=base + s))
        yield base + s, st


def starts_in(st: ManholePumpStation, seconds: int) -> list[tuple[int, int]]:
    """(second, pump index) of every pump start."""
    prev = [p.running for p in st.pumps]
    out = []
    for s, _ in run(st, seconds):
        for i, p in enumerate(st.pumps):
            if p.running and not prev[i]:
                out.append((s, i))
        prev = [p.running for p in st.pumps]
    return out


def test_average_inflow_of_mps_ref():
    st = quiet()
    assert st.q_avg_m3_min == pytest.approx(0.078125)  # 375 × 300 L/d
    bare = station_config().model_copy(update={"catchment": None})
    assert ManholePumpStation(bare, 1, T0).q_avg_m3_min == pytest.approx(0.078125)  # the default catchment


def test_diurnal_table():
    assert sum(DIURNAL) / 24 == pytest.approx(1.0)
    assert diurnal_factor(8 * 3600) == pytest.approx(1.55)
    assert diurnal_factor(8.5 * 3600) == pytest.approx((1.55 + 1.40) / 2)
    assert diurnal_factor(23.5 * 3600) == pytest.approx((1.00 + 0.80) / 2)  # wraps to hour 0
    mean = sum(diurnal_factor(s) for s in range(0, 86400, 60)) / 1440
    assert mean == pytest.approx(1.0, abs=1e-3)


def test_inflow_follows_local_time():
    start = datetime(2026, 6, 30, 23, 0, tzinfo=UTC)  # 08:00 in Tokyo
    tokyo = ManholePumpStation(station_config(), 1, start, noise_sigma=0)
    utc = ManholePumpStation(station_config(), 1, start, noise_sigma=0, timezone="UTC")
    tokyo.step(start + timedelta(seconds=1))
    utc.step(start + timedelta(seconds=1))
    q = tokyo.q_avg_m3_min / 60
    assert tokyo.inflow_m3_s == pytest.approx(q * 1.55)
    assert utc.inflow_m3_s == pytest.approx(q * 1.00)


def test_pump_cycle_at_average_inflow():
    """docs/domain.md §1.5, MPS-REF at Q_avg: run 2.1 min, fill 11.3 min, cycle 13.4 min; pumps alternate."""
    st = quiet(initial_level_m=0.6, initial_counters=False)
    levels = []
    prev = [False, False]
    starts: list[tuple[int, int]] = []
    stops: list[int] = []
    for s, _ in run(st, 3 * 3600):
        levels.append(st.level_m)
        now = [p.running for p in st.pumps]
        starts += [(s, i) for i in range(2) if now[i] and not prev[i]]
        if any(prev) and not any(now):
            stops.append(s)
        assert not all(now), "at average inflow one pump is enough"
        prev = now
    assert [i for _, i in starts] == [k % 2 for k in range(len(starts))]  # alternating, pump1 first
    cycles = [(b - a) / 60 for (a, _), (b, _) in zip(starts, starts[1:], strict=False)]
    assert len(cycles) >= 10
    assert sum(cycles) / len(cycles) == pytest.approx(13.4, abs=0.5)
    runs = [(stop - start) / 60 for (start, _), stop in zip(starts, stops, strict=False)]
    assert sum(runs) / len(runs) == pytest.approx(2.1, abs=0.2)
    assert max(levels) == pytest.approx(1.0, abs=0.02)
    assert min(levels[120:]) == pytest.approx(0.5, abs=0.02)
    assert st.pumps[0].starts + st.pumps[1].starts == len(starts)
    assert abs(st.pumps[0].starts - st.pumps[1].starts) <= 1
    assert st.starts_last_hour in (4, 5)
    pv = st.point_values()
    assert pv["pump1_starts"] == st.pumps[0].starts and pv["starts_last_hour"] == st.starts_last_hour
    run_h = sum(p.run_s for p in st.pumps) / 3600
    assert run_h == pytest.approx(3 * 2.1 / 13.4, rel=0.1)


def test_power_outage_fills_the_sewer_and_spills():
    st = quiet(initial_level_m=0.8)
    st.set_mains(False)
    q = st.q_avg_m3_min / 60
    to_hwl = (st.storage.volume(1.4) - st.storage.volume(0.8)) / q
    # above the inlet the sewer fills only above the flow already in it (docs/domain.md §3.1): 4 % less
    flowing = st.storage.with_flow(st.q_avg_m3_min)
    to_spill = (flowing.volume(3.0) - flowing.volume(0.8)) / q
    assert to_spill < 0.97 * (st.storage.volume(3.0) - st.storage.volume(0.8)) / q
    # docs/domain.md §3.3 milestone (wet well only below 1.5 m)
    assert to_hwl / 60 == pytest.approx(13.6, abs=0.1)
    st.step(T0 + timedelta(seconds=to_hwl + 2))
    assert st.hwl_float and not any(p.running for p in st.pumps)
    assert st.spilled_at is None
    end = to_spill + 1800
    for minute in range(1, int(end // 60) + 1):  # coarse steps give the same result
        st.step(T0 + timedelta(minutes=minute))
    assert st.spilled_at is not None
    assert (st.spilled_at - T0).total_seconds() == pytest.approx(to_spill, rel=0.005)
    assert st.level_m == pytest.approx(st.spill_level_m)
    assert st.spilling
    elapsed = (st.now - T0).total_seconds()
    assert st.overflow_m3 == pytest.approx(q * (elapsed - to_spill), rel=0.01)
    pv = st.point_values()
    assert pv["mains_failed"] is True and pv["supply_voltage_v"] == 0.0
    assert pv["pump1_running"] is False and pv["pump2_running"] is False
    assert pv["pump1_current_a"] == 0.0
    assert pv["wet_well_level_m"] == pytest.approx(3.0, abs=0.01)
    assert pv["heartbeat"] == int(elapsed)  # the telemetry unit runs on its battery


def test_battery_during_an_outage():
    st = quiet()
    st.step(T0 + timedelta(seconds=10))
    assert st.battery_voltage_v == pytest.approx(13.6, abs=0.05) and not st.battery_low
    st.set_mains(False)
    st.step(T0 + timedelta(hours=3))
    assert st.battery_voltage_v == pytest.approx(12.8 - 2.3 * 3 / 6, abs=0.05)
    assert not st.point_values()["battery_low"]
    st.step(T0 + timedelta(hours=3.6))
    assert st.point_values()["battery_low"]
    st.step(T0 + timedelta(hours=6.1))
    assert not st.telemetry_alive  # flat: the telemetry unit stops counting
    hb = st.heartbeat
    st.step(T0 + timedelta(hours=6.2))
    assert st.heartbeat == hb
    st.set_mains(True)
    st.step(T0 + timedelta(hours=6.3))
    assert st.telemetry_alive and st.heartbeat > hb
    assert st.battery_voltage_v == pytest.approx(13.6, abs=0.05) and not st.battery_low


def test_restart_after_power_returns_is_staggered():
    st = quiet(initial_level_m=1.3)  # above lag: both pumps wanted
    st.set_mains(False)
    st.step(T0 + timedelta(seconds=60))
    assert not any(p.running for p in st.pumps)
    st.set_mains(True)
    list(run(st, 30))
    first, second = sorted(p.started_tick for p in st.pumps)
    assert first - 60 == 2  # restart delay
    assert second - first == 5  # stagger
    assert st.point_values()["both_running"] is True


def test_hwl_float_forces_pumps_when_the_level_sensor_reads_low():
    st = quiet(initial_level_m=0.6, initial_counters=False)
    st.set_sensor_stuck_low()
    hwl_at = None
    max_level = 0.0
    for s, _ in run(st, 25 * 60):
        max_level = max(max_level, st.level_m)
        if hwl_at is None:
            if st.hwl_float:
                hwl_at = s
                assert st.level_m >= 1.39  # the float tripped at 1.40; the pumps ran in that second
            else:
                assert not any(p.running for p in st.pumps), "the panel sees 0 m: no start at 1.0 or 1.2 m"
        elif s == hwl_at + 6:
            assert all(p.running for p in st.pumps), "HWL float: every available pump on"
            pv = st.point_values()
            assert pv["hwl_float"] and pv["both_running"]
            assert pv["wet_well_level_m"] == 0.0 and pv["level_sensor_fault"] is True
        elif s == hwl_at + 70:
            assert not any(p.running for p in st.pumps), "the forced run ends after hwl_min_run_s"
            assert st.level_m < 1.0
    assert hwl_at is not None
    assert hwl_at / 60 == pytest.approx((1.4 - 0.6) * st.storage.wet_well_area_m2 / 0.078125, rel=0.02)
    assert max_level < 1.43
    ran = [p.run_s for p in st.pumps]
    assert min(ran) >= 55  # forced for hwl_min_run_s (second pump 5 s later)


def test_lwl_float_stops_a_forced_run():
    st = quiet(initial_level_m=1.39, hwl_min_run_s=900, initial_counters=False)
    st.set_sensor_stuck_low()
    lows = []
    for _, _ in run(st, 10 * 60):
        if st.lwl_float:
            lows.append(st.level_m)
            assert not any(p.running for p in st.pumps)
    assert lows, "the forced run drew the well down to the LWL float"
    assert min(lows) > 0.3


def test_faulted_pump_is_skipped():
    st = quiet(initial_level_m=0.9, initial_counters=False)
    st.set_pump_fault(1)
    events = starts_in(st, 2 * 3600)
    assert len(events) >= 8
    assert {i for _, i in events} == {1}
    assert st.pumps[0].starts == 0
    pv = st.point_values()
    assert pv["pump1_faulted"] is True and pv["pump1_running"] is False and pv["pump1_current_a"] == 0.0


def test_fault_of_the_running_pump_hands_over():
    st = quiet(initial_level_m=1.1, initial_counters=False)
    list(run(st, 3))
    assert st.pumps[0].running and not st.pumps[1].running
    st.set_pump_fault("pump1")
    assert not st.pumps[0].running
    list(run(st, 6))
    assert st.pumps[1].running


def test_motor_current_and_clog():
    st = quiet(initial_level_m=1.1, initial_counters=False)
    list(run(st, 5))
    p = st.pumps[0]
    assert p.running
    ratio = st.point_values()["pump1_current_a"] / p.rated_current_a
    assert 0.9 <= ratio <= 1.05
    assert st.point_values()["pump2_current_a"] == 0.0
    st.set_clog(1, 1.0)
    list(run(st, 1))
    clogged = st.point_values()["pump1_current_a"] / p.rated_current_a
    assert 1.1 * 0.9 <= clogged <= 1.3 * 1.05
    assert clogged / ratio == pytest.approx(1.3, rel=0.05)
    assert p.flow_m3_s == pytest.approx(0.5 / 60 * 0.6)
    with pytest.raises(ValueError):
        st.set_clog(1, 2.0)


def test_clog_lengthens_the_run():
    clean = quiet(initial_level_m=0.6, initial_counters=False)
    ragged = quiet(initial_level_m=0.6, initial_counters=False)
    ragged.set_clog(1, 1.0)
    ragged.set_clog(2, 1.0)
    list(run(clean, 3600))
    list(run(ragged, 3600))
    per_start = [sum(p.run_s for p in s.pumps) / sum(p.starts for p in s.pumps) for s in (clean, ragged)]
    assert per_start[1] > 1.5 * per_start[0]


def test_rain_brings_in_the_lag_pump():
    st = quiet(initial_level_m=0.9, initial_counters=False)
    st.rain_factor = 10  # 0.78 m³/min > one pump's 0.5
    both = False
    for _, _ in run(st, 20 * 60):
        both = both or st.point_values()["both_running"]
    assert both
    assert st.level_m < 1.4 and st.spilled_at is None


def test_determinism_does_not_depend_on_call_granularity():
    def fresh(seed=7):
        return ManholePumpStation(station_config("KITA-MP-02"), seed, T0)

    end = T0 + timedelta(hours=2)
    fault_at = T0 + timedelta(minutes=47)
    results = []
    for step_s in (1.0, 60.0, 7.3, None):
        st = fresh()
        t = T0
        faulted = False
        while t < end:
            t = min(end, t + timedelta(seconds=step_s)) if step_s else end
            if not faulted and t >= fault_at:
                st.step(fault_at)
                st.set_pump_fault(2)
                faulted = True
            st.step(t)
        if not faulted:
            st.step(fault_at)
            st.set_pump_fault(2)
            st.step(end)
        results.append(st.snapshot())
    assert all(r == results[0] for r in results[1:])
    other = fresh(seed=8)
    other.step(fault_at)
    other.set_pump_fault(2)
    other.step(end)
    assert other.snapshot()["volume_m3"] != results[0]["volume_m3"]


def test_step_never_goes_back_and_keeps_the_remainder():
    st = quiet()
    st.step(T0 + timedelta(seconds=10.6))
    assert st.tick == 10
    st.step(T0 + timedelta(seconds=5))
    assert st.tick == 10
    st.step(T0 + timedelta(seconds=11.0))
    assert st.tick == 11 and st.now == T0 + timedelta(seconds=11)


def test_heartbeat_wraps():
    st = quiet()
    st.step(T0 + timedelta(seconds=65536 + 5))
    assert st.point_values()["heartbeat"] == 5


def test_point_values_cover_the_canonical_maps():
    st = ManholePumpStation(station_config(), 3, T0)
    st.step(T0 + timedelta(minutes=5))
    pv = st.point_values()
    for rmap in demo_fleet().register_maps.values():
        if not rmap.name.startswith("mps-"):
            continue  # the other kinds' maps: test_relay.py, test_stormwater.py, test_plant.py, test_rtu.py
        for p in rmap.points:
            assert p.name in pv, p.name
            if p.is_state:
                assert isinstance(pv[p.name], bool), p.name
            elif p.point_kind == "counter" or p.type in ("uint16", "uint32") and p.scale == 1:
                assert isinstance(pv[p.name], int) and not isinstance(pv[p.name], bool), p.name
    assert pv["pump1_run_hours_h"] == int(st.pumps[0].run_hours)
    assert pv["pump1_starts"] > 65535  # 15-year-old pumps: the high word of the uint32 is used
    assert (pv["stop_level_m"], pv["start_level_m"], pv["lag_level_m"]) == (0.5, 1.0, 1.2)
    assert (pv["hwl_level_m"], pv["lwl_level_m"]) == (1.4, 0.35)
    assert pv["supply_voltage_v"] == pytest.approx(200, abs=5)
    assert abs(pv["wet_well_level_m"] - st.level_m) < 0.01  # transmitter noise only
    for flag in ("earth_leakage", "phase_loss", "door_open", "local_mode", "spd_tripped", "panel_overtemp"):
        assert pv[flag] is False
    st.door_open = True
    st.phase_loss = True
    list(run(st, 2))
    pv = st.point_values()
    assert pv["door_open"] and pv["phase_loss"] and pv["supply_voltage_v"] == 0.0
    assert not pv["pump1_running"] and not pv["pump2_running"]  # no pump runs on a lost phase


def test_only_manhole_pump_stations():
    plant = StationConfig(
        id="WWTP-1", tenant="kita", name="plant", kind="treatment_plant", plant={"design_flow_m3_d": 5000}
    )
    with pytest.raises(ValueError):
        ManholePumpStation(plant, 1, T0)
    with pytest.raises(ValueError):
        ManholePumpStation(station_config(), 1, datetime(2026, 7, 1))  # naive start
