"""Fleet configuration as data: YAML files validated at start with errors naming file, line and key."""

from pumpwatch.core.config.loader import Fleet, StationPoint, load_fleet
from pumpwatch.core.config.models import (
    ControllerConfig,
    PointSpec,
    RegisterMap,
    StationConfig,
    TenantConfig,
)
from pumpwatch.core.config.yamlsrc import ConfigError

__all__ = [
    "ConfigError",
    "ControllerConfig",
    "Fleet",
    "PointSpec",
    "RegisterMap",
    "StationConfig",
    "StationPoint",
    "TenantConfig",
    "load_fleet",
]
