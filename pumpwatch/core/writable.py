"""What may be written to the field, and how a value becomes the word written (and back).

A rule of the fleet's configuration, not of the collector: the API checks a request against it before it
asks for the confirmation (api/routes/field_writes.py), also in a process that runs no collector; the
collector's `FieldWriter` (collector/field_write.py) checks it again and does the Modbus write. Only for a
station with `write_enabled: true`, only a holding register holding a 16-bit value (int16/uint16, no bit
field) or a coil.
"""

from __future__ import annotations

import math

from pumpwatch.core.config import Fleet
from pumpwatch.core.config.models import PointSpec


class WriteError(Exception):
    """The write cannot be done (`status` 409: not writable; 502: the device failed or read back wrong)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def writable_spec(fleet: Fleet, station: str, point: str) -> PointSpec:
    st = fleet.stations.get(station)
    sp = fleet.points.get(station, {}).get(point)
    if st is None or sp is None:
        raise WriteError(404, "not found")
    if not st.write_enabled:
        raise WriteError(409, f"writes are not enabled for {station} (write_enabled in its configuration)")
    spec = sp.spec
    if not isinstance(spec, PointSpec) or sp.unit_id is None:
        raise WriteError(409, f"{point} is not a Modbus point")
    if spec.table == "coil" or (
        spec.table == "holding_register" and spec.type in ("int16", "uint16") and spec.bit is None
    ):
        return spec
    raise WriteError(409, f"{point} is not a writable holding register or coil")


def to_raw(spec: PointSpec, value: float) -> int:
    if spec.table == "coil":
        return 1 if bool(value) != spec.invert else 0
    raw = (value - spec.offset) / spec.scale
    if not math.isfinite(raw):
        raise WriteError(422, "value must be a finite number")
    raw = round(raw)
    lo, hi = (-32768, 32767) if spec.type == "int16" else (0, 65535)
    if not lo <= raw <= hi:
        raise WriteError(422, f"value out of range for {spec.type}")
    if (
        spec.valid_min is not None
        and value < spec.valid_min
        or spec.valid_max is not None
        and value > spec.valid_max
    ):
        raise WriteError(422, f"value outside {spec.valid_min}..{spec.valid_max}")
    return raw & 0xFFFF


def from_raw(spec: PointSpec, raw: int) -> float:
    if spec.table == "coil":
        return 1.0 if bool(raw) != spec.invert else 0.0
    if spec.type == "int16" and raw >= 0x8000:
        raw -= 0x10000
    return raw * spec.scale + spec.offset
