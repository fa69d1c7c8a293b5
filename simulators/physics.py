"""Physics of the simulated stations (docs/domain.md §1–§5): pure, deterministic, no I/O.

Shared building blocks for every station kind, the manhole pump station itself, and the telemetry RTU:

- `StationModel`: the time grid. `step(now)` advances the state to `now` in fixed sub-steps (1 s of
  simulated time by default) on a grid anchored at `start`, so the state at a time depends only on the seed,
  the start, the scenario changes and that time — never on how often `step` was called. The remainder below
  one sub-step is carried over to the next call. Random streams are per station and per purpose
  (`rng("inflow")`), so a scenario that changes one thing does not shift the others.
- `DiurnalInflow`: `Q_avg × f(local hour) × lognormal noise` (§1.3), the noise (mean 1) redrawn every
  `noise_period_s`.
- `StagedPumpControl`: the multi-pump panel of relay and stormwater stations (§4.1): one stage per duty pump
  with its own start/stop level, starts in round-robin order (so the lead rotates every cycle), stops of the
  longest-running pump first, standby pumps only in place of duty pumps that cannot run, never two starts
  within `stagger_s`.
- `StandbyGenerator`: a diesel set that starts on mains failure after a delay, burns fuel with load, runs a
  cool-down after mains returns; a fault or an empty tank stops it.
- `LevelGauge`: a level transmitter that can be biased, frozen or dead (reads 0 with the loop fault flag).
- `TelemetryRTU`: a telemetry unit / gateway with one battery, charged from a station's mains.

`ManholePumpStation` (§1.2–§1.5), per sub-step:
- Inflow from `DiurnalInflow` (catchment population × L/person/day) × `rain_factor`.
- Volume balance on the `StageStorage` of the station (wet well + upstream sewers); level = storage.level(V).
  At the spill level the volume is capped and the excess counted as overflow (`overflow_m3`, `spilled_at`).
- The panel (§1.4) controls on the *measured* level: lead pump at start, second at lag, all stop at stop; the
  lead alternates every cycle; faulted pumps are skipped (standby pumps only replace faulted duty pumps).
  The HWL float (true level ≥ hwl, 5 cm differential) forces every available pump on for at least
  `hwl_min_run_s`; the LWL float (true level < lwl) blocks running. Mains failure or phase loss stops all
  pumps; when power returns they restart after `restart_delay_s`, never two starts within `stagger_s`.
- Pumps deliver rated flow × (1 − wear) × (1 − 0.4·clog) and draw rated current × load (0.92–1.0, ±1 %
  noise) × (1 + 0.3·clog) while running. `clog` is a severity 0..1 (+0..30 % current, −0..40 % flow).
- Counters: run seconds and starts per pump, starts in the last hour (station), a heartbeat that counts
  seconds while the telemetry unit has power (mains or battery), wrapping at 65536.
- Mains voltage ≈ 200 V (σ 1 V) or 0; telemetry battery 13.6 V on charge, on battery 12.8 V → 10.5 V
  over `battery_hours` (flat battery: the unit stops, the heartbeat freezes), `battery_low` below 11.5 V.

Scenario knobs are plain attributes or setters (`set_mains`, `set_pump_fault`, `set_clog`, `set_wear`,
`set_sensor_stuck_low`, `rain_factor`, and the panel flags `earth_leakage`, `door_open`, …). Apply them after
stepping to the time they take effect.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import ClassVar
from zoneinfo import ZoneInfo

from pumpwatch.config.models import StationConfig
from pumpwatch.hydraulics import StageStorage

__all__ = [
    "BATTERY_EMPTY_V",
    "BATTERY_FLOAT_V",
    "BATTERY_FULL_V",
    "BATTERY_LOW_V",
    "DIURNAL",
    "DiurnalInflow",
    "LevelGauge",
    "ManholePumpStation",
    "PointValues",
    "PumpControls",
    "PumpState",
    "StagedPumpControl",
    "StandbyGenerator",
    "StationModel",
    "TelemetryRTU",
    "catchment_q_avg_m3_min",
    "derive_stages",
    "diurnal_factor",
    "lognormal",
]

# §1.3 hourly multipliers for a residential catchment (hour = start of hour), mean 1.00.
DIURNAL = (
    0.80, 0.65, 0.50, 0.42, 0.43, 0.45, 0.75, 1.30, 1.55, 1.40, 1.25, 1.15,
    1.10, 1.05, 0.95, 0.90, 0.90, 1.00, 1.15, 1.35, 1.40, 1.35, 1.20, 1.00,
)  # fmt: skip
DEFAULT_POPULATION = 375
DEFAULT_PER_CAPITA_L_DAY = 300.0
SUPPLY_VOLTAGE_V = 200.0
BATTERY_FLOAT_V = 13.6
BATTERY_FULL_V = 12.8
BATTERY_EMPTY_V = 10.5
BATTERY_LOW_V = 11.5
CLOG_CURRENT_GAIN = 0.3
CLOG_FLOW_LOSS = 0.4
STAGE_STEP_M = 0.3  # §4.1: P2 at L1 + 0.3 m, P3 at L1 + 0.6 m (est.)
STAGE_HYSTERESIS_M = 0.25  # §4.1: stop 0.2–0.3 m below the stage's start (est.)

PointValues = dict[str, float | int | bool | None]  # None: no value (encoded as the map's not_available)


def diurnal_factor(local_seconds_of_day: float) -> float:
    """§1.3 multiplier, linearly interpolated between the values at the start of each hour."""
    h = (local_seconds_of_day / 3600.0) % 24.0
    i = int(h)
    frac = h - i
    return DIURNAL[i] + (DIURNAL[(i + 1) % 24] - DIURNAL[i]) * frac


def lognormal(rng: random.Random, sigma: float) -> float:
    """A multiplicative noise factor with mean 1 (lognormal, σ of the log)."""
    return math.exp(rng.gauss(0.0, sigma) - sigma * sigma / 2) if sigma > 0 else 1.0


def catchment_q_avg_m3_min(cfg: StationConfig) -> float:
    """Average dry-weather flow of the station's catchment (population × L/person/day), m³/min."""
    catchment = cfg.catchment
    population = catchment.population if catchment else DEFAULT_POPULATION
    per_capita = catchment.per_capita_l_day if catchment else DEFAULT_PER_CAPITA_L_DAY
    return population * per_capita / 1000.0 / 1440.0


def derive_stages(cfg: StationConfig) -> list[tuple[float, float]]:
    """(start_m, stop_m) per duty pump: `control.stages` as configured, completed for the remaining duty
    pumps (and invented when absent) as start = levels.start_m + 0.3·n, stop = start − 0.25 (the first stage
    stops at levels.stop_m)."""
    assert cfg.levels is not None
    lv = cfg.levels
    n_duty = sum(not p.standby for p in cfg.pumps) or len(cfg.pumps)
    stages = [(s.start_m, s.stop_m) for s in (cfg.control.stages if cfg.control else [])]
    for n in range(len(stages), n_duty):
        start = lv.start_m + STAGE_STEP_M * n
        stop = lv.stop_m if n == 0 else max(lv.stop_m, start - STAGE_HYSTERESIS_M)
        stages.append((start, stop))
    return stages


@dataclass
class PumpState:
    name: str
    rated_flow_m3_min: float
    rated_current_a: float
    standby: bool = False
    running: bool = False
    faulted: bool = False
    clog: float = 0.0  # severity 0..1
    wear: float = 0.0  # fraction of rated flow lost
    load: float = 0.96  # operating point, fraction of rated current
    run_s: float = 0.0
    starts: int = 0
    started_tick: int = -1
    current_noise: float = 0.0
    power_kw: float = 0.0  # rated motor (or engine) power
    engine: bool = False  # engine-driven (keeps running without mains)
    auto: bool = True  # selector in automatic (remote) mode

    @property
    def flow_m3_s(self) -> float:
        return self.rated_flow_m3_min / 60.0 * (1.0 - self.wear) * (1.0 - CLOG_FLOW_LOSS * self.clog)

    @property
    def current_a(self) -> float:
        if not self.running:
            return 0.0
        return (
            self.rated_current_a
            * self.load
            * (1.0 + CLOG_CURRENT_GAIN * self.clog)
            * (1.0 + self.current_noise)
        )

    @property
    def run_hours(self) -> float:
        return self.run_s / 3600.0

    @property
    def power_draw_kw(self) -> float:
        """Shaft/electric power while running (load × (1 + 0.3·clog) × rated)."""
        return self.power_kw * self.load * (1.0 + CLOG_CURRENT_GAIN * self.clog) if self.running else 0.0


def pumps_from_config(
    cfg: StationConfig, setup: random.Random, start: datetime, *, initial_counters: bool
) -> list[PumpState]:
    """PumpState per configured pump: load drawn from `setup`; run hours and starts from the install year."""
    pumps = []
    for cp in cfg.pumps:
        # Without power_kw: P ≈ √3 · 200 V · I · pf 0.85 (est.).
        power = cp.power_kw if cp.power_kw is not None else math.sqrt(3) * 200 * cp.rated_current_a * 0.85e-3
        ps = PumpState(
            cp.name,
            cp.rated_flow_m3_min,
            cp.rated_current_a,
            standby=cp.standby,
            power_kw=power,
            engine=cp.drive == "engine",
        )
        ps.load = setup.uniform(0.92, 1.0)
        if initial_counters and cp.install_year is not None:
            age_days = max(0.0, (start.year - cp.install_year) * 365.25)
            duty = 0.1 if cp.standby else 1.0  # a standby pump runs only when a duty pump is out (est.)
            ps.run_s = age_days * setup.uniform(1.5, 2.5) * 3600.0 * duty
            ps.starts = int(age_days * setup.uniform(40, 60) * duty)
        pumps.append(ps)
    return pumps


# --- the time grid -----------------------------------------------------------------------------------------


class StationModel:
    """Base of every station model: config, seed, start, time zone and the sub-step grid.

    Subclasses implement `_substep()` (which must end with `_end_substep(alive)`), `point_values()`,
    `mains_ok` and `site_power_ok`.
    """

    kind: ClassVar[str] = ""

    def __init__(
        self, cfg: StationConfig, seed: int, start: datetime, *, timezone: str | tzinfo, substep_s: float
    ) -> None:
        if cfg.kind != self.kind:
            raise ValueError(f"station {cfg.id} is a {cfg.kind}, not a {self.kind}")
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if not 0 < substep_s <= 1.0:
            raise ValueError("substep_s must be in (0, 1]")
        self.cfg = cfg
        self.id = cfg.id
        self.seed = seed
        self.start = start.astimezone(UTC)
        self.tz = ZoneInfo(timezone) if isinstance(timezone, str) else timezone
        self.substep_s = substep_s
        self.mains_ok = True
        self.heartbeat = 0
        self._tick = 0
        self._utc_offset_s = 0.0
        self._offset_valid_until = -math.inf
        self._start_epoch = self.start.timestamp()
        self._hb_seconds = 0

    def rng(self, stream: str) -> random.Random:
        """An independent random stream of this station (same seed, start and id: same numbers)."""
        return random.Random(f"pumpwatch:{self.seed}:{self.id}:{stream}")

    @property
    def now(self) -> datetime:
        """The simulated time the state is at."""
        return self.start + timedelta(seconds=self._tick * self.substep_s)

    @property
    def tick(self) -> int:
        return self._tick

    def step(self, now: datetime) -> None:
        """Advance to `now` (whole sub-steps on the grid from `start`; never backwards)."""
        target = math.floor((now - self.start).total_seconds() / self.substep_s + 1e-9)
        while self._tick < target:
            self._substep()

    def _ticks(self, seconds: float) -> int:
        return math.ceil(seconds / self.substep_s - 1e-9)

    def _time_at(self, tick: int) -> datetime:
        return self.start + timedelta(seconds=tick * self.substep_s)

    def _local_seconds_of_day(self, t_s: float) -> float:
        epoch = self._start_epoch + t_s
        if epoch >= self._offset_valid_until:
            when = datetime.fromtimestamp(epoch, UTC)
            off = when.astimezone(self.tz).utcoffset()
            self._utc_offset_s = off.total_seconds() if off is not None else 0.0
            self._offset_valid_until = (math.floor(epoch / 3600.0) + 1) * 3600.0
        return (epoch + self._utc_offset_s) % 86400.0

    def _substep(self) -> None:
        raise NotImplementedError

    def _end_substep(self, alive: bool) -> None:
        """Move the tick on; count whole seconds on the heartbeat while the telemetry is `alive`."""
        self._tick += 1
        seconds = math.floor(self._tick * self.substep_s + 1e-9)
        if seconds != self._hb_seconds:
            if alive:
                self.heartbeat = (self.heartbeat + seconds - self._hb_seconds) % 65536
            self._hb_seconds = seconds

    def set_mains(self, ok: bool) -> None:
        self.mains_ok = ok

    @property
    def site_power_ok(self) -> bool:
        """Whether the station's own equipment has power (mains, or a running generator)."""
        return self.mains_ok

    def point_values(self) -> PointValues:
        raise NotImplementedError


class PumpControls:
    """Scenario controls shared by every station model with pumps (`self.pumps`, numbered from 1)."""

    id: str
    pumps: list[PumpState]

    def _pump_index(self, pump: int | str) -> int:
        if isinstance(pump, str):
            for i, p in enumerate(self.pumps):
                if p.name == pump:
                    return i
            raise KeyError(f"station {self.id} has no pump {pump!r}")
        if not 1 <= pump <= len(self.pumps):
            raise KeyError(f"station {self.id} has no pump {pump} (pumps are numbered from 1)")
        return pump - 1

    def pump(self, pump: int | str) -> PumpState:
        """A pump by 1-based number or by name."""
        return self.pumps[self._pump_index(pump)]

    def set_pump_fault(self, pump: int | str, faulted: bool = True) -> None:
        p = self.pump(pump)
        p.faulted = faulted
        if faulted:
            p.running = False

    def set_pump_auto(self, pump: int | str, auto: bool = True) -> None:
        """Selector to automatic (True) or manual/local (False: the panel no longer runs it)."""
        self.pump(pump).auto = auto

    def set_clog(self, pump: int | str, severity: float) -> None:
        if not 0 <= severity <= 1:
            raise ValueError("clog severity must be in 0..1")
        self.pump(pump).clog = severity


class DiurnalInflow:
    """Sanitary inflow: `q_avg × f(local hour) × lognormal noise`, noise redrawn every `noise_period_s`."""

    def __init__(
        self,
        q_avg_m3_min: float,
        rng: random.Random,
        *,
        diurnal: bool = True,
        noise_sigma: float = 0.3,
        noise_period_ticks: int = 120,
    ) -> None:
        self.q_avg_m3_min = q_avg_m3_min
        self.rng = rng
        self.diurnal = diurnal
        self.noise_sigma = noise_sigma
        self.noise_period_ticks = max(1, noise_period_ticks)
        self.noise = 1.0
        self._next_noise_tick = 0

    def m3_s(self, tick: int, local_seconds_of_day: float) -> float:
        if tick >= self._next_noise_tick:
            self.noise = lognormal(self.rng, self.noise_sigma)
            self._next_noise_tick = tick + self.noise_period_ticks
        f = diurnal_factor(local_seconds_of_day) if self.diurnal else 1.0
        return self.q_avg_m3_min / 60.0 * f * self.noise


# --- panels and plant equipment ----------------------------------------------------------------------------


class StagedPumpControl:
    """Staged level control of several pumps (§4.1), on the measured level.

    Stage n is on from its start level until the level falls to its stop level; demand = stages on.
    `run()` then starts or stops one pump at a time: pumps that cannot keep running stop at once; a running
    pump that is no longer allowed (a standby whose duty pump is back) stops; above demand the standby and
    then the longest-running pump stop; below demand the next pump in round-robin order after the last one
    started starts, no sooner than `stagger` ticks after the previous start and not before
    `start_not_before` (restart delay after power returns).
    """

    def __init__(self, stages: Sequence[tuple[float, float]], n_pumps: int, stagger_ticks: int) -> None:
        if not stages:
            raise ValueError("staged control needs at least one stage")
        self.stages = list(stages)
        self.stage_on = [False] * len(stages)
        self.n_pumps = n_pumps
        self.stagger_ticks = stagger_ticks
        self.next_pump = 0
        self.last_start_tick: int | None = None
        self.start_not_before = 0
        self.start_ticks: deque[int] = deque()

    def demand(self, level_m: float | None) -> int:
        """Stages on at this level (None: no level measurement: every stage off)."""
        for i, (start, stop) in enumerate(self.stages):
            if level_m is None or level_m <= stop:
                self.stage_on[i] = False
            elif level_m >= start:
                self.stage_on[i] = True
        return sum(self.stage_on)

    def run(
        self,
        tick: int,
        pumps: Sequence[PumpState],
        want: int | None,
        can_keep: Callable[[int], bool],
        can_start: Callable[[int], bool],
    ) -> int | None:
        """One control scan. `want` None: every allowed pump (forced run). Returns the pump started."""
        for i, p in enumerate(pumps):
            if p.running and not can_keep(i):
                p.running = False
        n = len(pumps)
        duty = [i for i in range(n) if not pumps[i].standby]
        usable_duty = [i for i in duty if can_start(i) or (pumps[i].running and can_keep(i))]
        spares = len(duty) - len(usable_duty)
        standby = [i for i in range(n) if pumps[i].standby and (can_start(i) or pumps[i].running)][:spares]
        allowed = set(usable_duty) | set(standby)
        for i, p in enumerate(pumps):
            if p.running and i not in allowed:
                p.running = False
        target = len(allowed) if want is None else min(want, len(allowed))
        running = [i for i, p in enumerate(pumps) if p.running]
        if len(running) > target:
            running.sort(key=lambda i: (not pumps[i].standby, pumps[i].started_tick))
            pumps[running[0]].running = False
            return None
        if len(running) == target or tick < self.start_not_before:
            return None
        if self.last_start_tick is not None and tick - self.last_start_tick < self.stagger_ticks:
            return None
        order = [(self.next_pump + k) % n for k in range(n)]
        order.sort(key=lambda i: pumps[i].standby)  # duty pumps first, in rotation
        for i in order:
            p = pumps[i]
            if i in allowed and not p.running and can_start(i):
                p.running = True
                p.starts += 1
                p.started_tick = tick
                self.last_start_tick = tick
                self.start_ticks.append(tick)
                if not p.standby:
                    self.next_pump = (i + 1) % n
                return i
        return None

    def forget_before(self, tick: int) -> None:
        while self.start_ticks and self.start_ticks[0] < tick:
            self.start_ticks.popleft()


@dataclass
class StandbyGenerator:
    """A diesel standby generator (est. figures: 600 PS ≈ 441 kW, ~100 L/h at full load, 4 000 L tank).

    `update()` each sub-step: on mains failure it starts `start_delay_s` later (unless faulted or out of
    fuel) and supplies the station; when mains returns it runs unloaded for `cooldown_s`, then stops.
    Fuel burns at idle + (full − idle) × load fraction.
    """

    rated_kw: float = 441.0
    start_delay_s: float = 20.0
    cooldown_s: float = 300.0
    tank_l: float = 4000.0
    fuel_l: float = 3600.0
    idle_l_h: float = 12.0
    full_load_l_h: float = 100.0
    fuel_low_fraction: float = 0.25
    faulted: bool = False
    running: bool = False
    run_s: float = 0.0
    _start_at: int | None = None
    _stop_at: int | None = None

    @property
    def fuel_pct(self) -> float:
        return 100.0 * self.fuel_l / self.tank_l

    @property
    def fuel_low(self) -> bool:
        return self.fuel_l < self.fuel_low_fraction * self.tank_l

    def update(self, tick: int, mains_ok: bool, ticks: Callable[[float], int]) -> None:
        if self.faulted or self.fuel_l <= 0:
            self.running = False
            self._start_at = None
            self._stop_at = None
            return
        if not mains_ok:
            self._stop_at = None
            if not self.running:
                if self._start_at is None:
                    self._start_at = tick + ticks(self.start_delay_s)
                if tick >= self._start_at:
                    self.running = True
                    self._start_at = None
        else:
            self._start_at = None
            if self.running:
                if self._stop_at is None:
                    self._stop_at = tick + ticks(self.cooldown_s)
                if tick >= self._stop_at:
                    self.running = False
                    self._stop_at = None

    def burn(self, load_kw: float, dt: float) -> None:
        if not self.running:
            return
        frac = min(1.0, max(0.0, load_kw / self.rated_kw))
        rate = self.idle_l_h + (self.full_load_l_h - self.idle_l_h) * frac
        self.fuel_l = max(0.0, self.fuel_l - rate * dt / 3600.0)
        self.run_s += dt


@dataclass
class LevelGauge:
    """A level transmitter. Modes: None (healthy), "bias" (reads + bias_m), "freeze" (stuck at the value it
    had), "dead" (loop under range: reads 0 and raises its fault flag, which the panel sees)."""

    mode: str | None = None
    bias_m: float = 0.0
    frozen_m: float = 0.0
    noise_m: float = 0.0
    last_m: float = 0.0

    MODES: ClassVar[tuple[str | None, ...]] = (None, "bias", "freeze", "dead")

    def set_fault(self, mode: str | None, bias_m: float = 0.0) -> None:
        if mode not in self.MODES:
            raise ValueError(f"gauge fault mode must be one of {self.MODES}, not {mode!r}")
        self.mode = mode
        self.bias_m = bias_m
        self.frozen_m = self.last_m

    @property
    def fault_flag(self) -> bool:
        return self.mode == "dead"

    def read(self, true_level_m: float) -> float:
        if self.mode == "dead":
            value = 0.0
        elif self.mode == "freeze":
            value = self.frozen_m
        else:
            value = true_level_m + self.noise_m + (self.bias_m if self.mode == "bias" else 0.0)
        self.last_m = value
        return value


class ManholePumpStation(PumpControls, StationModel):
    """One simulated manhole pump station. `step(now)` moves it on; `point_values()` reads the panel."""

    kind = "manhole_pump"

    def __init__(
        self,
        cfg: StationConfig,
        seed: int,
        start: datetime,
        *,
        timezone: str | tzinfo = "Asia/Tokyo",
        substep_s: float = 1.0,
        initial_level_m: float | None = None,
        initial_counters: bool = True,
        diurnal: bool = True,
        noise_sigma: float = 0.3,
        noise_period_s: float = 120.0,
        rain_factor: float = 1.0,
        restart_delay_s: float = 2.0,
        stagger_s: float = 5.0,
        float_differential_m: float = 0.05,
        hwl_min_run_s: float = 60.0,
        battery_hours: float = 6.0,
        battery_recharge_hours: float = 4.0,
    ) -> None:
        super().__init__(cfg, seed, start, timezone=timezone, substep_s=substep_s)
        assert cfg.levels is not None  # guaranteed by StationConfig for pumping kinds
        self.levels = cfg.levels
        self.storage = StageStorage.from_station(cfg)
        self.diurnal = diurnal
        self.noise_sigma = noise_sigma
        self.noise_period_s = noise_period_s
        self.rain_factor = rain_factor
        self.restart_delay_s = restart_delay_s
        self.stagger_s = stagger_s
        self.float_differential_m = float_differential_m
        self.hwl_min_run_s = hwl_min_run_s
        self.battery_hours = battery_hours
        self.battery_recharge_hours = battery_recharge_hours

        self.q_avg_m3_min = catchment_q_avg_m3_min(cfg)

        # Independent random streams: a scenario that changes one thing does not shift the others.
        setup = self.rng("setup")
        self._inflow = DiurnalInflow(
            self.q_avg_m3_min,
            self.rng("inflow"),
            diurnal=diurnal,
            noise_sigma=noise_sigma,
            noise_period_ticks=self._ticks(noise_period_s),
        )
        self._noise_rng = self.rng("noise")
        self.pumps = pumps_from_config(cfg, setup, self.start, initial_counters=initial_counters)

        lv = self.levels
        if initial_level_m is None:
            initial_level_m = lv.stop_m + (lv.start_m - lv.stop_m) * setup.uniform(0.1, 0.9)
        self.volume_m3 = self.storage.volume(initial_level_m)
        self.level_m = self.storage.level(self.volume_m3)  # true (physical) level
        self.spill_volume_m3 = self.storage.volume(lv.spill_m)
        self.overflow_m3 = 0.0
        self.spilled_at: datetime | None = None
        self.spilling = False
        self.inflow_m3_s = 0.0

        # panel and site state
        self.earth_leakage = False
        self.phase_loss = False
        self.level_sensor_fault = False
        self.sensor_stuck_low = False
        self.door_open = False
        self.local_mode = False
        self.spd_tripped = False
        self.panel_overtemp = False
        self.hwl_float = False
        self.lwl_float = lv.lwl_m is not None and self.level_m < lv.lwl_m
        self.battery_soc = 1.0
        self.battery_voltage_v = BATTERY_FLOAT_V
        self.supply_voltage_v = SUPPLY_VOLTAGE_V

        self._demand = 0
        self._lead = 0
        self._cycle_lead = 0
        self._powered = True
        self._start_not_before = 0
        self._last_start_tick: int | None = None
        self._hwl_run_until = -1
        self._start_ticks: deque[int] = deque()
        self._level_noise = 0.0
        self._voltage_noise = 0.0
        self._battery_noise = 0.0

    # --- the model ----------------------------------------------------------------------------------------

    def _inflow_m3_s(self, t_s: float) -> float:
        return self._inflow.m3_s(self._tick, self._local_seconds_of_day(t_s)) * self.rain_factor

    def _draw_noise(self) -> None:
        rng = self._noise_rng
        self._level_noise = rng.gauss(0.0, 0.002)
        self._voltage_noise = rng.gauss(0.0, 1.0)
        self._battery_noise = rng.gauss(0.0, 0.01)
        for p in self.pumps:
            p.current_noise = max(-0.03, min(0.03, rng.gauss(0.0, 0.01)))

    @property
    def measured_level_m(self) -> float:
        """What the level transmitter reports (0 when stuck low)."""
        return 0.0 if self.sensor_stuck_low else self.level_m + self._level_noise

    def _update_floats(self) -> None:
        lv, z, diff = self.levels, self.level_m, self.float_differential_m
        self.hwl_float = z >= lv.hwl_m - diff if self.hwl_float else z >= lv.hwl_m
        if lv.lwl_m is None:
            self.lwl_float = False
        else:
            self.lwl_float = z < lv.lwl_m + diff if self.lwl_float else z < lv.lwl_m

    def _rotation(self) -> list[int]:
        """Pumps in the order the panel would start them: duty pumps from the lead on, then standby."""
        n = len(self.pumps)
        duty = [(self._lead + k) % n for k in range(n) if not self.pumps[(self._lead + k) % n].standby]
        standby = [i for i in range(n) if self.pumps[i].standby]
        available_duty = [i for i in duty if not self.pumps[i].faulted]
        n_duty = len(duty)
        # A standby pump is used only in place of a faulted duty pump.
        spare = n_duty - len(available_duty)
        return available_duty + [i for i in standby if not self.pumps[i].faulted][:spare]

    def _control(self) -> None:
        lv, tick = self.levels, self._tick
        was_running = any(p.running for p in self.pumps)
        for p in self.pumps:
            if p.faulted:
                p.running = False
        if not (self.mains_ok and not self.phase_loss):
            for p in self.pumps:
                p.running = False
            self._demand = 0
            self._powered = False
        else:
            if not self._powered:
                self._powered = True
                self._start_not_before = tick + self._ticks(self.restart_delay_s)
            z = self.measured_level_m
            d = self._demand
            if lv.lag_m is not None and z >= lv.lag_m:
                d = 2
            elif z >= lv.start_m:
                d = max(d, 1)
            elif z <= lv.stop_m:
                d = 0
            self._demand = d
            if self.hwl_float:
                self._hwl_run_until = tick + self._ticks(self.hwl_min_run_s)
            order = self._rotation()
            forced = self.hwl_float or tick < self._hwl_run_until
            want = len(order) if forced else min(d, len(order))
            if self.lwl_float:
                want = 0
            running = [i for i, p in enumerate(self.pumps) if p.running]
            if len(running) > want:
                running.sort(key=lambda i: self.pumps[i].started_tick, reverse=True)
                for i in running[: len(running) - want]:
                    self.pumps[i].running = False
            elif (
                len(running) < want
                and tick >= self._start_not_before
                and (
                    self._last_start_tick is None
                    or tick - self._last_start_tick >= self._ticks(self.stagger_s)
                )
            ):
                pick = next(i for i in order if not self.pumps[i].running)
                if not running:
                    self._cycle_lead = pick
                p = self.pumps[pick]
                p.running = True
                p.starts += 1
                p.started_tick = tick
                self._last_start_tick = tick
                self._start_ticks.append(tick)
        if was_running and not any(p.running for p in self.pumps):
            self._lead = (self._cycle_lead + 1) % len(self.pumps)  # alternate every cycle

    def _substep(self) -> None:
        dt = self.substep_s
        t_s = self._tick * dt
        self._draw_noise()
        self.inflow_m3_s = self._inflow_m3_s(t_s)
        self._update_floats()
        self._control()

        out = 0.0
        for p in self.pumps:
            if p.running:
                out += p.flow_m3_s
                p.run_s += dt
        v = max(0.0, self.volume_m3 + (self.inflow_m3_s - out) * dt)
        self.spilling = v > self.spill_volume_m3
        if self.spilling:
            self.overflow_m3 += v - self.spill_volume_m3
            v = self.spill_volume_m3
            if self.spilled_at is None:
                self.spilled_at = self.start + timedelta(seconds=(self._tick + 1) * dt)
        self.volume_m3 = v
        self.level_m = self.storage.level(v)

        # power supply and telemetry battery
        if self.mains_ok:
            self.battery_soc = min(1.0, self.battery_soc + dt / (self.battery_recharge_hours * 3600.0))
            self.battery_voltage_v = BATTERY_FLOAT_V + self._battery_noise
            self.supply_voltage_v = 0.0 if self.phase_loss else SUPPLY_VOLTAGE_V + self._voltage_noise
        else:
            self.battery_soc = max(0.0, self.battery_soc - dt / (self.battery_hours * 3600.0))
            v_batt = BATTERY_EMPTY_V + (BATTERY_FULL_V - BATTERY_EMPTY_V) * self.battery_soc
            self.battery_voltage_v = v_batt + self._battery_noise
            self.supply_voltage_v = 0.0

        self._end_substep(self.telemetry_alive)
        horizon = self._tick - self._ticks(3600.0)
        while self._start_ticks and self._start_ticks[0] < horizon:
            self._start_ticks.popleft()

    # --- scenario controls --------------------------------------------------------------------------------

    def set_wear(self, pump: int | str, wear: float) -> None:
        if not 0 <= wear < 1:
            raise ValueError("wear must be in [0, 1)")
        self.pump(pump).wear = wear

    def set_sensor_stuck_low(self, stuck: bool = True, *, fault_flag: bool = True) -> None:
        """The level transmitter reads 0 m; with `fault_flag` the panel also sees the loop under range."""
        self.sensor_stuck_low = stuck
        self.level_sensor_fault = stuck and fault_flag

    def set_level(self, level_m: float) -> None:
        """Put the true level somewhere (test set-ups)."""
        self.volume_m3 = self.storage.volume(level_m)
        self.level_m = self.storage.level(self.volume_m3)
        self._update_floats()

    # --- read-outs ----------------------------------------------------------------------------------------

    @property
    def telemetry_alive(self) -> bool:
        return self.mains_ok or self.battery_soc > 0.0

    @property
    def spill_level_m(self) -> float:
        return self.levels.spill_m

    @property
    def starts_last_hour(self) -> int:
        return len(self._start_ticks)

    @property
    def battery_low(self) -> bool:
        return self.battery_voltage_v < BATTERY_LOW_V

    def point_values(self) -> PointValues:
        """Every canonical point (deploy/config/maps/mps-canonical.yaml) as the panel reports it now."""
        lv = self.levels
        running = sum(p.running for p in self.pumps)
        values: PointValues = {
            "mains_failed": not self.mains_ok,
            "hwl_float": self.hwl_float,
            "lwl_float": self.lwl_float,
            "earth_leakage": self.earth_leakage,
            "phase_loss": self.phase_loss,
            "level_sensor_fault": self.level_sensor_fault,
            "door_open": self.door_open,
            "local_mode": self.local_mode,
            "spd_tripped": self.spd_tripped,
            "battery_low": self.battery_low,
            "panel_overtemp": self.panel_overtemp,
            "both_running": running >= 2,
            "wet_well_level_m": self.measured_level_m,
            "supply_voltage_v": self.supply_voltage_v,
            "starts_last_hour": self.starts_last_hour,
            "heartbeat": self.heartbeat,
            "battery_voltage_v": self.battery_voltage_v,
            "stop_level_m": lv.stop_m,
            "start_level_m": lv.start_m,
            "lag_level_m": lv.lag_m if lv.lag_m is not None else lv.start_m,
            "hwl_level_m": lv.hwl_m,
            "lwl_level_m": lv.lwl_m if lv.lwl_m is not None else 0.0,
        }
        for k, p in enumerate(self.pumps, start=1):
            values[f"pump{k}_running"] = p.running
            values[f"pump{k}_faulted"] = p.faulted
            values[f"pump{k}_current_a"] = p.current_a
            values[f"pump{k}_run_hours_h"] = int(p.run_s // 3600)
            values[f"pump{k}_starts"] = p.starts
        return values

    def snapshot(self) -> dict[str, object]:
        """Internal state for determinism checks and debugging."""
        return {
            "tick": self._tick,
            "volume_m3": self.volume_m3,
            "overflow_m3": self.overflow_m3,
            "spilled_at": self.spilled_at,
            "battery_soc": self.battery_soc,
            "lead": self._lead,
            "demand": self._demand,
            "pumps": [(p.running, p.faulted, p.run_s, p.starts) for p in self.pumps],
            "points": self.point_values(),
        }


# --- telemetry RTU -----------------------------------------------------------------------------------------


class TelemetryRTU:
    """A telemetry unit or gateway with one battery, charged from the mains of the station it is installed at.

    Pure and deterministic like the stations: `step(now)` in sub-steps on a grid from `start`; `power()` is
    read every sub-step (the installing station's `mains_ok`, which only changes when a scenario sets it, so
    stepping the station and the RTU to the same times keeps them exact). On mains the battery floats at
    13.6 V and recharges over `recharge_hours`; on battery it falls 12.8 V → 10.5 V over `battery_hours`
    (`battery_low` below 11.5 V). When it is flat the RTU stops (`alive` False: it no longer answers, its
    heartbeat freezes); when mains returns it boots again after `boot_s` (uptime from 0).
    """

    def __init__(
        self,
        name: str,
        power: Callable[[], bool],
        start: datetime,
        *,
        seed: int = 0,
        substep_s: float = 1.0,
        battery_hours: float = 6.0,
        recharge_hours: float = 4.0,
        boot_s: float = 30.0,
    ) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if not 0 < substep_s <= 1.0:
            raise ValueError("substep_s must be in (0, 1]")
        if battery_hours <= 0 or recharge_hours <= 0 or boot_s < 0:
            raise ValueError("battery_hours and recharge_hours must be > 0, boot_s >= 0")
        self.name = name
        self.power = power
        self.start = start.astimezone(UTC)
        self.substep_s = substep_s
        self.battery_hours = battery_hours
        self.recharge_hours = recharge_hours
        self.boot_s = boot_s
        self._rng = random.Random(f"pumpwatch:{seed}:rtu:{name}")
        self.battery_soc = 1.0
        self.on_mains = True
        self.alive = True
        self.uptime_s = 0.0
        self.heartbeat = 0
        self.battery_voltage_v = BATTERY_FLOAT_V
        self.boots = 0
        self.died_at: datetime | None = None
        self._tick = 0
        self._boot_at: int | None = None
        self._hb_seconds = 0

    @property
    def now(self) -> datetime:
        return self.start + timedelta(seconds=self._tick * self.substep_s)

    def step(self, now: datetime) -> None:
        target = math.floor((now - self.start).total_seconds() / self.substep_s + 1e-9)
        while self._tick < target:
            self._substep()

    def _substep(self) -> None:
        dt = self.substep_s
        self.on_mains = bool(self.power())
        noise = self._rng.gauss(0.0, 0.01)
        if self.on_mains:
            self.battery_soc = min(1.0, self.battery_soc + dt / (self.recharge_hours * 3600.0))
            self.battery_voltage_v = BATTERY_FLOAT_V + noise
        else:
            self.battery_soc = max(0.0, self.battery_soc - dt / (self.battery_hours * 3600.0))
            self.battery_voltage_v = (
                BATTERY_EMPTY_V + (BATTERY_FULL_V - BATTERY_EMPTY_V) * self.battery_soc + noise
            )
        if self.alive:
            if not self.on_mains and self.battery_soc <= 0.0:
                self.alive = False
                self.uptime_s = 0.0
                self.died_at = self.start + timedelta(seconds=(self._tick + 1) * dt)
        elif self.on_mains:
            if self._boot_at is None:
                self._boot_at = self._tick + math.ceil(self.boot_s / dt - 1e-9)
            if self._tick >= self._boot_at:
                self.alive = True
                self.boots += 1
                self._boot_at = None
        else:
            self._boot_at = None
        if self.alive:
            self.uptime_s += dt
        self._tick += 1
        seconds = math.floor(self._tick * dt + 1e-9)
        if seconds != self._hb_seconds:
            if self.alive:
                self.heartbeat = (self.heartbeat + seconds - self._hb_seconds) % 65536
            self._hb_seconds = seconds

    @property
    def battery_low(self) -> bool:
        return self.battery_voltage_v < BATTERY_LOW_V

    def point_values(self) -> PointValues:
        """The RTU's own status unit (deploy/config/maps/rtu-status.yaml)."""
        return {
            "rtu_battery_voltage_v": self.battery_voltage_v,
            "rtu_on_battery": not self.on_mains,
            "rtu_battery_low": self.battery_low,
            "rtu_uptime_s": int(self.uptime_s),
            "rtu_heartbeat": self.heartbeat,
        }

    def unit_overlay(self) -> PointValues:
        """What every unit behind the RTU reports from the RTU rather than from its station."""
        return {
            "battery_voltage_v": self.battery_voltage_v,
            "battery_low": self.battery_low,
            "heartbeat": self.heartbeat,
        }

    def snapshot(self) -> dict[str, object]:
        return {
            "tick": self._tick,
            "soc": self.battery_soc,
            "alive": self.alive,
            "uptime_s": self.uptime_s,
            "heartbeat": self.heartbeat,
            "boots": self.boots,
        }
