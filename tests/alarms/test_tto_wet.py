"""Wet weather is an added flow, and the forecast follows a rise at once (issue 17, item 1), on synthetic
levels whose inflow is known exactly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from pumpwatch.alarms.analyzers.overflow import OverflowForecaster
from pumpwatch.alarms.profiles import load_profile
from pumpwatch.core.config.loader import load_fleet
from pumpwatch.core.config.models import StationConfig
from pumpwatch.core.hydraulics import StageStorage
from pumpwatch.core.sample import Sample
from tests.alarms.test_overflow import DEMO

TZ = ZoneInfo("Asia/Tokyo")
PUMP = 0.5  # m³/min, the demo pumps' rated flow (what the synthetic pumps deliver)


def drive(
    cfg: StationConfig, start: datetime, cut: datetime, inflow, *, after_min: float
) -> tuple[OverflowForecaster, float]:
    """A wet well filled by `inflow(t)` (m³/min), one pump at PUMP between start_m and stop_m, sampled
    every 5 s; the mains cut at `cut`, then `after_min` minutes of outage. Returns the forecaster and the
    true level at the end."""
    storage = StageStorage.from_station(cfg)
    lv = cfg.levels
    assert lv is not None
    v = storage.volume(lv.stop_m + 0.1)
    running = False
    fc = OverflowForecaster(cfg, timezone="Asia/Tokyo")
    t = start
    end = cut + timedelta(minutes=after_min)
    while t <= end:
        outage = t >= cut
        z = storage.level(v)
        if not outage:
            if z >= lv.start_m:
                running = True
            elif z <= lv.stop_m:
                running = False
        else:
            running = False
        fc.observe(
            [
                Sample(cfg.id, "wet_well_level_m", round(z * 100) / 100, t),
                Sample(cfg.id, "pump1_running", float(running), t),
                Sample(cfg.id, "pump2_running", 0.0, t),
                Sample(cfg.id, "mains_failed", float(outage), t),
            ]
        )
        v += (inflow(t) - (PUMP if running else 0.0)) * 5 / 60
        t += timedelta(seconds=5)
    return fc, storage.level(v)


def true_minutes(cfg: StationConfig, z: float, q: float) -> float:
    s = StageStorage.from_station(cfg)
    assert cfg.levels is not None
    return (s.volume_with_flow(cfg.levels.spill_m, q) - s.volume_with_flow(z, q)) / q


@pytest.fixture(scope="module")
def mp01() -> StationConfig:
    return load_fleet(DEMO).stations["KITA-MP-01"]  # 375 people: 0.078 m³/min dry-weather average


def test_steady_infiltration_at_night_is_an_added_flow(mp01: StationConfig) -> None:
    """The catchment's dry-weather flow (0.078 m³/min × the profile) plus 0.15 m³/min of infiltration all
    night: the infiltration does not fall with the night profile. Multiplying the whole inflow by the
    profile (the model before issue 17) forecasts far too long."""
    profile = load_profile()

    def f(t: datetime) -> float:
        h = t.astimezone(TZ).hour + t.astimezone(TZ).minute / 60
        i = int(h)
        return profile[i] + (profile[(i + 1) % 24] - profile[i]) * (h - i)

    def inflow(t: datetime) -> float:
        return 0.078 * f(t) + 0.15

    cut = datetime(2026, 7, 7, 1, 0, tzinfo=TZ).astimezone(UTC)
    fc, z = drive(mp01, cut - timedelta(hours=3), cut, inflow, after_min=5)
    fcst = fc.last_forecast
    assert fcst is not None and fcst.mains_failed
    s = StageStorage.from_station(mp01)
    assert mp01.levels is not None
    now = cut + timedelta(minutes=5)
    need = s.volume_with_flow(mp01.levels.spill_m, inflow(now)) - s.volume_with_flow(z, inflow(now))
    truth, acc = 0.0, 0.0
    while acc < need:  # 6-s steps of the true inflow
        acc += inflow(now + timedelta(minutes=truth)) * 0.1
        truth += 0.1
    assert fcst.tto_spill_min == pytest.approx(truth, rel=0.08)
    x0 = fc._local_minute(fcst.at.timestamp())
    multiplicative = fc._minutes_to_fill(fcst.volume_to_spill_m3, fcst.inflow_m3_min / fc.f_at(fcst.at), x0)
    assert multiplicative is not None and multiplicative > 1.15 * truth


def test_a_rise_just_before_the_cut_is_followed(mp01: StationConfig) -> None:
    """Dry weather, then the inflow doubles 8 minutes before the cut (a thunderstorm): the forecast at
    +4 min already uses the new inflow (the mean of the last 10 minutes: at +2 min it still lags, +10 %)."""
    cut = datetime(2026, 7, 7, 19, 0, tzinfo=TZ).astimezone(UTC)
    rain_from = cut - timedelta(minutes=8)
    q_dry = 0.078 * 1.35  # the profile's 19:00 figure

    def inflow(t: datetime) -> float:
        return q_dry * (2.0 if t >= rain_from else 1.0)

    fc, z = drive(mp01, cut - timedelta(hours=3), cut, inflow, after_min=4)
    f = fc.last_forecast
    assert f is not None and f.surge
    truth = true_minutes(mp01, z, 2 * q_dry)
    assert f.tto_spill_min <= 1.10 * truth  # without following it would be ~1.9 × (the dry-weather inflow)
    assert f.inflow_m3_min >= 0.85 * 2 * q_dry
