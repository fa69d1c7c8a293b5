"""The truth for the time-to-overflow test matrix: random station shapes and a high-resolution integration
of their physics, written apart from the estimator (imports nothing of pumpwatch: not its hydraulics, not its
profiles, not its simulator), so a shared mistake cannot cancel out.

Physics (quasi-steady, level pool over the flow already in the pipes):

- Sewer: a tree of circular pipes (branches join at manholes), each reach with its own slope and manhole,
  sliced every ≤ 1 m. Houses connect along the sewers, so the flow at a slice is the catchment flow × the
  sewer length upstream of that slice ÷ the whole length (per slice, not per reach as the estimator does).
  A slice carries its flow at Manning's normal depth (n of the pipe), solved from a normalised table of the
  part-full circular section; at level z it holds the section filled to max(z − invert, y_n).
- Manholes store their plan area from max(floor, invert + y_n) up; floor = the benching top.
- Total water W(z, q) = A_ww·z + Σ slices + Σ manholes. Before the cut the level stays below the inlet
  invert (pumps cycle on start/lag/stop with a lead that alternates); the wet well receives the catchment
  flow less the growth of the flow in transit (d/dt of the pipes' normal-depth volume at the catchment flow
  smoothed over a 10-min travel time, q̄). At the cut the pumps stop; the system then gains the catchment
  flow, W(t) = W(z0, q̄(cut)) + ∫ q dt, and the level at t solves W(z, q̄(t)) = W(t). The spill is the first
  time W(t) ≥ W(z_spill, q̄(t)) (5-s steps, linear in between).
- Inflow: population × L/person/day × a diurnal profile (the domain table of /work/shared/domain.md §1.3,
  perturbed per station: phase shift and hour-to-hour amplitude) × lognormal noise (σ and period drawn per
  station) + wet weather: steady I/I, or rain beginning before the cut: a fast rain-derived inflow rising
  with its own time constant, and infiltration rising slowly and decaying after the storm.
- Level gauge: ±2 mm noise, 0.01 m register quantisation; poll period drawn per station.
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass, field

DOMAIN_PROFILE = (  # /work/shared/domain.md §1.3, hour = start of hour, mean 1.00
    0.80, 0.65, 0.50, 0.42, 0.43, 0.45, 0.75, 1.30, 1.55, 1.40, 1.25, 1.15,
    1.10, 1.05, 0.95, 0.90, 0.90, 1.00, 1.15, 1.35, 1.40, 1.35, 1.20, 1.00,
)  # fmt: skip
MANHOLE_AREAS = (0.636, 0.636, 0.636, 1.131, 1.131, 1.767)  # 1号, 2号, 3号 (more 1号 in small sewers)
WELL_DIAMETERS = (0.9, 1.2, 1.5, 1.8, 2.0)
PIPE_DIAMETERS = (0.2, 0.2, 0.25, 0.3)
SCENARIOS = ("dry", "wet", "rain")
TRAVEL_S = 600.0  # the flow in transit follows the catchment flow smoothed over the sewer's travel time

# --- the part-full circular section, normalised to D = 1 ----------------------------------------------

_N_TAB = 2000


def _theta(h: float) -> float:
    return 2.0 * math.acos(1.0 - 2.0 * h)  # wetted angle at depth h (D = 1)


def _area1(h: float) -> float:
    t = _theta(h)
    return (t - math.sin(t)) / 8.0


def _q1(h: float) -> float:
    """Manning's A·R^(2/3) of the unit pipe filled to h (× √s / n × D^(8/3) gives m³/s)."""
    if h <= 0:
        return 0.0
    t = _theta(h)
    a = (t - math.sin(t)) / 8.0
    p = t / 2.0
    return a * (a / p) ** (2.0 / 3.0)


_H = [i / _N_TAB for i in range(_N_TAB + 1)]
_A = [_area1(h) for h in _H]
_PEAK = max(range(_N_TAB + 1), key=lambda i: _q1(_H[i]))
_QH = [_q1(h) for h in _H[: _PEAK + 1]]


def area(depth: float, d: float) -> float:
    x = min(max(depth / d, 0.0), 1.0) * _N_TAB
    i = min(int(x), _N_TAB - 1)
    return (_A[i] + (_A[i + 1] - _A[i]) * (x - i)) * d * d


def flow_depth(q_m3_s: float, d: float, slope: float, n: float) -> float:
    """Normal depth of a flow; d (running full) beyond the part-full maximum."""
    if q_m3_s <= 0:
        return 0.0
    y = q_m3_s * n / (math.sqrt(slope) * d ** (8.0 / 3.0))
    if y >= _QH[-1]:
        return d
    i = bisect.bisect_left(_QH, y)
    if i == 0:
        return 0.0
    f = (y - _QH[i - 1]) / (_QH[i] - _QH[i - 1])
    return (_H[i - 1] + f / _N_TAB) * d


# --- station shapes --------------------------------------------------------------------------------------


@dataclass
class Reach:
    length: float
    slope: float
    manhole_area: float | None  # at its upper end
    benching: float  # manhole floor above the invert there


@dataclass
class Sewer:
    diameter: float
    n: float
    invert: float  # at its lower end
    reaches: list[Reach]
    branches: list[tuple[int, Sewer]] = field(
        default_factory=list
    )  # (index of the reach it joins at the top of)

    def length(self) -> float:
        return sum(r.length for r in self.reaches) + sum(b.length() for _, b in self.branches)


@dataclass
class Shape:
    well_diameter: float
    stop: float
    start: float
    lag: float
    hwl: float
    invert: float
    spill: float
    ground: float
    pump_rated: float  # m³/min, each of two
    pump_actual: tuple[float, float]  # what they really deliver
    population: int
    per_capita: float  # L/person/day
    sewers: list[Sewer]

    @property
    def well_area(self) -> float:
        return math.pi * self.well_diameter**2 / 4

    @property
    def q_avg(self) -> float:
        return self.population * self.per_capita / 1000.0 / 1440.0


def _random_sewer(rng: random.Random, invert: float, length: float, *, branch_ok: bool) -> Sewer:
    d = rng.choice(PIPE_DIAMETERS)
    n = rng.uniform(0.012, 0.015)
    base_slope = rng.uniform(0.003, 0.012)
    reaches, x = [], 0.0
    while x < length - 1:
        seg = min(rng.uniform(15, 60), length - x)
        slope = base_slope * rng.uniform(0.7, 1.4)
        has_mh = rng.random() > 0.05
        reaches.append(
            Reach(seg, slope, rng.choice(MANHOLE_AREAS) if has_mh else None, rng.uniform(0.5, 1.0) * d)
        )
        x += seg
    sewer = Sewer(d, n, invert, reaches)
    if branch_ok and len(reaches) > 3 and rng.random() < 0.5:
        at = rng.randrange(1, len(reaches) - 1)
        if reaches[at].manhole_area is None:
            reaches[at].manhole_area = 0.636
        inv_at = invert + sum(r.length * r.slope for r in reaches[: at + 1])
        drop = rng.choice((0.0, 0.0, rng.uniform(0.02, 0.3)))
        sewer.branches.append((at, _random_sewer(rng, inv_at + drop, rng.uniform(60, 250), branch_ok=False)))
    return sewer


def random_shape(rng: random.Random) -> Shape:
    """A manhole pump station within realistic ranges (domain.md §1–§3), sized as designed: each pump
    covers a wet-weather peak (5–8 × the average flow), the active volume gives a minimum cycle
    T_min = 4V/Q_p of 8–15 min (≤ 6 starts an hour), so the wet well is the smallest that holds it."""
    population = int(rng.uniform(150, 1500))
    per_capita = rng.uniform(250, 350)
    q_avg = population * per_capita / 1000 / 1440
    rated = max(0.2, q_avg * rng.uniform(5.0, 8.0))
    active = rated * rng.uniform(8.0, 15.0) / 4  # m³ between stop and start
    stop = rng.uniform(0.35, 0.6)
    for well in WELL_DIAMETERS:
        if active / (math.pi * well**2 / 4) <= 0.8:
            break
    depth = min(active / (math.pi * well**2 / 4), 1.2)
    start = stop + depth
    lag = start + rng.uniform(0.1, 0.25)
    hwl = lag + rng.uniform(0.1, 0.2)
    invert = hwl + rng.uniform(0.08, 0.3)
    spill = invert + rng.uniform(0.9, 2.2)
    actual = (rated * rng.uniform(0.8, 1.03), rated * rng.uniform(0.8, 1.03))
    sewers = [_random_sewer(rng, invert, rng.uniform(150, 600), branch_ok=True)]
    if rng.random() < 0.3:
        sewers.append(
            _random_sewer(rng, invert + rng.uniform(0.0, 0.4), rng.uniform(80, 300), branch_ok=False)
        )
    return Shape(
        well, stop, start, lag, hwl, invert, spill, spill + 1.0, rated, actual, population, per_capita, sewers
    )


# --- the sewer, sliced --------------------------------------------------------------------------------


class Storage:
    """W(z, q): all the water in the system at level z while the sewer carries q (m³/min) (see above)."""

    def __init__(self, shape: Shape, dx: float = 2.0) -> None:
        self.shape = shape
        total = sum(s.length() for s in shape.sewers)
        # slices: (invert at the middle, diameter, slope, n, length, share of the flow)
        slices: list[tuple[float, float, float, float, float, float]] = []
        manholes: list[tuple[float, float, float, float, float, float, float]] = []  # + area, floor

        def walk(s: Sewer) -> None:
            above = s.length()  # sewer length upstream of the current point (this sewer and its branches)
            z = s.invert
            for i, r in enumerate(s.reaches):
                k = max(1, math.ceil(r.length / dx))
                h = r.length / k
                for j in range(k):
                    inv = z + r.slope * (j + 0.5) * h
                    slices.append((inv, s.diameter, r.slope, s.n, h, (above - (j + 0.5) * h) / total))
                above -= r.length
                z += r.slope * r.length
                if r.manhole_area is not None:  # what leaves it downstream: everything above it
                    manholes.append(
                        (z, s.diameter, r.slope, s.n, above / total, r.manhole_area, z + r.benching)
                    )
                for at, b in s.branches:
                    if at == i:
                        above -= b.length()
            for _, b in s.branches:
                walk(b)

        for s in shape.sewers:
            walk(s)
        slices.sort()
        manholes.sort(key=lambda m: m[6])
        self.slices = slices
        self.manholes = manholes
        self._inv = [sl[0] for sl in slices]
        self._floor = [m[6] for m in manholes]
        self._q_grid: list[float] = []
        self._transit: list[float] = []

    def _depth(self, q: float, d: float, s: float, n: float, share: float) -> float:
        return flow_depth(q / 60.0 * share, d, s, n)

    def in_transit_exact(self, q: float) -> float:
        return sum(area(self._depth(q, d, s, n, sh), d) * h for _, d, s, n, h, sh in self.slices)

    def tabulate(self, q_lo: float, q_hi: float, n: int = 60) -> None:
        """In-transit volume on a log grid of flows (it is smooth in q): the 1-s loop interpolates."""
        lo, hi = math.log(q_lo), math.log(q_hi)
        self._q_grid = [math.exp(lo + (hi - lo) * i / (n - 1)) for i in range(n)]
        self._transit = [self.in_transit_exact(q) for q in self._q_grid]

    def in_transit(self, q: float) -> float:
        g = self._q_grid
        if not g or not g[0] <= q <= g[-1]:
            return self.in_transit_exact(q)
        i = min(bisect.bisect_right(g, q), len(g) - 1)
        f = (q - g[i - 1]) / (g[i] - g[i - 1])
        return self._transit[i - 1] + (self._transit[i] - self._transit[i - 1]) * f

    def water(self, z: float, q: float) -> float:
        """A_ww·z + the flow in transit + what the pool holds above it (only slices below z can differ)."""
        w = self.shape.well_area * max(z, 0.0) + self.in_transit(q)
        for inv, d, s, n, h, sh in self.slices[: bisect.bisect_left(self._inv, z)]:
            y = self._depth(q, d, s, n, sh)
            if z - inv > y:
                w += (area(z - inv, d) - area(y, d)) * h
        for inv, d, s, n, sh, a, floor in self.manholes[: bisect.bisect_left(self._floor, z)]:
            w += a * max(0.0, z - max(floor, inv + self._depth(q, d, s, n, sh)))
        return w

    def level(self, w: float, q: float, lo: float) -> float:
        """The level at which the system holds w at flow q (bisection, to 1 mm; the level is ≥ lo)."""
        if self.water(lo, q) >= w:
            return lo
        hi = lo + 0.05
        while self.water(hi, q) < w:
            lo, hi = hi, hi + 0.2
        while hi - lo > 1e-3:
            mid = (lo + hi) / 2
            if self.water(mid, q) < w:
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2


# --- inflow --------------------------------------------------------------------------------------------


@dataclass
class Inflow:
    """Catchment flow (m³/min) at a time (seconds since local midnight of day 0)."""

    q_avg: float
    profile: tuple[float, ...]
    sigma: float
    period_s: float
    seed: int
    wet_steady: float = 0.0  # m³/min of steady I/I
    rain_start_s: float | None = None
    rain_peak: float = 0.0  # m³/min of fast rain-derived inflow at its plateau
    rain_tau_s: float = 600.0
    infil_peak: float = 0.0  # m³/min of slow infiltration
    infil_tau_s: float = 5400.0
    storm_s: float = 7200.0  # the storm lasts this long, then both decay
    decay_tau_s: float = 2700.0
    _noise: dict[int, float] = field(default_factory=dict)

    def f(self, t: float) -> float:
        h = (t / 3600.0) % 24.0
        i = int(h)
        p = self.profile
        return p[i] + (p[(i + 1) % 24] - p[i]) * (h - i)

    def noise(self, t: float) -> float:
        k = int(t // self.period_s)
        v = self._noise.get(k)
        if v is None:
            z = random.Random(self.seed * 1_000_003 + k).gauss(0.0, 1.0)
            v = math.exp(self.sigma * z - self.sigma**2 / 2)
            self._noise[k] = v
        return v

    def wet(self, t: float) -> float:
        q = self.wet_steady
        if self.rain_start_s is None or t <= self.rain_start_s:
            return q
        el = t - self.rain_start_s

        def rise(peak: float, tau: float) -> float:
            if el <= self.storm_s:
                return peak * (1 - math.exp(-el / tau))
            at_end = peak * (1 - math.exp(-self.storm_s / tau))
            return at_end * math.exp(-(el - self.storm_s) / self.decay_tau_s)

        return q + rise(self.rain_peak, self.rain_tau_s) + rise(self.infil_peak, self.infil_tau_s)

    def __call__(self, t: float) -> float:
        return self.q_avg * self.f(t) * self.noise(t) + self.wet(t)


def random_profile(rng: random.Random) -> tuple[float, ...]:
    """The domain table, shifted by up to ±40 min and each hour varied by up to ±amp (smoothly), mean 1."""
    shift = rng.uniform(-40, 40) / 60.0
    amp = rng.uniform(0.0, 0.15)
    wiggle = [rng.uniform(-1, 1) for _ in range(24)]
    out = []
    for h in range(24):
        x = (h - shift) % 24.0
        i = int(x)
        v = DOMAIN_PROFILE[i] + (DOMAIN_PROFILE[(i + 1) % 24] - DOMAIN_PROFILE[i]) * (x - i)
        w = (wiggle[h] + 0.5 * wiggle[(h - 1) % 24] + 0.5 * wiggle[(h + 1) % 24]) / 2
        out.append(v * (1 + amp * w))
    mean = sum(out) / 24
    return tuple(v / mean for v in out)


def random_inflow(rng: random.Random, shape: Shape, scenario: str, cut_s: float, seed: int) -> Inflow:
    inflow = Inflow(
        q_avg=shape.q_avg,
        profile=random_profile(rng),
        sigma=rng.uniform(0.1, 0.3),
        period_s=rng.uniform(60, 300),
        seed=seed,
    )
    if scenario == "wet":
        inflow.wet_steady = shape.q_avg * rng.uniform(0.5, 2.0)
    elif scenario == "rain":
        inflow.rain_start_s = cut_s - rng.uniform(10, 30) * 60
        inflow.rain_peak = shape.q_avg * rng.uniform(0.5, 2.0)
        inflow.rain_tau_s = rng.uniform(5, 20) * 60
        inflow.infil_peak = shape.q_avg * rng.uniform(0.1, 0.6)
        inflow.infil_tau_s = rng.uniform(60, 180) * 60
        inflow.storm_s = rng.uniform(90, 240) * 60
        inflow.decay_tau_s = rng.uniform(30, 90) * 60
    return inflow


# --- the run -------------------------------------------------------------------------------------------


@dataclass
class Poll:
    t: float  # seconds since local midnight of day 0
    level: float  # as the register reports it (0.01 m)
    running: tuple[bool, bool]
    mains_failed: bool


@dataclass
class Run:
    polls: list[Poll]  # normal operation, then the outage up to cut + after_s
    cut_s: float
    spill_s: float | None  # None: no spill within the horizon
    level_at_cut: float


def run(
    shape: Shape,
    inflow: Inflow,
    *,
    cut_s: float,
    warmup_s: float,
    poll_s: float,
    after_s: float,
    seed: int,
    horizon_s: float = 36 * 3600.0,
) -> Run:
    """Normal operation from cut − warmup (1-s steps), the mains cut at `cut_s`, the outage polled up to
    cut + after_s (1-s steps, the level solved from W), then 5-s steps without polling until the spill."""
    rng = random.Random(seed)
    st = Storage(shape)
    lo_q = min(inflow(t) for t in range(int(cut_s - warmup_s), int(cut_s + horizon_s), 600))
    hi_q = max(inflow(t) for t in range(int(cut_s - warmup_s), int(cut_s + horizon_s), 60))
    st.tabulate(0.5 * lo_q, 1.5 * hi_q)
    a_ww = shape.well_area
    polls: list[Poll] = []
    t = cut_s - warmup_s
    z = shape.stop + (shape.start - shape.stop) * rng.uniform(0.1, 0.9)
    running = [False, False]
    lead = 0
    # The flow in transit follows the catchment's with the sewer's travel time: smoothed over TRAVEL_S.
    q_s = inflow(t)
    transit = st.in_transit(q_s)
    growth = 0.0  # m³/s the flow in transit takes (over the last 30 s)
    next_poll = t
    while t < cut_s:
        q = inflow(t)
        q_s += (q - q_s) / TRAVEL_S
        if int(t - cut_s) % 30 == 0:
            new = st.in_transit(q_s)
            growth, transit = (new - transit) / 30.0, new
        # the panel: lead pump at start, both from lag, all stop at stop, the lead alternates every cycle
        if z >= shape.lag:
            running = [True, True]
        elif z >= shape.start and not any(running):
            running = [lead == 0, lead == 1]
        elif z <= shape.stop and any(running):
            running = [False, False]
            lead = 1 - lead
        out = sum(shape.pump_actual[i] for i in (0, 1) if running[i]) / 60.0
        z = max(z + (q / 60.0 - growth - out) / a_ww, 0.0)
        if t >= next_poll:
            polls.append(Poll(t, _register(z, rng), (running[0], running[1]), False))
            next_poll += poll_s
        t += 1.0
    assert z < shape.invert, "the level rose into the sewer before the cut: pumps too small for the case"
    z0 = z
    w = st.water(z0, q_s)
    while t < cut_s + after_s:  # the outage, polled
        if t >= next_poll:
            z = st.level(w, q_s, z0)
            polls.append(Poll(t, _register(z, rng), (False, False), True))
            next_poll += poll_s
        w += (inflow(t) + inflow(t + 1.0)) / 2 / 60.0
        q_s += (inflow(t) - q_s) / TRAVEL_S
        t += 1.0
    spill = None
    dt = 5.0
    at_spill = [st.water(shape.spill, q) for q in st._q_grid]  # W(z_spill, q) is smooth in q too

    def spill_water(q: float) -> float:
        g = st._q_grid
        if not g[0] <= q <= g[-1]:
            return st.water(shape.spill, q)
        i = min(bisect.bisect_right(g, q), len(g) - 1)
        return at_spill[i - 1] + (at_spill[i] - at_spill[i - 1]) * (q - g[i - 1]) / (g[i] - g[i - 1])

    prev_gap = spill_water(q_s) - w
    while t < cut_s + horizon_s:
        q_b = inflow(t + dt)
        w_next = w + (inflow(t) + q_b) / 2 * dt / 60.0
        q_s += (q_b - q_s) * (1 - math.exp(-dt / TRAVEL_S))
        gap = spill_water(q_s) - w_next
        if gap <= 0:
            spill = t + dt * prev_gap / (prev_gap - gap) if prev_gap > 0 else t
            break
        w, prev_gap, t = w_next, gap, t + dt
    return Run(polls, cut_s, spill, z0)


def _register(z: float, rng: random.Random) -> float:
    return round((z + rng.gauss(0.0, 0.002)) * 100) / 100
