"""Telemetry power: is the station's telemetry on its battery, and how long until it goes blind.

`TelemetryHealth` reads `mains_failed`, `battery_voltage_v` and, where the telemetry unit reports itself
(the `rtu-status` map), `rtu_on_battery` and `rtu_battery_voltage_v`:

====================== ===== ================================================================================
point                  unit  meaning
====================== ===== ================================================================================
on_battery             state mains failed or the RTU reports it runs on its battery
battery_blind_in_min   min   while discharging: minutes until the battery voltage reaches `cutoff_v` (the
                             unit stops answering), from a robust straight-line fit of the voltage over the
                             last `fit_window_min` of the discharge (at least `min_fit_min` of it, and
                             until the slope is known to `max_slope_rel_se`); NOT_AVAILABLE on mains
                             (charging), with too little data, or when the fitted voltage is not falling
====================== ===== ================================================================================

Discharging is `rtu_on_battery` where it is reported (the RTU's battery is what keeps the station visible),
else `mains_failed`. The RTU's own voltage is preferred over `battery_voltage_v` when both are reported.
The fit starts `settle_s` after the discharge began (the step from float to on-load voltage is not a trend)
and is Theil–Sen over per-minute medians of the samples, so single garbled reads do not move it. Its slope's
standard error (from the median absolute residual) must be below `max_slope_rel_se` of the slope: with the
0.01 V read noise of a 12 V battery emptying over 6 h, 5 minutes of voltage know the slope only to ±15 %,
so the first estimate comes after about 10 minutes (then within ±20 % even for a 3 σ draw); a slower
discharge takes longer, a steeper one less.
A 12 V lead-acid battery discharges roughly linearly over most of its capacity and falls steeply near the end;
the fit over the last minutes follows that knee, but the estimate is optimistic until the knee shows.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Sequence
from datetime import datetime, timedelta
from itertools import groupby

from pumpwatch.alarms.analyzers import DerivedPoint
from pumpwatch.core.config.models import StationConfig
from pumpwatch.core.sample import Quality, Sample

__all__ = ["DEFAULT_CUTOFF_V", "TelemetryHealth", "theil_sen"]

DEFAULT_CUTOFF_V = 11.0  # 12 V lead-acid telemetry battery: the unit is about to drop out
_MAINS, _RTU_ON_BATTERY = "mains_failed", "rtu_on_battery"
_BATTERY_V, _RTU_BATTERY_V = "battery_voltage_v", "rtu_battery_voltage_v"
_POINTS = frozenset({_MAINS, _RTU_ON_BATTERY, _BATTERY_V, _RTU_BATTERY_V})


def theil_sen(points: Sequence[tuple[float, float]]) -> tuple[float, float] | None:
    """(slope, intercept) of the Theil–Sen line through (x, y) points; None with fewer than 2 distinct x."""
    slopes = [
        (y1 - y0) / (x1 - x0) for i, (x0, y0) in enumerate(points) for x1, y1 in points[i + 1 :] if x1 != x0
    ]
    if not slopes:
        return None
    slope = statistics.median(slopes)
    intercept = statistics.median(y - slope * x for x, y in points)
    return slope, intercept


class TelemetryHealth:
    """Derived telemetry-power points from one station's batches (see the module doc)."""

    def __init__(
        self,
        cfg: StationConfig,
        *,
        cutoff_v: float = DEFAULT_CUTOFF_V,
        fit_window_min: float = 30.0,
        min_fit_min: float = 5.0,
        settle_s: float = 60.0,
        max_slope_rel_se: float = 0.07,
        refit_s: float = 30.0,
    ) -> None:
        if min_fit_min <= 0 or fit_window_min < min_fit_min:
            raise ValueError("need 0 < min_fit_min <= fit_window_min")
        self.cfg = cfg
        self.cutoff_v = cutoff_v
        self.fit_window = timedelta(minutes=fit_window_min)
        self.min_fit = timedelta(minutes=min_fit_min)
        self.settle = timedelta(seconds=settle_s)
        self.max_slope_rel_se = max_slope_rel_se
        self.refit = timedelta(seconds=refit_s)  # between fits the line is extended
        discharging = (_RTU_ON_BATTERY, _MAINS)
        self.outputs: tuple[DerivedPoint, ...] = (
            DerivedPoint("on_battery", None, "state", (discharging,)),
            DerivedPoint(
                "battery_blind_in_min", "min", "analog", ((_RTU_BATTERY_V, _BATTERY_V), discharging)
            ),
        )
        self._mains_failed: bool | None = None
        self._rtu_on_battery: bool | None = None
        self._rtu_reported = False  # the RTU reports its on-battery flag: it decides "discharging"
        self._rtu_volts_reported = False  # ... and its voltage: it is used rather than battery_voltage_v
        self._discharging_since: datetime | None = None
        self._volts: deque[tuple[datetime, float]] = deque()  # (time, V) of the discharge, fit window
        self._fit_known = False  # the slope of this discharge has been known well enough
        self._fit: tuple[datetime, tuple[float, float] | None] | None = None  # (when, line) of the last fit

    def observe(self, samples: Sequence[Sample]) -> list[Sample]:
        if not samples:
            return []
        relevant = sorted((s for s in samples if s.point in _POINTS), key=lambda s: s.observed_at)
        for t, group in groupby(relevant, key=lambda s: s.observed_at):
            items = list(group)
            for s in items:  # flags first, so a voltage read with them is judged by them
                if s.point in (_MAINS, _RTU_ON_BATTERY):
                    self._flag(s)
            self._update_discharge(t)
            self._rtu_volts_reported |= any(s.point == _RTU_BATTERY_V for s in items)
            for s in items:
                if s.point in (_BATTERY_V, _RTU_BATTERY_V):
                    self._voltage(s)
        t = max(s.observed_at for s in samples)
        station = samples[0].station
        return [self._sample(station, "on_battery", self._on_battery(), t), self._blind_in(station, t)]

    # --- input ----------------------------------------------------------------------------------------

    def _flag(self, s: Sample) -> None:
        value = s.value >= 0.5 if s.quality is Quality.GOOD and s.value is not None else None
        if s.point == _MAINS:
            self._mains_failed = value
        else:
            self._rtu_reported = True
            self._rtu_on_battery = value

    def _discharging(self) -> bool | None:
        return self._rtu_on_battery if self._rtu_reported else self._mains_failed

    def _update_discharge(self, t: datetime) -> None:
        discharging = self._discharging()
        if discharging and self._discharging_since is None:
            self._discharging_since = t
            self._volts.clear()
            self._fit_known = False
            self._fit = None
        elif not discharging:  # on mains, or unknown: a later fit must not bridge the gap
            self._discharging_since = None
            self._volts.clear()
            self._fit_known = False
            self._fit = None

    def _voltage(self, s: Sample) -> None:
        if s.point == _BATTERY_V and self._rtu_volts_reported:
            return  # the RTU's own reading is used
        since = self._discharging_since
        if since is None or s.quality is not Quality.GOOD or s.value is None:
            return
        if s.observed_at < since + self.settle:
            return
        self._volts.append((s.observed_at, float(s.value)))
        horizon = s.observed_at - self.fit_window
        while self._volts and self._volts[0][0] < horizon:
            self._volts.popleft()

    # --- output ---------------------------------------------------------------------------------------

    def _on_battery(self) -> bool | None:
        flags = (self._mains_failed, self._rtu_on_battery)
        if any(f is True for f in flags):
            return True
        if self._mains_failed is None or (self._rtu_reported and self._rtu_on_battery is None):
            return None
        return False

    def blind_in_min(self, t: datetime) -> float | None:
        """Minutes from `t` until the fitted voltage reaches the cutoff; None when it cannot tell."""
        if self._discharging_since is None:
            return None
        if self._fit is None or t - self._fit[0] >= self.refit or t < self._fit[0]:
            self._fit = (t, self._line(t))
        t_fit, line = self._fit
        if line is None:
            return None
        slope, v_fit = line
        v_now = v_fit + slope * (t - t_fit).total_seconds() / 60.0
        return max(0.0, (v_now - self.cutoff_v) / -slope)

    def _line(self, t: datetime) -> tuple[float, float] | None:
        """(slope V/min, voltage at t) of the discharge, or None when it is not known well enough."""
        since = self._discharging_since
        if since is None or len(self._volts) < 2 or self._volts[-1][0] - self._volts[0][0] < self.min_fit:
            return None
        bins: dict[int, list[tuple[float, float]]] = {}  # whole minutes since the discharge began
        for when, v in self._volts:
            x = (when - t).total_seconds() / 60.0  # minutes before t
            bins.setdefault(int((when - since).total_seconds() // 60), []).append((x, v))
        full = max(len(b) for b in bins.values())
        groups = [b for b in bins.values() if 2 * len(b) >= full]  # a minute just begun weighs no less
        points = [(statistics.median(x for x, _ in b), statistics.median(v for _, v in b)) for b in groups]
        fit = theil_sen(points)
        if fit is None or fit[0] >= 0:
            return None  # not falling: charging, or flat within the noise
        slope, v_now = fit
        # Once known, the estimate stays unless its error doubles (no flicker at the threshold).
        limit = self.max_slope_rel_se * (2.0 if self._fit_known else 1.0)
        self._fit_known = self._slope_se(groups, points, slope, v_now) <= limit * -slope
        return (slope, v_now) if self._fit_known else None

    @staticmethod
    def _slope_se(
        groups: list[list[tuple[float, float]]],
        points: list[tuple[float, float]],
        slope: float,
        intercept: float,
    ) -> float:
        """Standard error of the fitted slope (V/min), from the larger of two robust noise scales: the
        spread of the reads within their minute (read noise, each minute's median then has 1.25 σ/√n) and
        the spread of the minute medians about the line (what the line does not explain)."""
        within = [abs(v - m) for b, (_, m) in zip(groups, points, strict=True) for _, v in b]
        sigma_read = 1.4826 * statistics.median(within) * 1.2533 / (len(within) / len(groups)) ** 0.5
        sigma_fit = 1.4826 * statistics.median(abs(v - (intercept + slope * x)) for x, v in points)
        x_mean = statistics.fmean(x for x, _ in points)
        spread = sum((x - x_mean) ** 2 for x, _ in points)
        sigma: float = max(sigma_read, sigma_fit)  # (statistics.median is typed Any)
        return sigma / math.sqrt(spread)

    def _blind_in(self, station: str, t: datetime) -> Sample:
        return self._sample(station, "battery_blind_in_min", self.blind_in_min(t), t)

    @staticmethod
    def _sample(station: str, name: str, value: float | bool | None, t: datetime) -> Sample:
        if value is None:
            return Sample(station, name, None, t, Quality.NOT_AVAILABLE)
        return Sample(station, name, float(value), t, Quality.GOOD)
