from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from pumpwatch.clock import FakeClock
from simulators.fleet import SimulatedFleet
from simulators.scenarios import Area, clog, power_outage, pump_fault, rain, run_scenario, sensor_stuck_low
from tests.simulators import demo_fleet_on_free_ports, settle

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
