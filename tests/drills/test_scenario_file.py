"""The scenario file format: every example validates against the demo fleet, every mistake is reported as
`file:line key: why`, and a compiled drill changes the simulated stations at its times."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pumpwatch.core.clock import FakeClock
from pumpwatch.core.config import ConfigError, load_fleet
from pumpwatch.core.config.scenario import load_scenario, parse_duration, parse_scenario_text
from pumpwatch.simulators.drill import compile_scenario
from pumpwatch.simulators.fleet import SimulatedFleet
from tests.drills import FULL_DEMO, SCENARIOS
from tests.simulators import on_free_ports, settle

T0 = datetime(2026, 8, 1, 10, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


@pytest.fixture(scope="module")
def fleet():
    return load_fleet(FULL_DEMO)


@pytest.mark.parametrize("name", ["lightning-night", "typhoon", "failed-level-sensor"])
def test_examples_validate_against_the_demo_fleet(fleet, name):
    s = load_scenario(SCENARIOS / f"{name}.yaml", fleet)
    assert s.name == name and s.tenant == "kita" and s.events
    assert compile_scenario(s, T0).changes


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("5m", 300), ("2h", 7200), ("1h30m", 5400), (45, 45), ("0.5m", 30)]
)
def test_durations(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("bad", ["5 minutes", "-1m", "", "m", True, "3d", 10**7])
def test_bad_durations_say_the_forms(bad):
    with pytest.raises(ValueError, match=r"not a time|>= 0|at most|90s"):
        parse_duration(bad)


HEAD = "name: t\ntitle: T\ntenant: kita\nevents:\n"


def problems(text: str, fleet=None) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse_scenario_text(HEAD + text, "drill.yaml", fleet)
    return err.value.problems


def test_mistakes_name_file_line_and_key():
    got = problems(
        "  - {at: 1m, power_outage: {area: a}, rain: {mm_h: 5}}\n  - {at: soon, pump_fault: {station: X}}\n"
    )
    assert any(p.startswith("drill.yaml:5 events[0]: an event has exactly one action") for p in got), got
    assert any(p.startswith("drill.yaml:6 events[1].at: 'soon' is not a time") for p in got), got
    assert any(p.startswith("drill.yaml:6 events[1].pump_fault.pump: Field required") for p in got), got


def test_unknown_action_and_key_are_named():
    got = problems("  - {at: 1m, earthquake: {magnitude: 7}}\n  - {at: 1m, rain: {mm_h: 5, colour: grey}}\n")
    assert any("events[0]: an event has exactly one action" in p and "'earthquake'" in p for p in got), got
    assert any(
        p.startswith("drill.yaml:6 events[1].rain.colour: Extra inputs are not permitted") for p in got
    )


def test_rain_needs_one_form_and_outage_one_target():
    got = problems(
        "  - {at: 0s, rain: {duration: 1h}}\n"
        "  - {at: 0s, rain: {mm_h: 5, hyetograph_mm_h: [1, 2]}}\n"
        "  - {at: 0s, power_outage: {area: a, stations: [KITA-MP-01]}}\n"
    )
    assert any("events[0].rain: give mm_h" in p for p in got), got
    assert any("events[1].rain: a hyetograph gives the intensities itself" in p for p in got), got
    assert any("events[2].power_outage: give either `area`" in p for p in got), got


def test_duration_shorter_than_the_events():
    got = problems("  - {at: 1h, sensor_stuck_low: {station: KITA-MP-01, duration: 1h}}\nduration: 90m\n")
    assert any(p.startswith("drill.yaml:6 duration: the drill ends at 1:30:00") for p in got), got


def test_checked_against_the_fleet(fleet):
    got = problems(
        "  - {at: 0s, power_outage: {area: nowhere}}\n"  # 5
        "  - {at: 0s, pump_clog: {station: KITA-MP-01, pump: 3, severity: 0.5}}\n"  # 6
        "  - {at: 0s, river_level: {station: KITA-MP-01, level_m: 6}}\n"  # 7
        "  - {at: 0s, generator_fault: {station: KITA-MP-02}}\n"  # 8
        "  - {at: 0s, comm_loss: {controller: nope}}\n"  # 9
        "  - {at: 0s, sensor_stuck_low: {station: MINAMI-MP-01}}\n"  # 10
        "  - {at: 0s, float_stuck: {station: KITA-RP-01, float: hwl, state: clear}}\n"  # 11
        "drill_contacts: [sato, nobody]\n",  # 12
        fleet,
    )
    want = [
        "drill.yaml:5 events[0].power_outage.area: unknown power area 'nowhere'",
        "drill.yaml:6 events[1].pump_clog.pump: station KITA-MP-01 has 2 pumps",
        "drill.yaml:7 events[2].river_level.station: station KITA-MP-01 is a manhole_pump: it has no",
        "drill.yaml:8 events[3].generator_fault.station: station KITA-MP-02 is a manhole_pump: it has no",
        "drill.yaml:9 events[4].comm_loss.controller: unknown controller 'nope'",
        "drill.yaml:10 events[5].sensor_stuck_low.station: station MINAMI-MP-01 belongs to tenant 'minami'",
        "drill.yaml:11 events[6].float_stuck.station: station KITA-RP-01 is a relay_pump: it has no float",
        "drill.yaml:12 drill_contacts[1]: unknown person 'nobody'",
    ]
    for w in want:
        assert any(p.startswith(w) for p in got), (w, got)
    assert len(got) == len(want), got


def test_not_yaml_and_not_a_mapping(tmp_path: Path):
    f = tmp_path / "x.yaml"
    f.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"x.yaml:\d+: not valid YAML"):
        load_scenario(f)
    f.write_text("- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_scenario(f)


async def advance(clock: FakeClock, sim: SimulatedFleet, until: datetime) -> None:
    while clock.now() < until:
        clock.advance(min(10.0, (until - clock.now()).total_seconds()))
        sim.step_now()
        await settle(2)


async def test_compiled_drill_changes_the_field_at_its_times_and_undo_puts_it_right(fleet):
    text = (
        "  - {at: 1m, power_outage: {area: kita-feeder-1, duration: 30m}}\n"
        "  - {at: 2m, comm_loss: {controller: kita-04, duration: 20m}}\n"
        "  - {at: 2m, float_stuck: {station: KITA-MP-05, float: lwl, state: tripped}}\n"
        "  - {at: 3m, sensor_stuck_low: {station: KITA-MP-06}}\n"
        "  - {at: 3m, generator_fault: {station: KITA-RP-01}}\n"
        "  - {at: 3m, river_level: {station: KITA-SP-01, level_m: 6.7}}\n"
        "  - {at: 0s, rain: {hyetograph_mm_h: [20, 40], interval: 5m, stations: [KITA-SP-01, KITA-MP-01]}}\n"
    )
    scenario = parse_scenario_text(HEAD + text, "drill.yaml", fleet)
    clock = FakeClock(T0)
    f = on_free_ports(load_fleet(FULL_DEMO))
    async with SimulatedFleet(f, clock, station_options={"noise_sigma": 0}) as sim:
        plan = compile_scenario(scenario, clock.now(), drill="d1")
        sim.schedule(plan.changes)
        st = sim.stations
        await advance(clock, sim, T0 + 4 * MIN)
        assert not st["KITA-MP-01"].mains_ok and st["KITA-MP-04"].mains_ok
        assert not sim.controller_running("kita-04")
        assert st["KITA-MP-05"].lwl_float and st["KITA-MP-06"].sensor_stuck_low
        assert st["KITA-RP-01"].generator.faulted  # type: ignore[attr-defined]
        assert st["KITA-SP-01"].outer_level_m == pytest.approx(6.7)  # type: ignore[attr-defined]
        assert st["KITA-MP-01"].rain_factor == pytest.approx(2.0)  # 20 mm/h in the first 5 min
        assert sim.pending_changes > 0
        plan.undo(sim)
        await settle(5)
        assert sim.pending_changes == 0
        assert st["KITA-MP-01"].mains_ok and st["KITA-MP-01"].rain_factor == 1.0
        assert sim.controller_running("kita-04")
        assert not st["KITA-MP-05"].float_stuck and not st["KITA-MP-06"].sensor_stuck_low
        assert not st["KITA-RP-01"].generator.faulted  # type: ignore[attr-defined]
        await asyncio.sleep(0)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (
            'a: &a ["x", "x", "x"]\nb: [*a, *a, *a]\n',
            "scenario:1: anchors and aliases (&, *) are not allowed",
        ),
        ("a: " + "[" * 5000 + "]" * 5000 + "\n", "scenario:1: nested deeper than 16 levels"),
        ("name: t\n  bad: [\n", "scenario:2: not valid YAML"),
    ],
)
def test_hostile_text_is_refused_quickly_and_precisely(text, why):
    """A scenario sent to the API: a few hundred bytes of aliases would expand to billions of nodes, deep
    nesting would overflow the recursion (a 500): both are refused with where, before anything is built."""
    t0 = time.monotonic()
    with pytest.raises(ConfigError) as err:
        parse_scenario_text(text, "scenario")
    assert time.monotonic() - t0 < 2
    assert err.value.problems[0].startswith(why), err.value.problems
