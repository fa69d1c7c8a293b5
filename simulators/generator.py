"""A simulated standby generator: a diesel set that carries a station through a mains failure.

`StandbyGenerator` starts on mains failure after a delay, burns fuel with load, runs a cool-down after mains
returns; a fault or an empty tank stops it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["StandbyGenerator"]


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
