"""TelemetryHealth: on battery, and "blind in N minutes" against the simulated telemetry battery."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path

import pytest

from pumpwatch.alarms.analyzers import Analyzer
from pumpwatch.alarms.analyzers.telemetry import TelemetryHealth, theil_sen
from pumpwatch.core.config import load_fleet
from pumpwatch.core.config.models import StationConfig
from pumpwatch.core.sample import Quality, Sample
from pumpwatch.simulators.manhole import ManholePumpStation
from pumpwatch.simulators.rtu import BATTERY_EMPTY_V, BATTERY_FULL_V, TelemetryRTU

DEMO_FLEET = Path(__file__).resolve().parents[2] / "deploy" / "config" / "demo"
SID = "KITA-MP-01"
T0 = datetime(2026, 7, 1, 15, 0, tzinfo=UTC)
POLL_S = 5


@lru_cache
def station_config(sid: str = SID) -> StationConfig:
    return load_fleet(DEMO_FLEET).stations[sid]


def clean_voltage(soc: float) -> float:
    """The simulator's battery voltage without its read noise."""
    return BATTERY_EMPTY_V + (BATTERY_FULL_V - BATTERY_EMPTY_V) * soc


def by_point(out: list[Sample]) -> dict[str, Sample]:
    return {s.point: s for s in out}


def test_outputs() -> None:
    th: Analyzer = TelemetryHealth(station_config())
    assert [(o.name, o.unit, o.kind) for o in th.outputs] == [
        ("on_battery", None, "state"),
        ("battery_blind_in_min", "min", "analog"),
    ]
    t = T0 + timedelta(seconds=3)
    out = by_point(
        th.observe([Sample(SID, "mains_failed", 0.0, T0), Sample(SID, "battery_voltage_v", 13.6, t)])
    )
    assert out["on_battery"].value == 0.0 and out["on_battery"].observed_at == t
    blind = out["battery_blind_in_min"]
    assert blind.value is None and blind.quality is Quality.NOT_AVAILABLE  # on mains: charging
    assert th.observe([]) == []


@pytest.mark.parametrize("seed", [7, 8])
def test_blind_in_minutes_during_an_outage_matches_the_simulated_battery(seed: int) -> None:
    cfg = station_config()
    st = ManholePumpStation(cfg, seed, T0)  # 6 h battery: 12.8 V → 10.5 V
    th = TelemetryHealth(cfg)  # cutoff 11.0 V
    now = T0
    predicted: list[tuple[datetime, float | None]] = []
    on_battery: list[float | None] = []
    cutoff_at = None
    outage = T0 + timedelta(minutes=30)
    while cutoff_at is None or now < cutoff_at + timedelta(minutes=5):
        now += timedelta(seconds=POLL_S)
        if now == outage + timedelta(seconds=POLL_S):
            st.set_mains(False)  # the outage begins within this poll interval
        st.step(now)
        batch = [Sample(SID, p, None if v is None else float(v), now) for p, v in st.point_values().items()]
        out = by_point(th.observe(batch))
        if now > outage:
            predicted.append((now, out["battery_blind_in_min"].value))
            on_battery.append(out["on_battery"].value)
        elif now > T0 + timedelta(seconds=POLL_S):
            assert out["on_battery"].value == 0.0 and out["battery_blind_in_min"].value is None
        if cutoff_at is None and clean_voltage(st.battery_soc) <= th.cutoff_v:
            cutoff_at = now
    assert set(on_battery) == {1.0}
    actual_min = (cutoff_at - outage).total_seconds() / 60
    assert actual_min == pytest.approx(6 * 60 * (12.8 - 11.0) / (12.8 - 10.5), abs=1)  # ≈ 282 min

    first = next(t for t, v in predicted if v is not None)
    # 1 min to settle, then ≥ 5 min of voltage and a slope known to ±7 %: measured 10.5 min.
    assert timedelta(minutes=6) <= first - outage <= timedelta(minutes=12)
    assert all(v is None for t, v in predicted if t < first)
    checked = 0
    for t, v in predicted:
        remaining = (cutoff_at - t).total_seconds() / 60
        if t < first or remaining < 10:
            continue
        assert v is not None, f"{(t - outage)} into the outage"
        assert v == pytest.approx(remaining, rel=0.2), f"{(t - outage)} into the outage"
        checked += 1
    assert checked > 3000
    # A quarter of an hour into the outage, far better than ±20 %.
    t15 = outage + timedelta(minutes=15)
    v15 = next(v for t, v in predicted if t >= t15)
    assert v15 == pytest.approx((cutoff_at - t15).total_seconds() / 60, rel=0.1)
    assert predicted[-1][1] == 0.0  # past the cutoff

    # Mains back: charging, no estimate.
    st.set_mains(True)
    now += timedelta(seconds=POLL_S)
    st.step(now)
    out = by_point(th.observe([Sample(SID, p, float(v), now) for p, v in st.point_values().items()]))
    assert out["on_battery"].value == 0.0
    assert out["battery_blind_in_min"].quality is Quality.NOT_AVAILABLE


def test_rtu_battery_is_used_when_the_rtu_reports_itself() -> None:
    """The RTU's station has mains; the RTU is powered elsewhere and runs on its own 1.5 h battery."""
    mains = {"ok": True}
    rtu = TelemetryRTU("gw-1", lambda: mains["ok"], T0, seed=3, battery_hours=1.5)
    th = TelemetryHealth(station_config(), cutoff_v=10.5)  # 10.5 V: where the simulated RTU dies
    now = T0
    mains["ok"] = False
    estimates: list[tuple[datetime, float | None]] = []
    while rtu.alive:
        now += timedelta(seconds=POLL_S)
        rtu.step(now)
        batch = [Sample(SID, p, float(v), now) for p, v in rtu.point_values().items()]
        batch += [Sample(SID, "mains_failed", 0.0, now), Sample(SID, "battery_voltage_v", 13.6, now)]
        out = by_point(th.observe(batch))
        assert out["on_battery"].value == 1.0
        estimates.append((now, out["battery_blind_in_min"].value))
    assert rtu.died_at is not None
    for t, v in estimates:
        remaining = (rtu.died_at - t).total_seconds() / 60
        if v is not None and remaining >= 10:
            assert v == pytest.approx(remaining, rel=0.2)
    assert sum(v is not None for _, v in estimates) > len(estimates) * 0.8


def test_the_fit_shrugs_off_garbled_reads() -> None:
    th = TelemetryHealth(station_config())
    t = T0
    th.observe([Sample(SID, "mains_failed", 0.0, t), Sample(SID, "battery_voltage_v", 13.6, t)])
    out: dict[str, Sample] = {}
    for k in range(1, 12 * 20 + 1):  # 20 minutes on battery, 0.01 V/min from 12.6 V
        t = T0 + timedelta(seconds=POLL_S * k)
        v = 12.6 - 0.01 * k * POLL_S / 60
        batch = [Sample(SID, "mains_failed", 1.0, t)]
        if k % 7 == 0:
            batch.append(Sample(SID, "battery_voltage_v", 0.0, t))  # a garbled read that passed as good
        elif k % 11 == 0:
            batch.append(Sample(SID, "battery_voltage_v", 655.35, t, Quality.BAD_VALUE))
        elif k % 13 == 0:
            batch.append(Sample(SID, "battery_voltage_v", 14.2, t))
        else:
            batch.append(Sample(SID, "battery_voltage_v", v, t))
        out = by_point(th.observe(batch))
    v_now = 12.6 - 0.01 * 20
    assert out["battery_blind_in_min"].value == pytest.approx((v_now - 11.0) / 0.01, rel=0.03)  # 140 min


def test_no_estimate_without_a_falling_voltage_or_enough_of_it() -> None:
    th = TelemetryHealth(station_config())
    t = T0
    out: dict[str, Sample] = {}
    # The station's mains failed, but its telemetry battery is charged from elsewhere: it stays at float.
    for _ in range(12 * 15):
        t += timedelta(seconds=POLL_S)
        out = by_point(
            th.observe([Sample(SID, "mains_failed", 1.0, t), Sample(SID, "battery_voltage_v", 13.6, t)])
        )
        assert out["on_battery"].value == 1.0
    assert out["battery_blind_in_min"].quality is Quality.NOT_AVAILABLE
    # Mains status unknown (comm trouble): neither on battery nor a fit across the gap.
    t += timedelta(seconds=POLL_S)
    out = by_point(th.observe([Sample(SID, "mains_failed", None, t, Quality.COMM_LOSS)]))
    assert out["on_battery"].quality is Quality.NOT_AVAILABLE
    assert out["battery_blind_in_min"].quality is Quality.NOT_AVAILABLE
    # A real discharge, but only 4 minutes of it after the settling minute: not enough yet.
    th = TelemetryHealth(station_config(), settle_s=60, min_fit_min=5)

    def discharge(k: int) -> dict[str, Sample]:
        v = 12.8 - 0.01 * k * POLL_S / 60
        when = t + timedelta(seconds=POLL_S * k)
        return by_point(
            th.observe([Sample(SID, "mains_failed", 1.0, when), Sample(SID, "battery_voltage_v", v, when)])
        )

    for k in range(12 * 5 + 1):
        out = discharge(k)
    assert out["battery_blind_in_min"].quality is Quality.NOT_AVAILABLE
    out = discharge(12 * 6 + 1)  # 5 min of voltage after the first minute
    assert out["battery_blind_in_min"].value == pytest.approx((12.8 - 0.01 * 6 - 11.0) / 0.01, rel=0.01)


def test_theil_sen() -> None:
    slope, intercept = theil_sen([(0, 1.0), (1, 3.0), (2, 5.0), (3, 100.0), (4, 9.0)])  # type: ignore[misc]
    assert slope == pytest.approx(2.0) and intercept == pytest.approx(1.0)
    assert theil_sen([(1.0, 2.0), (1.0, 3.0)]) is None
