"""Hourly inflow profiles (data files next to this module): `load_profile("residential")` → 24 multipliers.

A profile file is YAML with `hours`: 24 positive multipliers, one per local hour (the value at the start of
the hour; consumers interpolate linearly between hours). The values are rescaled to a mean of exactly 1, so
`Q_avg × f(t)` keeps the daily volume of `Q_avg`.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import yaml

__all__ = ["DEFAULT_PROFILE", "PROFILE_DIR", "load_profile", "normalise_profile"]

PROFILE_DIR = Path(__file__).resolve().parent
DEFAULT_PROFILE = "residential"


def normalise_profile(values: object) -> tuple[float, ...]:
    """24 finite positive multipliers scaled to a mean of 1. Raises ValueError otherwise."""
    if isinstance(values, str | bytes) or not hasattr(values, "__iter__"):
        raise ValueError("an inflow profile is a list of 24 numbers")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
            raise ValueError(f"inflow profile values must be finite numbers > 0, not {v!r}")
        out.append(float(v))
    if len(out) != 24:
        raise ValueError(f"an inflow profile has 24 hourly values, not {len(out)}")
    mean = sum(out) / 24
    return tuple(v / mean for v in out)


@lru_cache
def load_profile(name_or_path: str | Path = DEFAULT_PROFILE) -> tuple[float, ...]:
    """A profile by name (a file `<name>.yaml` in this folder) or by path."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = PROFILE_DIR / f"{name_or_path}.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or "hours" not in data:
        raise ValueError(f"{path}: expected a mapping with `hours` (24 values)")
    try:
        return normalise_profile(data["hours"])
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
