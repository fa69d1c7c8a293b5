"""PumpHealth against the simulated manhole pump station (seeded, polled every 5 s) and hand-built samples."""

from __future__ import annotations

import copy
import statistics
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path

import pytest

from pumpwatch.alarms.analyzers import Analyzer
from pumpwatch.alarms.analyzers.pumps import PumpHealth
from pumpwatch.core.config import load_fleet
from pumpwatch.core.config.models import StationConfig
from pumpwatch.core.sample import Quality, Sample
from pumpwatch.simulators.manhole import ManholePumpStation

DEMO_FLEET = Path(__file__).resolve().parents[2] / "deploy" / "config" / "demo"
SID = "KITA-MP-01"  # MPS-REF: 2 × 0.5 m³/min, 10 A rated, start 1.0 m, stop 0.5 m
T0 = datetime(2026, 6, 30, 21, 0, tzinfo=UTC)  # 06:00 in Tokyo: the morning peak comes first
POLL_S = 5
DAY_S = 86400


@lru_cache
def station_config(sid: str = SID) -> StationConfig:
    return load_fleet(DEMO_FLEET).stations[sid]


class Polled:
    """A simulated station polled every `poll_s` like the collector would, its batches fed to `analyzer`.

    Every derived sample is recorded: `rec[name]` is a list of (time, value or None)."""

    def __init__(self, station: ManholePumpStation, analyzer: PumpHealth, poll_s: int = POLL_S) -> None:
        self.st = station
        self.an = analyzer
        self.poll_s = poll_s
        self.now = station.now
        self.rec: dict[str, list[tuple[datetime, float | None]]] = {}
        self.raw: list[dict[str, float | int | bool | None]] = []
        self.keep_raw = False

    def run(self, seconds: float, before: Callable[[datetime], None] | None = None) -> None:
        end = self.now + timedelta(seconds=seconds)
        while self.now < end:
            self.now += timedelta(seconds=self.poll_s)
            if before is not None:
                before(self.now)  # a scenario change that takes effect during this poll interval
            self.st.step(self.now)
            values = self.st.point_values()
            if self.keep_raw:
                self.raw.append(values)
            batch = [
                Sample(self.st.id, p, None if v is None else float(v), self.now) for p, v in values.items()
            ]
            for s in self.an.observe(batch):
                assert s.observed_at == self.now
                self.rec.setdefault(s.point, []).append((s.observed_at, s.value))

    def values(self, name: str, since: datetime | None = None) -> list[float]:
        return [v for t, v in self.rec[name] if v is not None and (since is None or t >= since)]

    def last(self, name: str) -> float | None:
        return self.rec[name][-1][1]

    def first_time(self, name: str, cond: Callable[[float], bool], since: datetime) -> datetime | None:
        return next((t for t, v in self.rec[name] if t >= since and v is not None and cond(v)), None)


def simulated(cfg: StationConfig | None = None, seed: int = 1, **kw) -> Polled:
    cfg = cfg or station_config()
    return Polled(ManholePumpStation(cfg, seed, T0, **kw), PumpHealth(cfg))


@pytest.fixture(scope="module")
def baseline_day() -> Polled:
    """MPS-REF on a dry day: diurnal inflow with noise, both pumps healthy. Copy it before going on."""
    sim = simulated()
    sim.run(DAY_S)
    return sim


def test_outputs_are_declared_and_stamped_with_the_batch_time() -> None:
    ph: Analyzer = PumpHealth(station_config())
    names = [o.name for o in ph.outputs]
    assert len(names) == len(set(names)) == 2 * 6 + 3
    kinds = {o.name: o.kind for o in ph.outputs}
    assert kinds["pump1_fails_to_run"] == kinds["pumps_not_restarted"] == "state"
    assert kinds["pump2_current_ratio"] == "analog"
    t = T0 + timedelta(seconds=7)
    batch = [Sample(SID, "pump1_running", 0.0, T0), Sample(SID, "pump1_faulted", 0.0, t)]
    out = ph.observe(batch)
    assert [s.point for s in out] == names
    assert {s.observed_at for s in out} == {t}
    assert all(s.station == SID for s in out)
    by = {s.point: s for s in out}
    assert by["pump1_available"].value == 1.0 and by["pump1_available"].quality is Quality.GOOD
    assert by["pump1_run_ratio"].quality is Quality.NOT_AVAILABLE and by["pump1_run_ratio"].value is None
    assert by["pump1_starts_per_hour"].quality is Quality.NOT_AVAILABLE  # not followed for an hour yet
    assert ph.observe([]) == []


def test_a_normal_day(baseline_day: Polled) -> None:
    sim = baseline_day
    settled = T0 + timedelta(hours=2)
    for n in (1, 2):
        ratios = sim.values(f"pump{n}_run_ratio")
        assert 0.95 < statistics.median(ratios) < 1.1
        assert max(ratios) < 1.5  # far below the "long run" rule at 2.0 (docs/domain.md §1.5)
        runs = sim.values(f"pump{n}_run_min_last")
        assert 1.5 < statistics.median(runs) < 3.0  # docs/domain.md §1.5: ≈ 2.1 min at average inflow
        currents = sim.values(f"pump{n}_current_ratio")
        assert all(0.9 < c < 1.05 for c in currents)  # rated current first, then its own baseline
        learned = sim.values(f"pump{n}_current_ratio", T0 + timedelta(hours=22))  # baseline learned by then
        assert all(abs(c - 1.0) < 0.02 for c in learned)
        assert max(sim.values(f"pump{n}_starts_per_hour")) <= 6  # domain limit per pump
        assert set(sim.values(f"pump{n}_fails_to_run")) == {0.0}
        assert set(sim.values(f"pump{n}_available")) == {1.0}
        # Run ratio needs 10 runs, starts per hour a full hour of following the pump.
        assert sim.rec[f"pump{n}_run_ratio"][0][1] is None
        first_poll = T0 + timedelta(seconds=POLL_S)
        assert sim.first_time(f"pump{n}_starts_per_hour", lambda v: True, T0) == first_poll + timedelta(
            hours=1
        )
    station = sim.values("station_starts_per_hour", settled)
    assert max(station) <= 10  # domain limit per station
    assert set(sim.values("pumps_unavailable")) == {0.0}
    assert set(sim.values("pumps_not_restarted")) == {0.0}


def test_starts_per_hour_agree_with_the_panel_counter() -> None:
    sim = simulated(seed=3)
    sim.keep_raw = True
    sim.run(4 * 3600)
    ours = sim.rec["station_starts_per_hour"]
    panel = [v["starts_last_hour"] for v in sim.raw]
    compared = [(a, b) for (_, a), b in zip(ours, panel, strict=True) if a is not None]
    assert len(compared) > 2000
    assert all(abs(a - b) <= 1 for a, b in compared)  # a start may fall either side of a poll


def test_a_clog_is_flagged_before_the_pump_trips(baseline_day: Polled) -> None:
    """Rags build up on pump 1 over 12 h (current +0 → +30 %, flow −0 → −40 %), then it trips."""
    sim = copy.deepcopy(baseline_day)
    begin = sim.now
    ramp = timedelta(hours=12)

    def clog(now: datetime) -> None:
        severity = min(1.0, (now - begin) / ramp)
        sim.st.set_clog(1, severity)
        if now - begin >= ramp:
            sim.st.set_pump_fault(1)

    sim.run(ramp.total_seconds() + 600, clog)
    trip = sim.first_time("pump1_available", lambda v: v == 0.0, begin)
    assert trip is not None and trip - begin == ramp
    by_current = sim.first_time("pump1_current_ratio", lambda v: v > 1.15, begin)
    by_run = sim.first_time("pump1_run_ratio", lambda v: v > 2.0, begin)
    detected = min(t for t in (by_current, by_run) if t is not None)
    lead = trip - detected
    assert lead > timedelta(hours=4)  # measured: 5 h 39 min, at a severity of 0.53 (current +16 %)
    # ... while the partner pump looks as healthy as before.
    assert max(sim.values("pump2_current_ratio", begin)) < 1.05
    assert max(sim.values("pump2_run_ratio", begin)) < 2.0
    # Runs of the clogged pump grew (less flow): the run ratio rose, if not to a long-run alarm.
    assert max(sim.values("pump1_run_ratio", begin + ramp / 2)) > 1.3


def test_a_long_run_in_progress_raises_the_run_ratio() -> None:
    """A pump that no longer lowers the level is flagged during that run, not after it."""
    ph = PumpHealth(station_config())
    t = T0

    def poll(running: bool, current: float = 9.6) -> dict[str, Sample]:
        nonlocal t
        t += timedelta(seconds=POLL_S)
        batch = [
            Sample(SID, "pump1_running", float(running), t),
            Sample(SID, "pump1_current_a", current if running else 0.0, t),
        ]
        return {s.point: s for s in ph.observe(batch)}

    poll(False)
    for _ in range(12):  # 12 cycles: 2 min on, 10 min off
        for _ in range(24):
            poll(True)
        for _ in range(120):
            poll(False)
    out = poll(False)
    assert out["pump1_run_min_last"].value == pytest.approx(2.0)
    assert out["pump1_run_ratio"].value == pytest.approx(1.0)
    for _ in range(12 * 10):  # then it runs for 10 minutes and counting
        out = poll(True)
    assert out["pump1_run_ratio"].value == pytest.approx(5.0, abs=0.1)
    assert out["pump1_run_min_last"].value == pytest.approx(2.0)  # the last *completed* run


def test_a_dead_pump_and_then_both() -> None:
    sim = simulated(seed=2)
    sim.run(1800)
    sim.st.set_pump_fault(1)
    faulted_at = sim.now
    sim.run(2 * 3600)
    assert set(sim.values("pump1_available", faulted_at + timedelta(seconds=POLL_S))) == {0.0}
    assert set(sim.values("pump2_available")) == {1.0}
    assert set(sim.values("pumps_unavailable")) == {0.0}  # pump 2 does the work
    assert sim.values("pump2_starts_per_hour")[-1] >= 3
    sim.st.set_pump_fault(2)
    both_at = sim.now
    sim.run(600)
    assert set(sim.values("pumps_unavailable", both_at + timedelta(seconds=POLL_S))) == {1.0}
    assert sim.last("pumps_not_restarted") == 0.0  # no power event: not a restart problem


def test_fails_to_run_when_the_run_relay_is_on_but_no_current() -> None:
    ph = PumpHealth(station_config())

    def at(s: float) -> datetime:
        return T0 + timedelta(seconds=s)

    def poll(s: float, running: bool, current: float | None, q: Quality = Quality.GOOD) -> float | None:
        batch = [
            Sample(SID, "pump1_running", float(running), at(s)),
            Sample(SID, "pump1_current_a", current, at(s), q),
        ]
        return {o.point: o.value for o in ph.observe(batch)}["pump1_fails_to_run"]

    assert poll(0, False, 0.0) == 0.0
    assert poll(5, True, 0.0) == 0.0  # the transducer may lag the contactor by a poll
    assert poll(10, True, 9.7) == 0.0
    assert poll(15, True, 0.5) == 0.0  # below 10 % of rated 10 A ...
    assert poll(20, True, 0.4) == 0.0
    assert poll(25, True, 0.3) == 1.0  # ... for 10 s: the relay is on and the motor is not turning
    assert poll(30, True, None, Quality.COMM_LOSS) is None  # cannot tell
    assert poll(35, True, 0.0) == 0.0  # a fresh spell of no current starts again
    assert poll(45, True, 0.0) == 1.0
    assert poll(50, False, 0.0) == 0.0  # stopped: nothing to run


def test_current_ratio_skips_inrush_and_bad_samples() -> None:
    ph = PumpHealth(station_config(), inrush_s=5)
    t = T0
    out: dict[str, float | None] = {}

    def poll(dt: float, running: bool, current: float | None, q: Quality = Quality.GOOD) -> None:
        nonlocal t, out
        t += timedelta(seconds=dt)
        batch = [
            Sample(SID, "pump1_running", float(running), t),
            Sample(SID, "pump1_current_a", current, t, q),
        ]
        out = {o.point: o.value for o in ph.observe(batch)}

    poll(0, False, 0.0)
    poll(2, True, 60.0)  # 6 × rated at the start (DOL)
    poll(2, True, 45.0)
    poll(2, True, 11.0)
    for _ in range(20):
        poll(5, True, 11.0)
    poll(5, True, 999.0, Quality.BAD_VALUE)
    poll(5, True, 11.0)
    poll(5, False, 0.0)
    assert out["pump1_current_ratio"] == pytest.approx(1.1)  # 11 A over the rated 10 A (no baseline yet)


def test_lost_run_signal_drops_the_run_and_the_hour() -> None:
    ph = PumpHealth(station_config())
    t = T0

    def poll(running: float | None, q: Quality = Quality.GOOD) -> dict[str, float | None]:
        nonlocal t
        t += timedelta(seconds=POLL_S)
        return {o.point: o.value for o in ph.observe([Sample(SID, "pump1_running", running, t, q)])}

    poll(0.0)
    for _ in range(6):  # an hour of 10-minute cycles, 1 min runs
        for _ in range(12):
            poll(1.0)
        for _ in range(108):
            out = poll(0.0)
    assert out["pump1_starts_per_hour"] == 6.0
    assert out["pump1_run_min_last"] == pytest.approx(1.0)
    poll(1.0)
    poll(None, Quality.COMM_LOSS)  # the unit drops out mid-run
    out = poll(0.0)
    assert out["pump1_run_min_last"] == pytest.approx(1.0)  # that run's length is unknown: not counted
    assert out["pump1_starts_per_hour"] is None  # starts may have been missed: a full hour again
    for _ in range(720):
        out = poll(0.0)
    assert out["pump1_starts_per_hour"] == 0.0


def test_short_cycling_with_a_tiny_active_volume() -> None:
    """Start 10 cm above stop (0.18 m³ instead of 0.88 m³), like a float hung low: ≈ 22 starts/h."""
    base = station_config()
    assert base.levels is not None
    cfg = base.model_copy(update={"levels": base.levels.model_copy(update={"start_m": 0.6})})
    sim = simulated(cfg, seed=4, diurnal=False)
    sim.keep_raw = True
    sim.run(3 * 3600)
    sustained = T0 + timedelta(hours=1)  # after the first hour: the 2 h a short-cycling rule waits
    assert min(sim.values("station_starts_per_hour", sustained)) > 10
    for n in (1, 2):
        assert min(sim.values(f"pump{n}_starts_per_hour", sustained)) > 6
    assert sim.last("station_starts_per_hour") == pytest.approx(sim.raw[-1]["starts_last_hour"], abs=1)


def outage(restart_delay_s: float, seed: int = 5) -> tuple[Polled, datetime]:
    """Two hours of normal running, a 40-minute outage, then 20 minutes more; returns (sim, restored)."""
    sim = simulated(seed=seed, restart_delay_s=restart_delay_s)
    sim.run(2 * 3600)
    sim.st.set_mains(False)
    sim.run(40 * 60)
    sim.st.set_mains(True)
    restored = sim.now
    sim.run(20 * 60)
    return sim, restored


def test_pumps_restart_after_the_power_returns() -> None:
    sim, restored = outage(restart_delay_s=2.0)
    assert set(sim.values("pumps_not_restarted")) == {0.0}
    assert sim.values("station_starts_per_hour")[-1] >= 2  # they did restart, and cycle again


def test_pumps_that_do_not_restart_after_the_power_returns() -> None:
    """A panel whose automatic restart (復電再起動) never comes: the level is high, both pumps are fine."""
    sim, restored = outage(restart_delay_s=10 * 3600)
    assert max(sim.values("pumps_not_restarted", T0), default=0) == 1.0
    raised = sim.first_time("pumps_not_restarted", lambda v: v == 1.0, T0)
    assert raised is not None
    # The first poll after the restoration sees it; 60 s of grace from there.
    assert timedelta(seconds=60 + POLL_S) < raised - restored <= timedelta(seconds=60 + 2 * POLL_S)
    assert sim.values("pumps_not_restarted", raised)[-1] == 1.0  # still, 20 min later
    assert sim.values("pumps_unavailable", restored)[-1] == 0.0


def test_not_restarted_waits_for_the_level_and_clears_when_a_pump_runs() -> None:
    ph = PumpHealth(station_config(), restart_grace_s=60)
    t = T0

    def poll(mains_failed: bool, level: float, running: bool = False) -> float | None:
        nonlocal t
        t += timedelta(seconds=POLL_S)
        batch = [
            Sample(SID, "mains_failed", float(mains_failed), t),
            Sample(SID, "wet_well_level_m", level, t),
            Sample(SID, "pump1_running", float(running), t),
            Sample(SID, "pump2_running", 0.0, t),
            Sample(SID, "pump1_faulted", 0.0, t),
            Sample(SID, "pump2_faulted", 0.0, t),
        ]
        return {o.point: o.value for o in ph.observe(batch)}["pumps_not_restarted"]

    assert poll(False, 0.7) == 0.0
    assert poll(True, 0.7) == 0.0  # a short dip: the level stays below start (1.0 m)
    for _ in range(30):
        assert poll(False, 0.8) == 0.0  # nothing to pump yet
    results = [poll(False, 1.05) for _ in range(14)]  # the level rises past start, no pump starts
    assert results[:12] == [0.0] * 12 and results[-1] == 1.0  # after the 60 s grace
    assert poll(False, 1.1, running=True) == 0.0  # a pump runs: the restart worked
    assert poll(False, 1.05) == 0.0
    for _ in range(20):
        assert poll(False, 1.05) == 0.0  # and no longer a restart question


def test_a_pump_out_of_automatic_is_unavailable() -> None:
    ph = PumpHealth(station_config())
    t = T0 + timedelta(seconds=1)
    batch = [
        Sample(SID, "pump1_faulted", 0.0, t),
        Sample(SID, "pump1_auto", 0.0, t),  # selector in manual/off (relay-station panels report it)
        Sample(SID, "pump2_faulted", 1.0, t),
    ]
    out = {o.point: o.value for o in ph.observe(batch)}
    assert out["pump1_available"] == 0.0 and out["pump2_available"] == 0.0
    assert out["pumps_unavailable"] == 1.0
    out = {o.point: o.value for o in ph.observe([Sample(SID, "pump1_auto", 1.0, t + timedelta(seconds=5))])}
    assert out["pump1_available"] == 1.0 and out["pumps_unavailable"] == 0.0


def test_a_backlog_batch_is_taken_in_time_order() -> None:
    """One batch may carry several times (e.g. an MQTT backlog): the runs come out as if polled."""
    ph = PumpHealth(station_config())
    t = T0
    batch = []
    for k in range(12 * 60):  # an hour: 2 min on, 8 min off, given in reverse order
        running = (k % 120) < 24
        at = t + timedelta(seconds=POLL_S * k)
        batch += [
            Sample(SID, "pump1_running", float(running), at),
            Sample(SID, "pump1_current_a", 9.5 * running, at),
        ]
    out = {o.point: o for o in ph.observe(batch[::-1])}
    assert out["pump1_run_min_last"].value == pytest.approx(2.0)
    assert out["pump1_run_min_last"].observed_at == t + timedelta(seconds=POLL_S * (12 * 60 - 1))
    assert out["pump1_current_ratio"].value == pytest.approx(0.95)
