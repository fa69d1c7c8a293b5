"""Pumps of the simulated stations: pump state, pumps from config, scenario controls, staged control.

- `PumpState`: one pump (flow and current with wear and clog, counters); `pumps_from_config` builds them.
- `PumpControls`: the scenario controls of every station model with pumps (fault, selector, clog).
- `StagedPumpControl`: the multi-pump panel of relay and stormwater stations (docs/domain.md §4.1): one stage
  per duty pump with its own start/stop level (`derive_stages`), starts in round-robin order (so the lead
  rotates every cycle), stops of the longest-running pump first, standby pumps only in place of duty pumps
  that cannot run, never two starts within `stagger_s`.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from pumpwatch.core.config.models import StationConfig

__all__ = ["PumpControls", "PumpState", "StagedPumpControl", "derive_stages", "pumps_from_config"]

CLOG_CURRENT_GAIN = 0.3
CLOG_FLOW_LOSS = 0.4
STAGE_STEP_M = 0.3  # §4.1: P2 at L1 + 0.3 m, P3 at L1 + 0.6 m (est.)
STAGE_HYSTERESIS_M = 0.25  # §4.1: stop 0.2–0.3 m below the stage's start (est.)


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
