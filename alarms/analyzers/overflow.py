"""Time to overflow of a pumping station (docs/domain.md §3.2): "if no pump ran from now on, when would the
wet well reach the high-water level, and when would it spill?" — the figure a duty officer needs before (and
during) a power outage to rank stations for mobile generators and vacuum trucks.

`OverflowForecaster(cfg, timezone=..., profile=...)` observes one station's sample batches
(`wet_well_level_m`, `pumpN_running` for every configured pump, `mains_failed`, `hwl_float`, `lwl_float`,
`level_sensor_fault`; missing points are tolerated) and derives

========================== ====== ==========================================================================
point                      unit   meaning
========================== ====== ==========================================================================
inflow_m3_min              m3/min current mean inflow estimate, Q_now = k · f(now)
tto_hwl_min                min    time until the level reaches `levels.hwl_m` if no pump runs from now
                                  (0 when above)
tto_spill_min              min    time until the level reaches `levels.spill_m` if no pump runs from now:
                                  the best unbiased estimate (raw storage, expected inflow); alarms use it
tto_spill_conservative_min min    dispatch margin: storage × `upstream.usable_fraction`, inflow
                                  1.2 × max(fill rate of the last hour, k · f(t)) (docs/domain.md §3.2)
========================== ====== ==========================================================================

A time beyond the 24 h horizon is reported as 1440 ("at least a day"). Before the inflow has been measured
(see below) or before any good level the outputs are NOT_AVAILABLE with value None. `last_forecast` holds
an `OverflowForecast` with every figure, the method, a confidence and the times (`spill_at`) for dispatch
ranking.

Inflow model. The inflow is `Q(t) = k · f(t)`: f is the hourly profile (default
`alarms/profiles/residential.yaml`, docs/domain.md §1.3, linear between hours, mean 1, local time of
`timezone`) and k, in m³/min, is the profile-weighted average inflow. k is a ratio estimator
Σ w·(inflow volume) / Σ w·∫f dt over the intervals between consecutive good level samples, with exponential
forgetting:

1. fill rate (`fill_rate`): intervals with every pump off (or mains failed). The inflow volume is
   `storage.volume(z1) − storage.volume(z0)`, so it stays right above the inlet invert. Summing volumes over
   consecutive intervals telescopes, so the ±2 mm noise and 0.01 m quantisation of the level only count at
   the ends of each fill, not per sample (no point derivative is ever taken).
2. pump-out balance (`pump_balance`): every interval, the ones with pumps running adding ΔV + run time ×
   Q_p,eff, i.e. whole cycles. This is the estimate used once every pump that ran has ≥ 3 learned
   draw-downs, because fills alone under-read: the pumps run longest exactly when the inflow is high, so
   the fill minutes are a sample biased towards low inflow (−3…−5 % at a 30 % duty, measured on the
   simulator). Q_p,eff per pump is learned from single-pump draw-downs: Q_p,eff = Q_in − dV/dt (least-
   squares slope of the run), with Q_in the mean of the fill rates over 90 s just before and just after the
   run (either alone is biased: a start comes when the inflow is high, a stop when it is low); running mean,
   then exponential over 10 draw-downs, starting from the rated flow.
3. profile (`profile`): the long-term k (7-day forgetting) shrinks the recent one (weight 10 profile-
   minutes) and, with a prior worth 30 profile-minutes from `catchment.population × per_capita_l_day`,
   carries the forecast when the inflow has not been measured (only after 15 min of good levels; never from
   a couple of samples).

The forecast uses the recent k (2 h forgetting: with the ±30 % inflow noise of a small catchment this keeps
the scale within ~3 %). Rain: the fills are cut into 5-minute blocks, and an upward step of the inflow is
searched over the blocks of the last 3 h (the split with the largest z of after-vs-before scale, pooled
noise); from z = 3.5 (and ≥ 1.3×) the forecast moves towards the scale since the step (the balance since
then), fully from z = 7 (`surge`). Only upward steps count. Faster, for rain that has just begun: the mean
rate of the cumulative inflow over the last ≤ 10 minutes (balance once the pump flows are learned, else the
fill since the last run), followed from (1.1 + 1.0/√minutes) × the scale, fully 0.25 higher; then a rise
(the curvature of a parabola through up to 20 minutes of the cumulative inflow, over 2.5 standard errors)
is carried on towards a plateau, rise·τ·(1 − e^(−t/τ)), τ = 30 min, at most 3 × the current inflow.

Going forward Q(t) = k_d·f(t) + b: k_d = min(k, k_dry), the dry-weather scale (7-day window with the prior,
fed only while the recent scale is within 1.25 × it), and b the wet-weather excess as an added flow
(infiltration does not follow the diurnal profile): the larger of (k − k_d)·f(now) and the recent window's
plain mean inflow less k_dry × its mean f; plus the rise; integrated on a
cumulative profile table (bisection when b or the rise is not 0), up to 24 h. The volume to fill is
`storage.volume_with_flow` at the current inflow: the flow already in the pipes at normal depth is not
storage (docs/domain.md §3.1).

Why the spill figure has no usable-fraction haircut: the volume the water must fill is exactly the stage–
storage volume the station's geometry gives (the simulator and the real sewer alike have no "unusable"
part); a haircut would bias the number alarms and ranking use short by 20 %. The conservative figure
applies both margins (η and ×1.2) for dispatch planning.

Level. The current level is a least-squares fit over the last minute of the current pump state (so a single
noisy sample does not move it). When the level is not good — bad quality, `level_sensor_fault`, a reading
that contradicts the floats (below `hwl_m − 0.3 m` with the HWL float on, below `lwl_m − 0.1 m` with the LWL
float off) or frozen at one value for 15 min — the volume is dead-reckoned from the last good one with the
inflow estimate and the pumps known to run (unknown pumps count as stopped: the estimate errs short), and
the inflow estimate is kept. Whenever the HWL float is on, the level is at least `hwl_m`: a dead gauge
reading 0 can never produce a reassuring long time.

Only sample times are used, never the wall clock; a batch may carry several times (an MQTT backlog): they are
taken in time order. States hold until their next sample (report-by-exception sources work).
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import groupby
from zoneinfo import ZoneInfo

from pumpwatch.alarms.analyzers import DerivedPoint
from pumpwatch.alarms.profiles import load_profile, normalise_profile
from pumpwatch.core.config.models import StationConfig
from pumpwatch.core.hydraulics import StageStorage
from pumpwatch.core.sample import Quality, Sample

__all__ = ["HORIZON_MIN", "OverflowForecast", "OverflowForecaster"]

HORIZON_MIN = 1440.0  # forecast horizon; a longer time is reported as this value
TAU_HOUR_S = 3600.0  # method 1 "over the last 60 min" for the conservative figure
TAU_RECENT_S = 7200.0  # the scale the forecast uses
TAU_LONG_S = 7 * 86400.0  # method 3: the learned average ("Q_avg of the recent 7 days")
PRIOR_WEIGHT_MIN = 30.0  # profile-minutes the catchment figure counts for in the long-term average
SHRINK_WEIGHT_MIN = 10.0  # profile-minutes the long-term average counts for in the recent one
MIN_MEASURED_MIN = 3.0  # minutes of measured inflow before any forecast
PROFILE_ONLY_AFTER_S = 900.0  # good levels for this long without a measured inflow: forecast from the prior
SURGE_RATIO = 1.3  # an upward step of the inflow (rain) counts from this ratio ...
SURGE_Z0 = 3.5  # ... and more than this many standard errors; the forecast follows it in full from
SURGE_Z1 = 7.0  # this many (linearly in between)
SURGE_MIN_F = 8.0  # profile-minutes of fills after the step
HOUR_MIN_WEIGHT_MIN = 2.0
CONSERVATIVE_FACTOR = 1.2
CHUNK_MIN = 10  # the conservative integration skips 10 minutes at a time where it can
MAX_GAP_S = 60.0  # longer gaps between good levels are not used for the inflow (pumps may have cycled)
MAX_GAP_NO_POWER_S = 1800.0  # ... unless mains was failed at both ends (no pump can have run)
BLOCK_S = 300.0  # fill blocks for the dispersion (standard error) of the estimate
BLOCK_MEMORY_S = 3 * 3600.0
SURGE_MIN_BLOCKS = 6
SMOOTH_S = 60.0  # level fit window
FROZEN_S = 900.0  # a reading unchanged this long is a frozen gauge
HWL_DISAGREE_M = 0.3
LWL_DISAGREE_M = 0.1
DRAWDOWN_MIN_POINTS = 5
DRAWDOWN_MIN_S = 20.0
RATE_WINDOW_S = 90.0  # fill rates either side of a draw-down
RATE_MIN_POINTS = 4
RATE_MIN_S = 30.0
QP_LEARNED = 3  # draw-downs before a pump's learned flow is trusted for the balance
QP_MEMORY = 10  # running mean over the first draw-downs, then exponential with this weight
SEGMENT_CAP = 5000
DRY_RATIO = 1.25  # intervals count towards the dry-weather scale while the recent scale is within this ratio
RECENT_S = 1200.0  # totals are kept for 20 minutes (the rate uses the last 10)
RECENT_MIN_S = 120.0  # ... once it spans this much
RECENT_RATIO0 = 1.1  # the forecast follows the last minutes from 1.1 + 1.0/√minutes × the scale ...
RECENT_NOISE = 1.0
RECENT_FULL = 0.25  # ... fully from 0.25 higher
RATE_SPAN_MIN = 10.0  # the recent rate is the mean over this many minutes
RISE_MIN_MIN = 5.0  # a rise (the curvature of the cumulative inflow) needs this many minutes
RISE_Z = 2.5  # ... and this many standard errors, and is followed only with a rate above the threshold
RISE_TAU_MIN = 30.0  # a rising inflow is taken to approach its plateau with this time constant
RISE_CAP = 3.0  # ... and to add at most 3 × the current inflow
SNAP_S = 15.0  # totals are kept every 15 s for the recent balance

LEVEL = "wet_well_level_m"
MAINS = "mains_failed"
HWL_FLOAT = "hwl_float"
LWL_FLOAT = "lwl_float"
SENSOR_FAULT = "level_sensor_fault"

OUTPUTS = (  # the level is what they need; the other points refine them and may be missing
    DerivedPoint("inflow_m3_min", "m3/min", "analog", (LEVEL,)),
    DerivedPoint("tto_hwl_min", "min", "analog", (LEVEL,)),
    DerivedPoint("tto_spill_min", "min", "analog", (LEVEL,)),
    DerivedPoint("tto_spill_conservative_min", "min", "analog", (LEVEL,)),
)


@dataclass(frozen=True, slots=True)
class OverflowForecast:
    """Every figure of one forecast. Times (`*_at`) are None beyond the 24 h horizon."""

    at: datetime
    level_m: float  # level the forecast starts from
    level_source: str  # "measured" | "dead_reckoned" (gauge not good) | "hwl_float" (floored at hwl_m)
    volume_to_hwl_m3: float
    volume_to_spill_m3: float  # raw stage–storage volume between the level and spill_m
    inflow_m3_min: float  # Q_now = k · f(now)
    inflow_scale_m3_min: float  # k: the profile-weighted average inflow (Q_avg equivalent)
    method: str  # "fill_rate" | "pump_balance" | "profile"
    surge: bool  # an upward step of the inflow (rain) was found in the fills: k follows it
    confidence: str  # "high" | "medium" | "low"
    inflow_rel_se: float | None  # relative standard error of k from the dispersion of 5-min fill blocks
    tto_hwl_min: float  # HORIZON_MIN when beyond
    tto_spill_min: float
    tto_spill_conservative_min: float
    hwl_at: datetime | None
    spill_at: datetime | None
    spill_conservative_at: datetime | None
    inflow_balance_m3_min: float | None  # method 2's figure (None until pump flows are learned)
    pump_flow_m3_min: tuple[float, ...]  # learned Q_p,eff per pump (rated until learned)
    pumps_running: int
    mains_failed: bool | None


def _bucket(q: float) -> float:
    """q rounded to 1 % steps, so the normal depths of the pipes are not recomputed for every sample."""
    if q <= 0:
        return 0.0
    return 1.01 ** round(math.log(q) / math.log(1.01))


class _Window:
    """Exponentially weighted sums over the intervals between good level samples (time constant tau_s)."""

    __slots__ = (
        "bal_f", "bal_t", "bal_v", "ff", "fill_f", "fill_t", "fill_v", "run", "t", "tau_s", "vf", "vv",
    )  # fmt: skip

    def __init__(self, tau_s: float, n_pumps: int) -> None:
        self.tau_s = tau_s
        self.t: float | None = None
        self.fill_v = self.fill_f = self.fill_t = 0.0  # m³, profile-minutes, minutes
        self.bal_v = self.bal_f = self.bal_t = 0.0
        self.run = [0.0] * n_pumps  # run minutes per pump in balance intervals
        self.vv = self.vf = self.ff = 0.0  # Σ w² of fill-block products (standard error)

    def decay_to(self, t: float) -> None:
        if self.t is None:
            self.t = t
            return
        if t <= self.t:
            return
        a = math.exp(-(t - self.t) / self.tau_s)
        a2 = a * a
        self.fill_v *= a
        self.fill_f *= a
        self.fill_t *= a
        self.bal_v *= a
        self.bal_f *= a
        self.bal_t *= a
        self.run = [r * a for r in self.run]
        self.vv *= a2
        self.vf *= a2
        self.ff *= a2
        self.t = t


def _fit(points: Sequence[tuple[float, float]]) -> tuple[float, float, float]:
    """Least-squares line through (t, v): (slope per second, mean t, mean v)."""
    n = len(points)
    mt = sum(p[0] for p in points) / n
    mv = sum(p[1] for p in points) / n
    stt = sum((p[0] - mt) ** 2 for p in points)
    if stt <= 0:
        return 0.0, mt, mv
    return sum((p[0] - mt) * (p[1] - mv) for p in points) / stt, mt, mv


def _solve3(m: list[list[float]], y: list[float]) -> list[float] | None:
    """Solve a 3 × 3 linear system (Gaussian elimination with partial pivoting); None when singular."""
    a = [row[:] + [v] for row, v in zip(m, y, strict=True)]
    for col in range(3):
        piv = max(range(col, 3), key=lambda r: abs(a[r][col]))
        if abs(a[piv][col]) < 1e-12:
            return None
        a[col], a[piv] = a[piv], a[col]
        for r in range(3):
            if r != col:
                f = a[r][col] / a[col][col]
                for c in range(col, 4):
                    a[r][c] -= f * a[col][c]
    return [a[i][3] / a[i][i] for i in range(3)]


class OverflowForecaster:
    """Time to overflow of one pumping station; see the module docstring."""

    outputs = OUTPUTS

    def __init__(
        self, cfg: StationConfig, *, timezone: str = "Asia/Tokyo", profile: Sequence[float] | None = None
    ) -> None:
        self.storage = StageStorage.from_station(cfg)  # raises for a station without a wet well
        assert cfg.levels is not None
        self.station = cfg.id
        self.levels = cfg.levels
        self.tz = ZoneInfo(timezone)
        self.profile = normalise_profile(profile) if profile is not None else load_profile()
        # mean of f over each local minute of the day, and its running sum (profile-minutes)
        f_at = [self._f_hour(m / 60.0) for m in range(1441)]
        self._fm = [(f_at[m] + f_at[m + 1]) / 2 for m in range(1440)]
        self._cm = [0.0]
        for v in self._fm:
            self._cm.append(self._cm[-1] + v)
        chunks = [self._fm[c : c + CHUNK_MIN] for c in range(0, 1440, CHUNK_MIN)]
        self._chunk_sum = [sum(ch) for ch in chunks]
        self._chunk_min = [min(ch) for ch in chunks]
        self._chunk_max = [max(ch) for ch in chunks]

        self.n_pumps = len(cfg.pumps)
        self._pump_index = {f"pump{k}_running": k - 1 for k in range(1, self.n_pumps + 1)}
        self._electric = [p.drive == "electric" for p in cfg.pumps]
        self.rated_flow = tuple(p.rated_flow_m3_min for p in cfg.pumps)
        self._qp = list(self.rated_flow)
        self._qp_n = [0] * self.n_pumps
        c = cfg.catchment
        self._k_prior = c.population * c.per_capita_l_day / 1000.0 / 1440.0 if c and c.population else None

        self._v_hwl = self.storage.volume(self.levels.hwl_m)
        self._v_spill = self.storage.volume(self.levels.spill_m)
        self._v_stop = self.storage.volume(self.levels.stop_m)

        self._hour = _Window(TAU_HOUR_S, self.n_pumps)
        self._recent = _Window(TAU_RECENT_S, self.n_pumps)
        self._long = _Window(TAU_LONG_S, self.n_pumps)
        self._dry = _Window(TAU_LONG_S, self.n_pumps)  # only intervals while the inflow is not elevated
        self._windows = (self._hour, self._recent, self._long)
        self._dry_ok = True
        self._snaps: deque[tuple[float, tuple[float, ...]]] = deque()  # (t, totals) every SNAP_S
        # (key, recent points, last minutes, rises): worked out again only when the totals move
        self._recent_memo: (
            tuple[object, list[tuple[float, float]], tuple[float, float] | None, dict[str, float]] | None
        ) = None
        self._fill_min = 0.0  # unweighted minutes of measured fill
        self._bal_min = 0.0  # unweighted minutes of pump intervals
        self._blk_v = self._blk_f = self._blk_t = 0.0
        # fill blocks (end, m³, profile-minutes, totals at the end); totals: ΔV, F and run minutes per pump of
        # every interval since the start (never forgotten: differences give the balance since a time)
        self._blocks: deque[tuple[float, float, float, tuple[float, ...]]] = deque()
        self._tot_v = self._tot_f = 0.0
        self._tot_run = [0.0] * self.n_pumps

        # point states (None: unknown)
        self._running: list[bool | None] = [None] * self.n_pumps
        self._mains_failed: bool | None = None
        self._hwl_float: bool | None = None
        self._lwl_float: bool | None = None
        self._sensor_fault: bool | None = None

        # level chain
        self._prev: tuple[float, float, tuple[bool, ...]] | None = None  # (t, V, pumps): last good level
        self._pending: list[tuple[float, float, float, tuple[bool, ...], tuple[bool, ...]]] = []
        self._last_raw: float | None = None
        self._raw_since = 0.0
        self._seg_key: tuple[bool, ...] | None = None
        self._seg: list[tuple[float, float]] = []
        self._before_rate: float | None = None  # fill rate just before the current run (m³/min)
        self._drawdown: tuple[int, float, float, float | None] | None = None  # (pump, dV/dt, t, before)
        self._first_good: float | None = None

        # the volume the forecast starts from
        self._v_est: float | None = None
        self._v_est_t = 0.0
        self._v_source = "measured"

        self._offset_s = 0.0
        self._offset_until = -math.inf
        self.last_forecast: OverflowForecast | None = None

    # --- profile and local time --------------------------------------------------------------------------

    def _f_hour(self, h: float) -> float:
        h %= 24.0
        i = int(h)
        p = self.profile
        return p[i] + (p[(i + 1) % 24] - p[i]) * (h - i)

    def _local_minute(self, ts: float) -> float:
        if ts >= self._offset_until or ts < self._offset_until - 3600.0:
            off = datetime.fromtimestamp(ts, UTC).astimezone(self.tz).utcoffset()
            self._offset_s = off.total_seconds() if off is not None else 0.0
            self._offset_until = (math.floor(ts / 3600.0) + 1) * 3600.0
        return ((ts + self._offset_s) % 86400.0) / 60.0

    def f_at(self, when: datetime) -> float:
        """The profile multiplier at a time (local hour of `timezone`)."""
        return self._f_hour(self._local_minute(when.timestamp()) / 60.0)

    def _cum(self, x: float) -> float:
        """∫ f from local minute 0 of day 0 to minute x (x may exceed a day)."""
        d, r = divmod(x, 1440.0)
        i = min(int(r), 1439)
        return d * self._cm[1440] + self._cm[i] + self._fm[i] * (r - i)

    def _inv_cum(self, y: float) -> float:
        d, r = divmod(y, self._cm[1440])
        i = min(max(bisect.bisect_right(self._cm, r) - 1, 0), 1439)
        return d * 1440.0 + i + (r - self._cm[i]) / self._fm[i]

    def _minutes_to_fill(
        self, need_m3: float, k: float, x0: float, b: float = 0.0, rise: float = 0.0
    ) -> float | None:
        """Minutes until ∫ (k·f + b + rise·τ·(1 − e^(−t/τ))) dt from local minute x0 reaches need_m3 (None
        beyond the horizon): the diurnal flow, a constant added flow (wet weather), and a rise going on
        towards a plateau rise·τ above the current inflow."""
        if need_m3 <= 0:
            return 0.0
        if k <= 0 and b <= 0 and rise <= 0:
            return None
        c0 = self._cum(x0)
        if b <= 0 and rise <= 0:
            t = self._inv_cum(c0 + need_m3 / k) - x0
            return t if t <= HORIZON_MIN else None
        tau = RISE_TAU_MIN

        def filled(t: float) -> float:
            v = k * (self._cum(x0 + t) - c0) + b * t
            if rise > 0:
                v += rise * tau * (t - tau * (1 - math.exp(-t / tau)))
            return v

        if filled(HORIZON_MIN) < need_m3:
            return None
        lo, hi = 0.0, HORIZON_MIN
        for _ in range(60):
            mid = (lo + hi) / 2
            if filled(mid) < need_m3:
                lo = mid
            else:
                hi = mid
            if hi - lo < 1e-3:
                break
        return (lo + hi) / 2

    def _minutes_to_fill_floor(
        self, need_m3: float, k: float, floor: float, x0: float, b: float = 0.0
    ) -> float | None:
        """Minutes until ∫ 1.2·max(k·f + b, floor) dt from local minute x0 reaches need_m3 (None beyond the
        horizon): 1-minute steps, taken 10 minutes at a time where the floor is clear of the profile."""
        if need_m3 <= 0:
            return 0.0
        fm, x, end, acc = self._fm, x0, x0 + HORIZON_MIN, 0.0
        while x < end:
            m = math.floor(x)
            if x == m and m % CHUNK_MIN == 0 and x + CHUNK_MIN <= end:
                c = (m % 1440) // CHUNK_MIN
                lo, hi = self._chunk_min[c] * k + b, self._chunk_max[c] * k + b
                if floor <= lo or floor >= hi:
                    dv = CONSERVATIVE_FACTOR * (
                        k * self._chunk_sum[c] + b * CHUNK_MIN if floor <= lo else floor * CHUNK_MIN
                    )
                    if acc + dv < need_m3:
                        acc += dv
                        x += CHUNK_MIN
                        continue
            nxt = min(m + 1.0, end)
            q = CONSERVATIVE_FACTOR * max(k * fm[m % 1440] + b, floor)
            dv = q * (nxt - x)
            if q > 0 and acc + dv >= need_m3:
                return x - x0 + (need_m3 - acc) / q
            acc += dv
            x = nxt
        return None

    # --- observing ---------------------------------------------------------------------------------------

    def observe(self, samples: Sequence[Sample]) -> list[Sample]:
        if not samples:
            return []
        ordered = sorted(samples, key=lambda s: s.observed_at)
        for at, group in groupby(ordered, key=lambda s: s.observed_at):
            self._step(at.timestamp(), list(group))
        return self._outputs(ordered[-1].observed_at)

    def _step(self, ts: float, group: list[Sample]) -> None:
        level: Sample | None = None
        for s in group:
            p = s.point
            good = s.quality is Quality.GOOD and s.value is not None
            state = bool(s.value >= 0.5) if good and s.value is not None else None
            if p == LEVEL:
                level = s
            elif p in self._pump_index:
                self._running[self._pump_index[p]] = state
            elif p == MAINS:
                self._mains_failed = state
            elif p == HWL_FLOAT:
                self._hwl_float = state
            elif p == LWL_FLOAT:
                self._lwl_float = state
            elif p == SENSOR_FAULT:
                self._sensor_fault = state
        pumps = self._pumps()
        measured = False
        if level is not None:
            z = self._valid_level(level, ts)
            if z is not None:
                self._good_level(ts, z, pumps)
                measured = True
            else:
                self._level_lost()
        if not measured:
            self._dead_reckon(ts)
        if self._hwl_float and self._v_est is not None and self._v_est < self._v_hwl:
            self._v_est = self._v_hwl
            self._v_source = "hwl_float"

    def _pumps(self) -> tuple[bool, ...] | None:
        """Which pumps run (None: some pump's state is unknown). Electric pumps cannot run without mains."""
        out = []
        for i, r in enumerate(self._running):
            if self._mains_failed and self._electric[i]:
                out.append(False)
            elif r is None:
                return None
            else:
                out.append(r)
        return tuple(out)

    def _valid_level(self, s: Sample, ts: float) -> float | None:
        if s.quality is not Quality.GOOD or s.value is None or not math.isfinite(s.value):
            return None
        z = float(s.value)
        if z != self._last_raw:
            self._last_raw = z
            self._raw_since = ts
        elif ts - self._raw_since >= FROZEN_S:
            self._pending.clear()
            if self._v_source == "measured":  # dead-reckon from when it stopped moving
                self._v_est_t = min(self._v_est_t, self._raw_since)
            return None
        lv = self.levels
        if self._sensor_fault:
            return None
        if self._hwl_float and z < lv.hwl_m - HWL_DISAGREE_M:
            return None
        if self._lwl_float is False and lv.lwl_m is not None and z < lv.lwl_m - LWL_DISAGREE_M:
            return None
        return max(z, 0.0)

    def _good_level(self, ts: float, z: float, pumps: tuple[bool, ...] | None) -> None:
        v = self.storage.volume(z)
        if self._first_good is None:
            self._first_good = ts
        prev = self._prev
        if prev is not None and pumps is not None:
            dt = ts - prev[0]
            no_power = self._mains_failed is True and not any(prev[2]) and not any(pumps)
            if 0 < dt <= (MAX_GAP_NO_POWER_S if no_power else MAX_GAP_S):
                self._pending.append((prev[0], ts, v - prev[1], prev[2], pumps))
        if ts == self._raw_since:  # the reading moved: the intervals held since it last moved are real
            for interval in self._pending:
                self._accumulate(*interval)
            self._pending.clear()
        self._prev = (ts, v, pumps) if pumps is not None else None

        if pumps != self._seg_key:
            self._end_segment()
            self._seg_key = pumps
        self._seg.append((ts, v))
        if len(self._seg) > SEGMENT_CAP:
            del self._seg[: len(self._seg) - SEGMENT_CAP]
        if (
            self._drawdown is not None
            and pumps is not None
            and not any(pumps)
            and ts - self._seg[0][0] >= RATE_WINDOW_S
        ):
            self._finish_drawdown(self._rate(self._seg))

        recent = [p for p in self._seg[-64:] if p[0] >= ts - SMOOTH_S]
        if len(recent) >= 3:
            slope, mt, mv = _fit(recent)
            v = max(mv + slope * (ts - mt), 0.0)
        self._v_est, self._v_est_t, self._v_source = v, ts, "measured"

    def _level_lost(self) -> None:
        self._pending.clear()
        self._prev = None
        self._end_segment()
        self._seg_key = None
        self._drawdown = None
        self._before_rate = None

    def _dead_reckon(self, ts: float) -> None:
        if self._v_est is None or ts <= self._v_est_t:
            return
        dt_min = (ts - self._v_est_t) / 60.0
        k = self._scale_value()
        q_in = k * self._f_hour(self._local_minute((ts + self._v_est_t) / 2) / 60.0) if k else 0.0
        out = sum(
            self._qp[i]
            for i, r in enumerate(self._running)
            if r and not (self._mains_failed and self._electric[i])
        )
        v = self._v_est + (q_in - out) * dt_min
        if out > 0:
            v = max(v, min(self._v_est, self._v_stop))  # the panel stops the pumps at the stop level
        self._v_est, self._v_est_t, self._v_source = max(v, 0.0), ts, "dead_reckoned"

    # --- the inflow estimate -----------------------------------------------------------------------------

    def _accumulate(
        self, t0: float, t1: float, dv: float, p0: tuple[bool, ...], p1: tuple[bool, ...]
    ) -> None:
        dt_min = (t1 - t0) / 60.0
        f_int = self._f_hour(self._local_minute((t0 + t1) / 2) / 60.0) * dt_min
        fill = not any(p0) and not any(p1)
        self._tot_v += dv
        self._tot_f += f_int
        if not fill:
            for i in range(self.n_pumps):
                self._tot_run[i] += dt_min * (p0[i] + p1[i]) / 2
        windows = (*self._windows, self._dry) if self._dry_ok else self._windows
        for w in windows:
            w.decay_to(t1)
            if fill:
                w.fill_v += dv
                w.fill_f += f_int
                w.fill_t += dt_min
            else:
                w.bal_v += dv
                w.bal_f += f_int
                w.bal_t += dt_min
                for i in range(self.n_pumps):
                    w.run[i] += dt_min * (p0[i] + p1[i]) / 2
        if fill:
            self._fill_min += dt_min
            self._blk_v += dv
            self._blk_f += f_int
            self._blk_t += t1 - t0
            if self._blk_t >= BLOCK_S:
                self._close_block(t1)
        else:
            self._bal_min += dt_min  # a block runs on over pump runs: every block holds BLOCK_S of fills
        if not self._snaps or t1 - self._snaps[-1][0] >= SNAP_S:
            self._snaps.append((t1, self._totals()))
            while len(self._snaps) > 2 and self._snaps[1][0] <= t1 - RECENT_S:
                self._snaps.popleft()
            k_dry, k_recent = self._dry_scale(), self._recent_plain()
            # before the recent scale exists only a station without any dry-weather figure learns from it
            self._dry_ok = k_dry is None or (k_recent is not None and k_recent <= DRY_RATIO * k_dry)

    def _totals(self) -> tuple[float, ...]:
        return (self._tot_v, self._tot_f, *self._tot_run)

    def _close_block(self, t: float) -> None:
        if self._blk_t > 0 and self._blk_f > 0:
            w = self._recent
            w.vv += self._blk_v * self._blk_v
            w.vf += self._blk_v * self._blk_f
            w.ff += self._blk_f * self._blk_f
            self._blocks.append((t, self._blk_v, self._blk_f, self._totals()))
            while self._blocks and self._blocks[0][0] < t - BLOCK_MEMORY_S:
                self._blocks.popleft()
        self._blk_v = self._blk_f = self._blk_t = 0.0

    def _qp_ready(self, w: _Window) -> bool:
        total = sum(w.run)
        return total > 0 and all(
            self._qp_n[i] >= QP_LEARNED for i in range(self.n_pumps) if w.run[i] > 0.05 * total
        )

    def _balance_sums(self, w: _Window) -> tuple[float, float]:
        pumped = sum(q * r for q, r in zip(self._qp, w.run, strict=True))
        return w.fill_v + w.bal_v + pumped, w.fill_f + w.bal_f

    def _long_scale(self) -> float | None:
        w = self._long
        num, den = self._balance_sums(w) if self._qp_ready(w) else (w.fill_v, w.fill_f)
        if self._k_prior is not None:
            num += self._k_prior * PRIOR_WEIGHT_MIN
            den += PRIOR_WEIGHT_MIN
        return num / den if den > 0 else None

    def _dry_scale(self) -> float | None:
        """The dry-weather scale: the long-term one over intervals while the inflow was not elevated."""
        w = self._dry
        num, den = self._balance_sums(w) if self._qp_ready(w) else (w.fill_v, w.fill_f)
        if self._k_prior is not None:
            num += self._k_prior * PRIOR_WEIGHT_MIN
            den += PRIOR_WEIGHT_MIN
        return num / den if den >= MIN_MEASURED_MIN else None

    def _recent_plain(self) -> float | None:
        w = self._recent
        num, den = self._balance_sums(w) if self._qp_ready(w) else (w.fill_v, w.fill_f)
        return num / den if den >= MIN_MEASURED_MIN else None

    def _recent_points(self) -> list[tuple[float, float]]:
        """The cumulative inflow every 15 s over the last 20 minutes as (minutes before the last, m³): ΔV
        plus run minutes × Q_p,eff once the pump flows are learned, else the fill since the last pump run."""
        snaps = self._snaps
        if len(snaps) < 3:
            return []
        t1, last = snaps[-1]
        start = 0
        if not self._qp_ready(self._recent):
            start = len(snaps) - 1
            while start > 0 and snaps[start - 1][1][2:] == last[2:]:
                start -= 1
        pts = []
        for t, tot in list(snaps)[start:]:
            pumped = sum(q * r for q, r in zip(self._qp, tot[2:], strict=True))
            pts.append(((t - t1) / 60.0, tot[0] + pumped))
        return pts

    def _last_minutes(self, pts: list[tuple[float, float]]) -> tuple[float, float] | None:
        """(mean inflow m³/min over the last ≤ 10 minutes, minutes it spans), from 2 minutes on: the least-
        squares slope of the cumulative curve (the noise integrates: a rate, not a derivative of levels)."""
        recent = [p for p in pts if p[0] >= -RATE_SPAN_MIN]
        if len(recent) < 3 or -recent[0][0] * 60.0 < RECENT_MIN_S:
            return None
        return _fit(recent)[0], -recent[0][0]

    def _rise(self, pts: list[tuple[float, float]]) -> float:
        """The rise (m³/min²) of the inflow still going on: the curvature 2c of a least-squares parabola
        y = a + b·x + c·x² through the cumulative inflow, if it spans 5 minutes and is over 2.5 standard
        errors; else 0."""
        if len(pts) < 4 or -pts[0][0] < RISE_MIN_MIN:
            return 0.0
        sx = [sum(x**j for x, _ in pts) for j in range(5)]
        sy = [sum(y * x**j for x, y in pts) for j in range(3)]
        m = [[sx[i + j] for j in range(3)] for i in range(3)]
        sol, inv = _solve3(m, sy), _solve3(m, [0.0, 0.0, 1.0])
        if sol is None or inv is None:
            return 0.0
        a, b, c = sol
        rss = sum((y - a - b * x - c * x * x) ** 2 for x, y in pts)
        se_c = math.sqrt(max(rss / max(len(pts) - 3, 1), 0.0) * max(inv[2], 0.0))
        return 2 * c if c > RISE_Z * se_c else 0.0

    def _scale(self, ts: float) -> tuple[float, str, bool, float | None, float] | None:
        """(k, method, surge, relative standard error, rise m³/min²), or None when there is no estimate
        yet."""
        w = self._recent
        k_long = self._long_scale()
        qp_ready = self._qp_ready(w)
        measured = self._fill_min + (self._bal_min if qp_ready else 0.0)
        if measured < MIN_MEASURED_MIN:
            started = self._first_good is not None and ts - self._first_good >= PROFILE_ONLY_AFTER_S
            if k_long is None or not started or self._k_prior is None:
                return None
            return k_long, "profile", False, None, 0.0
        if not qp_ready:
            num, den, method = w.fill_v, w.fill_f, "fill_rate"
        else:
            num, den = self._balance_sums(w)
            method = "pump_balance"
        rel_se = None
        if w.fill_f > 0 and w.ff > 0:
            kf = w.fill_v / w.fill_f
            var = max(w.vv - 2 * kf * w.vf + kf * kf * w.ff, 0.0)
            if kf > 0:
                rel_se = math.sqrt(var) / w.fill_f / kf
        if k_long is not None:
            num += k_long * SHRINK_WEIGHT_MIN
            den += SHRINK_WEIGHT_MIN
        k = max(num / den, 0.0) if den > 0 else 0.0
        surge = False
        step = self._surge(ts) if k > 0 else None
        if step is not None and step[0] > k:
            # Soft switch: a marginal step (z just above SURGE_Z0) moves the scale a little, a clear one
            # (z ≥ SURGE_Z1) all the way, so a run of noisy minutes cannot halve a dry-weather forecast.
            weight = min(1.0, (step[1] - SURGE_Z0) / (SURGE_Z1 - SURGE_Z0))
            k, surge = k + weight * (step[0] - k), True
        rise = 0.0
        # the totals move every 15 s: the rate and the rise are worked out again only then
        key = (self._snaps[-1][0] if self._snaps else None, len(self._snaps), tuple(self._qp))
        if self._recent_memo is None or self._recent_memo[0] != key:
            pts = self._recent_points()
            self._recent_memo = (key, pts, self._last_minutes(pts) if pts else None, {})
        _, pts, recent, rises = self._recent_memo
        if recent is not None:
            # A rise within the last minutes (rain that has just begun) is followed at once. The noise of a
            # small catchment over m minutes is about ±30 %/√m, so the threshold falls with the span: from
            # 1.1 + 1.0/√m (over 3 standard errors) above the scale in part, fully 0.25 higher.
            q_last, span = recent
            f_now = self._f_hour(self._local_minute(ts) / 60.0)
            last = q_last / f_now if f_now > 0 else 0.0
            r0 = RECENT_RATIO0 + RECENT_NOISE / math.sqrt(span)
            if last > r0 * k:
                weight = min(1.0, (last / k - r0) / RECENT_FULL)
                k, surge = k + weight * (last - k), True
                if "g" not in rises:
                    rises["g"] = self._rise(pts)
                g = rises["g"]  # still rising: it goes on, towards a plateau (RISE_TAU_MIN)
                if g > 0:
                    rise = min(g, RISE_CAP * q_last / RISE_TAU_MIN)
        return k, method, surge, rel_se, rise

    def _surge(self, ts: float) -> tuple[float, float] | None:
        """(scale since, z) of an upward step of the inflow (rain), if the fill blocks of the last 3 h show
        one.

        For every split of the blocks (and the block in progress) into before/after, the after-scale k_a is
        compared with the before-scale k_b in units of the noise: s² is the pooled relative variance per
        profile-minute of the blocks around their own side's scale (Σ (v_i/F_i − k)²·F_i / k² over both
        sides, / (n − 2)), z = (k_a/k_b − 1) / (s·√(1/F_a + 1/F_b)). The split with the largest z (the
        likeliest step time) counts if z > SURGE_Z0 and k_a ≥ 1.3 k_b. Only upward steps count: a forecast
        is never lengthened on a few quiet minutes.
        """
        blocks = list(self._blocks)
        if self._blk_f > 0:
            blocks.append((ts, self._blk_v, self._blk_f, self._totals()))
        n = len(blocks)
        if n <= SURGE_MIN_BLOCKS:
            return None
        pv, pf, pq = [0.0], [0.0], [0.0]  # prefix sums of v, F and v²/F
        for _, v, f, _ in blocks:
            pv.append(pv[-1] + v)
            pf.append(pf[-1] + f)
            pq.append(pq[-1] + v * v / f)
        best_z, best_k, best_j = SURGE_Z0, None, 0
        for j in range(n - 1, SURGE_MIN_BLOCKS - 1, -1):  # after = blocks[j:], before = blocks[:j]
            fa, fb = pf[n] - pf[j], pf[j]
            if fa < SURGE_MIN_F or fb <= 0 or pv[j] <= 0:
                continue
            ka, kb = (pv[n] - pv[j]) / fa, pv[j] / fb
            if ka < SURGE_RATIO * kb:
                continue
            va = pv[n] - pv[j]
            rss_b = max(pq[j] - 2 * kb * pv[j] + kb * kb * fb, 0.0)
            rss_a = max(pq[n] - pq[j] - 2 * ka * va + ka * ka * fa, 0.0)
            s2 = (rss_b / (kb * kb) + rss_a / (ka * ka)) / (n - 2)
            z = (ka / kb - 1) / math.sqrt(max(s2, 1e-6) * (1 / fa + 1 / fb))
            if z >= best_z:
                best_z, best_k, best_j = z, ka, j
        if best_k is None:
            return None
        if not self._qp_ready(self._recent):
            return best_k, best_z
        # The fills alone under-read a surge (the pumps run longest when the inflow is highest): once the
        # pump flows are learned, the scale since the step is the balance of everything after it.
        snap = blocks[best_j - 1][3]
        d_f = self._tot_f - snap[1]
        pumped = sum(q * (r - r0) for q, r, r0 in zip(self._qp, self._tot_run, snap[2:], strict=True))
        return ((self._tot_v - snap[0] + pumped) / d_f if d_f > 0 else best_k), best_z

    def _scale_value(self) -> float | None:
        sc = self._scale(self._v_est_t)
        if sc is not None:
            return sc[0]
        return self._long_scale()

    def _rate(self, points: Sequence[tuple[float, float]]) -> float | None:
        """Least-squares dV/dt (m³/min) of a stretch of one pump state, if it is long enough."""
        if len(points) < RATE_MIN_POINTS or points[-1][0] - points[0][0] < RATE_MIN_S:
            return None
        return _fit(points)[0] * 60.0

    def _end_segment(self) -> None:
        """A stretch of one pump state ended. A fill leaves its closing rate for the next draw-down and
        gives its opening rate to the draw-down before it; a single-pump run becomes a pending draw-down."""
        key, seg = self._seg_key, self._seg
        self._seg = []
        if key is None or not seg:
            self._drawdown = None
            self._before_rate = None
            return
        if not any(key):
            t_end = seg[-1][0]
            self._before_rate = self._rate([p for p in seg if p[0] >= t_end - RATE_WINDOW_S])
            if self._drawdown is not None:
                self._finish_drawdown(self._rate([p for p in seg if p[0] <= seg[0][0] + RATE_WINDOW_S]))
            return
        self._drawdown = None
        before, self._before_rate = self._before_rate, None
        if (
            sum(key) != 1
            or self._mains_failed
            or len(seg) < DRAWDOWN_MIN_POINTS
            or seg[-1][0] - seg[0][0] < DRAWDOWN_MIN_S
            or max(p[1] for p in seg) - min(p[1] for p in seg) <= 0
        ):
            return
        slope, mt, _ = _fit(seg)
        self._drawdown = (key.index(True), slope * 60.0, mt, before)

    def _finish_drawdown(self, after: float | None) -> None:
        """Q_p,eff = inflow during the run − dV/dt of the run. The inflow during the run is the mean of the
        fill rates just before and just after it: either alone is biased (a start comes sooner when the
        inflow is high, a stop when it is low), so one side is used only when the other is missing."""
        assert self._drawdown is not None
        i, run_rate, _, before = self._drawdown
        self._drawdown = None
        rates = [r for r in (before, after) if r is not None]
        if not rates:
            return
        obs = sum(rates) / len(rates) - run_rate
        rated = self.rated_flow[i]
        if not 0.2 * rated <= obs <= 2.0 * rated:
            return
        self._qp_n[i] += 1
        self._qp[i] += (obs - self._qp[i]) / min(self._qp_n[i], QP_MEMORY)

    # --- the forecast ------------------------------------------------------------------------------------

    def _not_available(self, at: datetime) -> list[Sample]:
        return [Sample(self.station, o.name, None, at, Quality.NOT_AVAILABLE) for o in OUTPUTS]

    def _outputs(self, at: datetime) -> list[Sample]:
        ts = at.timestamp()
        if self._v_est is None:
            return self._not_available(at)
        sc = self._scale(ts)
        if sc is None:
            return self._not_available(at)
        k, method, surge, rel_se, rise = sc
        x0 = self._local_minute(ts)
        f_now = self._f_hour(x0 / 60.0)
        v0 = self._v_est
        q_now = k * f_now
        # Wet weather is an added flow (infiltration, rain-derived inflow), not a multiple of the diurnal
        # profile: above the dry-weather scale the excess is carried forward as a constant flow.
        k_dry = self._dry_scale()
        k_diurnal = min(k, k_dry) if k_dry is not None else k
        added = (k - k_diurnal) * f_now
        if k_dry is not None and k > k_dry:
            # The excess from the recent window's plain mean inflow (m³ per minute, not per profile-minute):
            # a profile-weighted k under-reads a constant added flow when f(now) is below the window's mean f
            w = self._recent
            num, _ = self._balance_sums(w) if self._qp_ready(w) else (w.fill_v, w.fill_f)
            t_min = w.fill_t + w.bal_t if self._qp_ready(w) else w.fill_t
            f_min = w.fill_f + w.bal_f if self._qp_ready(w) else w.fill_f
            if t_min > 0:
                added = max(added, num / t_min - k_dry * f_min / t_min)
        # The volume still to fill: the flow already in the pipes at the current inflow excluded.
        z0 = self.storage.level(v0)
        q_key = _bucket(q_now)
        base = self.storage.volume_with_flow(z0, q_key)
        need_hwl = self.storage.volume_with_flow(self.levels.hwl_m, q_key) - base
        need_spill = self.storage.volume_with_flow(self.levels.spill_m, q_key) - base
        t_hwl = self._minutes_to_fill(need_hwl, k_diurnal, x0, added, rise)
        t_spill = self._minutes_to_fill(need_spill, k_diurnal, x0, added, rise)
        h = self._hour
        floor = h.fill_v / h.fill_t if h.fill_t >= HOUR_MIN_WEIGHT_MIN else 0.0
        t_cons = self._minutes_to_fill_floor(
            self.storage.usable_fraction * need_spill, k_diurnal, floor, x0, added
        )

        if method == "profile" or rel_se is None or rel_se > 0.2:
            confidence = "low"
        elif rel_se > 0.08 or surge:
            confidence = "medium"
        else:
            confidence = "high"
        balance = None
        if self._qp_ready(self._recent):
            num, den = self._balance_sums(self._recent)
            balance = num / den * f_now if den > 0 else None
        pumps = self._pumps()

        def when(minutes: float | None) -> datetime | None:
            return None if minutes is None else at + timedelta(minutes=minutes)

        def value(minutes: float | None) -> float:
            return HORIZON_MIN if minutes is None else minutes

        fc = OverflowForecast(
            at=at,
            level_m=z0,
            level_source=self._v_source,
            volume_to_hwl_m3=max(need_hwl, 0.0),
            volume_to_spill_m3=max(need_spill, 0.0),
            inflow_m3_min=k * f_now,
            inflow_scale_m3_min=k,
            method=method,
            surge=surge,
            confidence=confidence,
            inflow_rel_se=rel_se,
            tto_hwl_min=value(t_hwl),
            tto_spill_min=value(t_spill),
            tto_spill_conservative_min=value(t_cons),
            hwl_at=when(t_hwl),
            spill_at=when(t_spill),
            spill_conservative_at=when(t_cons),
            inflow_balance_m3_min=balance,
            pump_flow_m3_min=tuple(self._qp),
            pumps_running=sum(pumps) if pumps is not None else sum(bool(r) for r in self._running),
            mains_failed=self._mains_failed,
        )
        self.last_forecast = fc
        st = self.station
        return [
            Sample(st, "inflow_m3_min", fc.inflow_m3_min, at),
            Sample(st, "tto_hwl_min", fc.tto_hwl_min, at),
            Sample(st, "tto_spill_min", fc.tto_spill_min, at),
            Sample(st, "tto_spill_conservative_min", fc.tto_spill_conservative_min, at),
        ]
