"""Time to overflow (`alarms.analyzers.overflow`) against the simulator's actual spill time.

Each case drives a seeded `ManholePumpStation` of the demo fleet through hours of normal operation, feeding
`point_values()` to the forecaster as a collector polling every few seconds would (level quantised to the
register's 0.01 m), then cuts mains at a local time and runs the station until it spills. The oracle is the
simulator's `spilled_at`. The simulator's inflow carries ±30 % lognormal noise redrawn every 2 min, so part of
the error is the noise still to come after the outage, which no forecaster can know; the seed of each case is
fixed in advance (the local outage hour), not chosen for its result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from pumpwatch.alarms.analyzers import DerivedPoint
from pumpwatch.alarms.analyzers.overflow import HORIZON_MIN, OverflowForecast, OverflowForecaster
from pumpwatch.alarms.profiles import load_profile, normalise_profile
from pumpwatch.core.config.loader import Fleet, load_fleet
from pumpwatch.core.config.models import Catchment, StationConfig
from pumpwatch.core.sample import Quality, Sample
from pumpwatch.simulators.inflow import DIURNAL
from pumpwatch.simulators.manhole import ManholePumpStation

DEMO = Path(__file__).resolve().parents[2] / "deploy" / "config" / "demo"
TZ = ZoneInfo("Asia/Tokyo")
WARMUP = timedelta(hours=4)
FIRST_MINUTES = timedelta(minutes=5)
OUTPUT_NAMES = ("inflow_m3_min", "tto_hwl_min", "tto_spill_min", "tto_spill_conservative_min")


@lru_cache
def fleet() -> Fleet:
    return load_fleet(DEMO)


def station(sid: str, population: int | None = None) -> StationConfig:
    cfg = fleet().stations[sid]
    if population is not None:
        assert cfg.catchment is not None
        cfg = cfg.model_copy(update={"catchment": Catchment(population=population)})
    return cfg


def local(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 7, 1, hour, minute, tzinfo=TZ).astimezone(UTC)


def batch(st: ManholePumpStation, at: datetime, quality: Quality = Quality.GOOD) -> list[Sample]:
    """Every point of the panel as one poll batch; the level quantised as its register (×0.01 m) is."""
    out = []
    for name, v in st.point_values().items():
        if v is not None and name == "wet_well_level_m":
            v = round(v * 100) / 100
        value = None if v is None or quality is not Quality.GOOD else float(v)
        out.append(Sample(st.id, name, value, at, quality))
    return out


def by_point(samples: list[Sample]) -> dict[str, Sample]:
    return {s.point: s for s in samples}


@dataclass(frozen=True)
class Outage:
    at: datetime
    spilled_at: datetime
    before: OverflowForecast  # the last forecast before the outage (pumps cycling: "if power failed now")
    first: list[tuple[datetime, OverflowForecast]]  # every forecast of the first 5 minutes of the outage

    @property
    def actual_min(self) -> float:
        return (self.spilled_at - self.at).total_seconds() / 60

    def error(self, when: datetime, fc: OverflowForecast) -> float:
        """Relative error of the forecast against the spill time still to come at `when`."""
        remaining = (self.spilled_at - when).total_seconds() / 60
        return (fc.tto_spill_min - remaining) / remaining


@cache
def outage(
    sid: str,
    hour: int,
    *,
    seed: int | None = None,
    poll_s: int = 5,
    population: int | None = None,
    rain: float = 1.0,
    rain_lead_min: int = 0,
) -> Outage:
    """Normal operation for WARMUP, mains cut at `hour`:00 local time, then run until the station spills.
    `rain` multiplies the inflow from `rain_lead_min` before the outage on."""
    cfg = station(sid, population)
    at = local(hour)
    t = at - WARMUP
    st = ManholePumpStation(cfg, hour if seed is None else seed, t)
    fc = OverflowForecaster(cfg, timezone="Asia/Tokyo")
    poll = timedelta(seconds=poll_s)
    rain_from = at - timedelta(minutes=rain_lead_min)
    while (t := t + poll) < at:
        if t >= rain_from:
            st.rain_factor = rain
        st.step(t)
        fc.observe(batch(st, t))
    assert fc.last_forecast is not None
    before = fc.last_forecast
    st.step(at)
    st.set_mains(False)
    st.rain_factor = rain
    first = []
    t = at
    while t <= at + FIRST_MINUTES:
        st.step(t)
        fc.observe(batch(st, t))
        first.append((t, fc.last_forecast))
        t += poll
    while st.spilled_at is None and t < at + timedelta(hours=30):
        t += timedelta(minutes=30)
        st.step(t)
    assert st.spilled_at is not None, "the station never spilled"
    return Outage(at, st.spilled_at, before, first)  # type: ignore[arg-type]


CASES = [
    pytest.param(sid, hour, poll, id=f"{sid}-{hour:02d}h")
    for sid, poll in (("KITA-MP-01", 5), ("KITA-MP-03", 2), ("KITA-MP-04", 5), ("KITA-MP-07", 5))
    for hour in (2, 8, 19)
]


# --- the acceptance oracle: the simulator's own spill ----------------------------------------------------


@pytest.mark.parametrize(("sid", "hour", "poll"), CASES)
def test_tto_within_15_percent_of_the_actual_spill(sid: str, hour: int, poll: int) -> None:
    o = outage(sid, hour, poll_s=poll)
    assert o.first, "no forecast after the outage"
    for when, fc in o.first:
        assert fc.mains_failed is True
        err = o.error(when, fc)
        assert abs(err) <= 0.15, f"{when:%H:%M:%S}: {fc.tto_spill_min:.1f} min, error {err:+.1%}"
        assert fc.method == "pump_balance" and not fc.surge and fc.confidence == "high"
        assert fc.tto_hwl_min < fc.tto_spill_min
        assert fc.spill_at is not None and fc.spill_conservative_at is not None
        assert fc.tto_spill_conservative_min < min(fc.tto_spill_min, o.actual_min)


@pytest.mark.parametrize(("sid", "hour", "poll"), CASES)
def test_tto_before_the_outage_is_in_the_same_ballpark(sid: str, hour: int, poll: int) -> None:
    """While the pumps cycle, the figure is the time to spill if the power failed now."""
    o = outage(sid, hour, poll_s=poll)
    assert o.before.mains_failed is False
    err = (o.before.tto_spill_min - o.actual_min) / o.actual_min
    assert abs(err) <= 0.25, f"{o.before.tto_spill_min:.1f} min before vs {o.actual_min:.1f} actual"


def test_learned_pump_flows_and_inflow_are_close_to_the_truth() -> None:
    o = outage("KITA-MP-01", 19)
    fc = o.first[-1][1]
    for q in fc.pump_flow_m3_min:
        assert q == pytest.approx(0.5, rel=0.05)  # the simulator's pumps deliver their rated flow
    q_true = 375 * 300 / 1000 / 1440 * DIURNAL[19]  # the simulator's mean inflow at 19:00
    assert fc.inflow_m3_min == pytest.approx(q_true, rel=0.15)
    assert fc.inflow_balance_m3_min == pytest.approx(fc.inflow_m3_min, rel=0.05)


def test_bigger_catchment_gives_a_shorter_tto() -> None:
    for hour in (2, 8, 19):
        small, large = outage("KITA-MP-04", hour), outage("KITA-MP-07", hour)  # mps-large, 900 vs 1200
        assert large.first[-1][1].tto_spill_min < small.first[-1][1].tto_spill_min
    # the same station and seed, twice the people: about half the time
    base = outage("KITA-MP-01", 19)
    double = outage("KITA-MP-01", 19, population=750)
    ratio = double.first[-1][1].tto_spill_min / base.first[-1][1].tto_spill_min
    assert 0.4 < ratio < 0.65
    assert double.actual_min < base.actual_min


def test_night_outage_integrates_the_rising_morning_profile() -> None:
    """At 02:00 the inflow is half its average; a constant-rate forecast would be far too long."""
    o = outage("KITA-MP-01", 2)
    fc = o.first[-1][1]
    constant = fc.volume_to_spill_m3 / fc.inflow_m3_min
    assert fc.tto_spill_min < 0.8 * constant
    assert abs(o.error(*o.first[-1])) <= 0.15


@pytest.mark.parametrize("sid", ["KITA-MP-01", "KITA-MP-07"])
def test_rain_before_the_outage_is_followed(sid: str) -> None:
    """Inflow ×2 from 30 min before the outage (a thunderstorm): the step is detected from the fills and
    the forecast follows it; without that the figure would be 60–70 % too long."""
    o = outage(sid, 19, rain=2.0, rain_lead_min=30)
    when, fc = o.first[-1]
    assert fc.surge
    assert abs(o.error(when, fc)) <= 0.25
    assert fc.tto_spill_conservative_min < o.actual_min


# --- level faults ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault_flag", [False, True], ids=["reads-0", "reads-0-with-fault-flag"])
def test_dead_gauge_does_not_reassure(fault_flag: bool) -> None:
    """The gauge dies reading 0 m (docs/domain.md §5): the panel stops the pumps until the HWL float forces
    them for a minute, so the level saws between ~0.85 m and hwl_m. The forecaster must not believe the
    0 m: it dead-reckons the level from the last good one with the inflow and the pumps it sees run, and
    whenever the float is up it forecasts from at least hwl_m — close to what the station actually does if
    the power fails then (a twin run of the simulator)."""
    cfg = station("KITA-MP-01")
    assert cfg.levels is not None
    start, died = local(15), local(17)
    fc = OverflowForecaster(cfg)
    st = ManholePumpStation(cfg, 3, start)
    t, float_up_at = start, None
    while (t := t + timedelta(seconds=5)) <= died + timedelta(minutes=45):
        st.step(t)
        if t >= died and not st.sensor_stuck_low:
            st.set_sensor_stuck_low(True, fault_flag=fault_flag)
        fc.observe(batch(st, t))
        f = fc.last_forecast
        if t > died:
            assert f is not None
            assert f.level_source in ("dead_reckoned", "hwl_float")
            assert f.level_m >= st.level_m - 0.15, f"{t:%H:%M:%S}: {f.level_m:.2f} m, true {st.level_m:.2f}"
            if st.hwl_float:
                assert f.level_m >= cfg.levels.hwl_m - 1e-6 and f.tto_hwl_min == 0
                float_up_at = float_up_at or (t, f)
    assert float_up_at is not None, "scenario: the HWL float should have come up"
    when, f = float_up_at
    twin = ManholePumpStation(cfg, 3, start)
    twin.step(died)
    twin.set_sensor_stuck_low(True, fault_flag=fault_flag)
    twin.step(when)
    twin.set_mains(False)
    twin.step(when + timedelta(hours=12))
    assert twin.spilled_at is not None
    actual = (twin.spilled_at - when).total_seconds() / 60
    assert 0.85 * actual <= f.tto_spill_min <= 1.15 * actual


def test_gauge_reading_zero_against_the_hwl_float_is_floored() -> None:
    cfg = station("KITA-MP-01")
    assert cfg.levels is not None
    fc = OverflowForecaster(cfg)
    t = local(19)
    for i in range(60):  # 5 min of a fill at 0.085 m³/min from 0.6 m
        fc.observe(_synthetic(cfg, t + timedelta(seconds=5 * i), 0.6 + 0.048 / 60 * 5 * i))
    before = fc.last_forecast
    assert before is not None and before.level_source == "measured"
    dead = _synthetic(cfg, t + timedelta(seconds=300), 0.0, hwl_float=True, lwl_float=None)
    out = by_point(fc.observe(dead))
    f = fc.last_forecast
    assert f is not None and f.level_m >= cfg.levels.hwl_m - 1e-6 and f.level_source == "hwl_float"
    assert out["tto_hwl_min"].value == 0
    assert out["tto_spill_min"].value < before.tto_spill_min - 5  # from hwl_m, not from the gauge's 0 m


def _synthetic(
    cfg: StationConfig,
    at: datetime,
    level: float | None,
    *,
    running: bool = False,
    mains_failed: bool = False,
    hwl_float: bool = False,
    lwl_float: bool | None = False,
    quality: Quality = Quality.GOOD,
) -> list[Sample]:
    values: dict[str, float | None] = {
        "wet_well_level_m": None if level is None else round(level * 100) / 100,
        "mains_failed": float(mains_failed),
        "hwl_float": float(hwl_float),
        "pump1_running": float(running),
        "pump2_running": 0.0,
    }
    if lwl_float is not None:
        values["lwl_float"] = float(lwl_float)
    return [
        Sample(cfg.id, k, v, at, quality if k == "wet_well_level_m" else Quality.GOOD)
        for k, v in values.items()
    ]


# --- availability and comm loss --------------------------------------------------------------------------


def test_no_estimate_from_a_couple_of_samples() -> None:
    cfg = station("KITA-MP-01")
    start = local(19)
    st = ManholePumpStation(cfg, 1, start)
    fc = OverflowForecaster(cfg)
    for k in (1, 2):
        t = start + timedelta(seconds=5 * k)
        st.step(t)
        out = fc.observe(batch(st, t))
        assert [s.point for s in out] == list(OUTPUT_NAMES)
        assert all(s.quality is Quality.NOT_AVAILABLE and s.value is None for s in out)
        assert all(s.observed_at == t and s.station == cfg.id for s in out)
    assert fc.last_forecast is None
    # a few minutes of fills are enough for a first (low-confidence) figure
    t = start
    while fc.last_forecast is None and t < start + timedelta(minutes=30):
        t += timedelta(seconds=5)
        st.step(t)
        fc.observe(batch(st, t))
    assert fc.last_forecast is not None
    assert t - start >= timedelta(minutes=3)


def test_not_available_until_a_good_level() -> None:
    cfg = station("KITA-MP-01")
    fc = OverflowForecaster(cfg)
    t = local(19)
    for i in range(400):  # > 30 min of comm loss
        out = fc.observe(_synthetic(cfg, t + timedelta(seconds=5 * i), None, quality=Quality.COMM_LOSS))
        assert all(s.quality is Quality.NOT_AVAILABLE and s.value is None for s in out)
    assert fc.last_forecast is None
    assert fc.observe([]) == []


def test_comm_loss_keeps_the_forecast_from_the_last_good_level() -> None:
    """During an outage the telemetry may lose its link: the spill time stays where it was (the level is
    dead-reckoned with the inflow estimate), and the outputs stay GOOD."""
    cfg = station("KITA-MP-01")
    at = local(19)
    t = at - WARMUP
    st = ManholePumpStation(cfg, 19, t)
    fc = OverflowForecaster(cfg)
    while (t := t + timedelta(seconds=5)) < at:
        st.step(t)
        fc.observe(batch(st, t))
    st.step(at)
    st.set_mains(False)
    for _ in range(24):
        t += timedelta(seconds=5)
        st.step(t)
        fc.observe(batch(st, t))
    good = fc.last_forecast
    assert good is not None and good.spill_at is not None
    for _ in range(120):  # 10 min without a value
        t += timedelta(seconds=5)
        st.step(t)
        out = by_point(fc.observe(batch(st, t, Quality.COMM_LOSS)))
        assert all(s.quality is Quality.GOOD for s in out.values())
    lost = fc.last_forecast
    assert lost is not None and lost.level_source == "dead_reckoned" and lost.spill_at is not None
    assert abs((lost.spill_at - good.spill_at).total_seconds()) < 60
    assert lost.level_m > good.level_m
    assert abs(lost.level_m - st.level_m) < 0.05  # the dead-reckoned level follows the true one
    # the link returns: measured again, and consistent
    t += timedelta(seconds=5)
    st.step(t)
    fc.observe(batch(st, t))
    assert fc.last_forecast is not None and fc.last_forecast.level_source == "measured"


def test_a_backlog_batch_is_taken_in_time_order() -> None:
    """An MQTT backlog may carry several times in one batch, in any order; outputs carry the newest."""
    cfg = station("KITA-MP-01")
    t0 = local(19)
    one, two = OverflowForecaster(cfg), OverflowForecaster(cfg)
    backlog: list[Sample] = []
    for i in range(240):  # 20 min of a steady fill at 0.09 m³/min in a φ1500 wet well
        t = t0 + timedelta(seconds=5 * i)
        samples = _synthetic(cfg, t, 0.5 + 0.09 / 1.767 * (5 * i / 60))
        one.observe(samples)
        backlog += samples
    out = two.observe(list(reversed(backlog)))
    assert {s.observed_at for s in out} == {t0 + timedelta(seconds=5 * 239)}
    a, b = one.last_forecast, two.last_forecast
    assert a is not None and b is not None
    assert b.tto_spill_min == pytest.approx(a.tto_spill_min)
    assert b.method == "fill_rate"
    assert b.inflow_m3_min == pytest.approx(0.09, rel=0.1)


def test_a_frozen_gauge_stops_counting_as_fill() -> None:
    """A gauge stuck at one value while the pumps are off would read as zero inflow: after 15 min it is no
    longer trusted, and the minutes it was flat are not counted."""
    cfg = station("KITA-MP-01")
    t0 = local(19)
    fc = OverflowForecaster(cfg)
    for i in range(240):
        fc.observe(_synthetic(cfg, t0 + timedelta(seconds=5 * i), 0.5 + 0.09 / 1.767 * (5 * i / 60)))
    q = fc.last_forecast.inflow_m3_min  # type: ignore[union-attr]
    for i in range(240, 240 + 300):  # 25 min frozen
        fc.observe(_synthetic(cfg, t0 + timedelta(seconds=5 * i), 0.5 + 0.09 / 1.767 * (5 * 239 / 60)))
    f = fc.last_forecast
    assert f is not None and f.level_source == "dead_reckoned"
    assert f.inflow_m3_min == pytest.approx(q * f.inflow_m3_min / q, rel=0.02)
    assert f.inflow_scale_m3_min == pytest.approx(q / fc.f_at(t0 + timedelta(seconds=5 * 239)), rel=0.05)


# --- the analyzer protocol and the profile ---------------------------------------------------------------


def test_outputs_and_protocol() -> None:
    fc = OverflowForecaster(station("KITA-MP-04"))
    assert fc.outputs == (
        DerivedPoint("inflow_m3_min", "m3/min", "analog"),
        DerivedPoint("tto_hwl_min", "min", "analog"),
        DerivedPoint("tto_spill_min", "min", "analog"),
        DerivedPoint("tto_spill_conservative_min", "min", "analog"),
    )
    plant = StationConfig(
        id="PLANT", tenant="kita", name="plant", kind="treatment_plant", plant={"design_flow_m3_d": 1000}
    )
    with pytest.raises(ValueError, match="no wet well"):
        OverflowForecaster(plant)


def test_beyond_the_horizon_is_reported_as_a_day() -> None:
    cfg = station("KITA-MP-04", population=10)
    fc = OverflowForecaster(cfg)
    t0 = local(19)
    for i in range(120):  # 10 min of a very slow fill: 0.002 m³/min
        fc.observe(_synthetic(cfg, t0 + timedelta(seconds=5 * i), 0.6 + 0.002 / 1.767 * (5 * i / 60)))
    f = fc.last_forecast
    assert f is not None
    assert f.tto_spill_min == HORIZON_MIN and f.spill_at is None


def test_default_profile_is_the_domain_table() -> None:
    prof = load_profile()
    assert prof == pytest.approx(DIURNAL)
    assert sum(prof) / 24 == pytest.approx(1.0)
    assert normalise_profile([2.0] * 24) == pytest.approx((1.0,) * 24)
    for bad in ([1.0] * 23, [1.0] * 23 + [0.0], [1.0] * 23 + [math.nan], "flat"):
        with pytest.raises(ValueError):
            normalise_profile(bad)


def test_a_flat_profile_changes_the_night_forecast() -> None:
    """With the profile, the 02:00 forecast expects the morning rise; a flat profile does not."""
    cfg = station("KITA-MP-01")
    t0 = local(2)
    shaped, flat = OverflowForecaster(cfg), OverflowForecaster(cfg, profile=[1.0] * 24)
    for i in range(240):
        samples = _synthetic(cfg, t0 + timedelta(seconds=5 * i), 0.5 + 0.04 / 1.767 * (5 * i / 60))
        shaped.observe(samples)
        flat.observe(samples)
    a, b = shaped.last_forecast, flat.last_forecast
    assert a is not None and b is not None
    assert a.inflow_m3_min == pytest.approx(0.04, rel=0.1)
    assert b.inflow_m3_min >= a.inflow_m3_min  # (the flat one expects more at night from the catchment)
    assert a.tto_spill_min < b.tto_spill_min  # the shaped one knows the morning is coming
