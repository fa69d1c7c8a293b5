"""One factory for every station kind: `make_station(cfg, seed, start, timezone=..., **options)`.

| kind              | model                   | register map        | metric map           |
|-------------------|-------------------------|---------------------|----------------------|
| `manhole_pump`    | `ManholePumpStation`    | mps-canonical[-float] | mps-metrics      |
| `relay_pump`      | `RelayPumpStation`      | relay-canonical     | relay-metrics        |
| `stormwater_pump` | `StormwaterPumpStation` | storm-canonical     | storm-metrics        |
| `treatment_plant` | `TreatmentPlant`        | wwtp-canonical      | wwtp-metrics         |

Every model has the same contract: constructor `(cfg, seed, start, *, timezone, ...)`, `step(now)` (pure,
deterministic, ≤ 1 s sub-steps, independent of how often it is called), `now`, `point_values()`, `snapshot()`,
`mains_ok` / `set_mains(ok)`, `site_power_ok`, `heartbeat`, and its own scenario setters.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from datetime import datetime, tzinfo
from typing import Any

from pumpwatch.core.config.models import StationConfig
from pumpwatch.simulators.manhole import ManholePumpStation
from pumpwatch.simulators.plant import TreatmentPlant
from pumpwatch.simulators.relay import RelayPumpStation
from pumpwatch.simulators.station_model import StationModel
from pumpwatch.simulators.stormwater import StormwaterPumpStation

__all__ = ["MODELS", "accepted_options", "make_station", "options_for"]

MODELS: dict[str, type[StationModel]] = {
    "manhole_pump": ManholePumpStation,
    "relay_pump": RelayPumpStation,
    "stormwater_pump": StormwaterPumpStation,
    "treatment_plant": TreatmentPlant,
}


def accepted_options(kind: str) -> frozenset[str]:
    """Keyword options the model of `kind` takes (besides cfg, seed, start and timezone)."""
    params = inspect.signature(MODELS[kind].__init__).parameters
    return frozenset(name for name, p in params.items() if p.kind is p.KEYWORD_ONLY and name != "timezone")


def options_for(kind: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The subset of `options` that the model of `kind` takes (options common to several kinds)."""
    accepted = accepted_options(kind)
    return {k: v for k, v in options.items() if k in accepted}


def make_station(
    cfg: StationConfig,
    seed: int,
    start: datetime,
    *,
    timezone: str | tzinfo = "Asia/Tokyo",
    **options: Any,
) -> StationModel:
    """The model for `cfg.kind`. Unknown options raise TypeError (use `options_for` to filter)."""
    try:
        model = MODELS[cfg.kind]
    except KeyError:
        raise ValueError(f"station {cfg.id}: no simulator for kind {cfg.kind!r}") from None
    return model(cfg, seed, start, timezone=timezone, **options)
