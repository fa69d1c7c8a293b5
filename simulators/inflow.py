"""Sanitary inflow of a catchment (docs/domain.md §1.3): diurnal factor, lognormal noise, average flow.

`DiurnalInflow`: `Q_avg × f(local hour) × lognormal noise`, the noise (mean 1) redrawn every
`noise_period_s`; `Q_avg` from the catchment (population × L/person/day, `catchment_q_avg_m3_min`).
"""

from __future__ import annotations

import math
import random

from pumpwatch.core.config.models import StationConfig

__all__ = ["DIURNAL", "DiurnalInflow", "catchment_q_avg_m3_min", "diurnal_factor", "lognormal"]

# §1.3 hourly multipliers for a residential catchment (hour = start of hour), mean 1.00.
DIURNAL = (
    0.80, 0.65, 0.50, 0.42, 0.43, 0.45, 0.75, 1.30, 1.55, 1.40, 1.25, 1.15,
    1.10, 1.05, 0.95, 0.90, 0.90, 1.00, 1.15, 1.35, 1.40, 1.35, 1.20, 1.00,
)  # fmt: skip
DEFAULT_POPULATION = 375
DEFAULT_PER_CAPITA_L_DAY = 300.0


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
