from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from pumpwatch.core.clock import FakeClock
from pumpwatch.simulators.fleet import SimulatedFleet
from pumpwatch.simulators.scenarios import (
    Area,
    blower_fault,
    clog,
    gauge_fault,
    generator_fault,
    hv_fault,
    hyetograph,
    power_outage,
    pump_fault,
    rain,
    river_level,
    run_scenario,
    sensor_stuck_low,
    toxic_shock,
)
from tests.simulators import demo_fleet_on_free_ports, mixed_fleet_on_free_ports, settle

T0 = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


async def advance_to(clock: FakeClock, when: datetime, step_s: float = 10.0) -> None:
    while clock.now() < when:
        clock.advance(min(step_s, (when - clock.now()).total_seconds()))
        await settle()


async def test_scripted_faults_apply_at_their_times():
    clock = FakeClock(T0)
    async with SimulatedFleet(demo_fleet_on_free_ports(), clock, station_options={"noise_sigma": 0}) as sim:
        events = [
            *power_outage(Area("kita-feeder-2"), at=T0 + 5 * MIN, duration=30 * MIN),
            *power_outage(["MINAMI-MP-04"], at=T0 + 2 * MIN),
            *pump_fault("KITA-MP-08", 1, at=T0 + 3 * MIN),
            *clog("KITA-MP-07", "pump2", 0.5, at=T0 + 3 * MIN),
            *sensor_stuck_low("MINAMI-MP-01", at=T0 + 4 * MIN, duration=10 * MIN),
            *rain(2.5, at=T0 + MIN, duration=60 * MIN, stations=["KITA-MP-01"]),
        ]
        task = asyncio.create_task(run_scenario(sim, clock, events), name="test.scenario")
        await settle()
        st = sim.stations
        assert st["KITA-MP-04"].mains_ok and st["KITA-MP-01"].rain_factor == 1.0

        await advance_to(clock, T0 + 5 * MIN)
        await settle()
        for sid in ("KITA-MP-04", "KITA-MP-05", "KITA-MP-06"):  # kita-feeder-2
            assert not st[sid].mains_ok
            assert st[sid].point_values()["mains_failed"] is True
        assert st["KITA-MP-03"].mains_ok
        assert not st["MINAMI-MP-04"].mains_ok
        assert st["KITA-MP-08"].pumps[0].faulted and not st["KITA-MP-08"].pumps[1].faulted
        assert st["KITA-MP-07"].pumps[1].clog == 0.5
        assert st["MINAMI-MP-01"].point_values()["wet_well_level_m"] == 0.0
        assert st["MINAMI-MP-01"].point_values()["level_sensor_fault"] is True
        assert st["KITA-MP-01"].rain_factor == 2.5 and st["KITA-MP-02"].rain_factor == 1.0

        await advance_to(clock, T0 + 36 * MIN, step_s=60)
        await settle()
        assert st["KITA-MP-04"].mains_ok
        assert not st["MINAMI-MP-04"].mains_ok  # no duration: stays off
        assert st["MINAMI-MP-01"].sensor_stuck_low is False
        assert not task.done()  # the rain ends at 61 min

        await advance_to(clock, T0 + 62 * MIN, step_s=60)
        applied = await asyncio.wait_for(task, 1)
        assert st["KITA-MP-01"].rain_factor == 1.0
        assert [e.label for e in applied][:2] == ["rain ×2.5", "power outage: MINAMI-MP-04"]
        assert len(applied) == 9


async def test_an_outage_event_starts_exactly_at_its_time():
    clock = FakeClock(T0)
    async with SimulatedFleet(demo_fleet_on_free_ports(), clock) as sim:
        at = T0 + timedelta(seconds=95)
        task = asyncio.create_task(run_scenario(sim, clock, power_outage(["KITA-MP-01"], at=at)))
        await settle()
        clock.advance(300)  # one big jump past the event
        await settle()
        await asyncio.wait_for(task, 1)
        sim.step_now()
        st = sim.stations["KITA-MP-01"]
        # stepped to the event time first, so the battery ran for exactly 205 s of the 300
        assert st.battery_soc == pytest.approx(1 - 205 / (6 * 3600), abs=1 / (6 * 3600))


def test_bad_arguments():
    with pytest.raises(TypeError):
        power_outage("KITA-MP-01", at=T0)  # a bare string: area or station? say which
    with pytest.raises(ValueError):
        clog("KITA-MP-01", 1, 3.0, at=T0)
    with pytest.raises(ValueError):
        rain(-1, at=T0)


async def test_scenarios_for_every_kind():
    clock = FakeClock(T0)
    async with SimulatedFleet(mixed_fleet_on_free_ports(), clock, station_options={"noise_sigma": 0}) as sim:
        st = sim.stations
        events = [
            *rain(at=T0 + MIN, mm_h=30, duration=60 * MIN, stations=["STORM-1", "WWTP-1", "RELAY-1"]),
            *hyetograph([10, 50], at=T0 + MIN, stations=["STORM-2"]),
            *river_level("STORM-1", 6.6, at=T0 + 2 * MIN, duration=10 * MIN),
            *generator_fault("RELAY-1", at=T0 + 3 * MIN, duration=5 * MIN),
            *power_outage(["RELAY-1"], at=T0 + 4 * MIN, duration=10 * MIN),
            *gauge_fault("RELAY-2", 1, at=T0 + 2 * MIN, mode="dead", duration=20 * MIN),
            *hv_fault("RELAY-2", "overcurrent", at=T0 + 2 * MIN),
            *blower_fault("WWTP-1", 1, at=T0 + 2 * MIN),
            *blower_fault("WWTP-1", "blower1", at=T0 + 30 * MIN, faulted=False),
            *toxic_shock("WWTP-2", 0.5, at=T0 + 2 * MIN),
        ]
        task = asyncio.create_task(run_scenario(sim, clock, events), name="test.scenario")
        await advance_to(clock, T0 + 5 * MIN)
        await settle()
        assert st["STORM-1"].rain_mm_h == 30 and st["STORM-1"].curtailment_active
        assert st["STORM-2"].rain_mm_h == 10
        assert st["WWTP-1"].rain_factor == 2.5 and st["WWTP-1"].point_values()["rainfall_mm_h"] == 30
        assert st["RELAY-1"].rain_factor == 2.5 and st["MP-A"].rain_factor == 1.0
        relay = st["RELAY-1"].point_values()
        assert relay["generator_fault"] and relay["mains_failed"] and relay["pumps_running"] == 0
        r2 = st["RELAY-2"].point_values()
        assert r2["level_gauge_1_fault"] and r2["hv_overcurrent"] and r2["on_generator_power"]
        assert st["WWTP-1"].point_values()["blower1_faulted"]
        assert st["WWTP-2"].activity < 0.55

        await advance_to(clock, T0 + 13 * MIN, step_s=60)
        await settle()
        assert st["STORM-1"].river_override_m is None and st["STORM-2"].rain_mm_h == 50
        relay = st["RELAY-1"].point_values()
        assert not relay["generator_fault"] and relay["generator_running"] and relay["pumps_running"] >= 1
        await advance_to(clock, T0 + 61 * MIN, step_s=60)
        applied = await asyncio.wait_for(task, 1)
        assert len(applied) == len(events) == 17
        assert st["STORM-1"].rain_mm_h == 0 and st["STORM-2"].rain_mm_h == 0
        assert not st["WWTP-1"].blowers[0].faulted and st["RELAY-2"].gauges[0].mode is None


async def test_a_setter_the_kind_lacks_is_a_clear_error():
    clock = FakeClock(T0)
    async with SimulatedFleet(mixed_fleet_on_free_ports(), clock) as sim:
        (event,) = generator_fault("MP-A", at=T0)
        with pytest.raises(TypeError, match="MP-A .manhole_pump. has no set_generator_fault"):
            event.apply(sim)


def test_more_bad_arguments():
    with pytest.raises(TypeError):
        rain(at=T0)  # neither factor nor mm_h
    with pytest.raises(TypeError):
        rain(2.0)  # no time
    assert rain(at=T0, mm_h=100)[0].label == "rain 100 mm/h (×3)"
    with pytest.raises(ValueError):
        hv_fault("RELAY-1", "lightning", at=T0)
    with pytest.raises(ValueError):
        toxic_shock("WWTP-1", 1.0, at=T0)
    with pytest.raises(ValueError):
        hyetograph([10], at=T0, interval=timedelta(0))
