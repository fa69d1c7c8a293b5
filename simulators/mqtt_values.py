"""Value sources of the simulated MQTT devices, and their values converted to the metric's type.

Both devices (`JsonPublisher`, `SparkplugEdgeNode`) take their values from callables (a simulated station's
`point_values()`), never from collector code. Wire names are `MetricSpec.wire_name`; values are converted per
`MetricSpec.type` (bool, int rounded, float); a missing, None or non-finite value is sent as null (JSON
`null` with `"q": "bad"`; Sparkplug `is_null`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import datetime

from pumpwatch.core.config.models import MetricMap, MetricSpec, MqttJsonController, SparkplugController

__all__ = ["SampleLog", "Scalar", "Values", "checked_interval", "typed_value"]

Scalar = float | int | bool
Values = Callable[[], Mapping[str, Scalar | None]]
Source = tuple[Values, MetricMap]
# Called once per value put on the wire: (station, point name, value, timestamp) — a checker's log.
SampleLog = Callable[[str, str, Scalar | None, datetime], None]


def typed_value(spec: MetricSpec, value: object) -> Scalar | None:
    """`value` as the metric's type; None when missing or not a finite number."""
    if value is None:
        return None
    if spec.type == "bool":
        return bool(value)
    try:
        f = float(value)  # type: ignore[arg-type]  # any value: what float() refuses is caught below
    except (TypeError, ValueError):
        return None
    if not math.isfinite(f):
        return None
    return round(f) if spec.type == "int" else f


def checked_interval(
    ctrl: MqttJsonController | SparkplugController, sources: Mapping[str, object], interval_s: float | None
) -> float:
    """Every configured station has a value source; the publish interval (default: half the expected)."""
    missing = [s.station for s in ctrl.stations if s.station not in sources]
    if missing:
        raise ValueError(f"no value source for station(s) {', '.join(missing)}")
    interval = interval_s if interval_s is not None else ctrl.expected_interval_s / 2
    if interval <= 0:
        raise ValueError("interval_s must be > 0")
    return interval
