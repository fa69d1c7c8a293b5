"""Encode point values into Modbus words per a `RegisterMap` (the map is data; see deploy/config/maps).

Deliberately written from the Modbus conventions (docs/domain.md §2.3) with `struct`, independent from the
collector's decoder, so a bug cannot hide by being symmetric on both sides.

- Scaling: `raw = round((value − offset) / scale)`; float32 keeps the unrounded quotient.
- int16/uint16 take one register, int32/uint32/float32 two. Integers out of the type's range are clamped.
- 32-bit word orders, with the value's big-endian bytes A B C D: ABCD → [AB, CD] (high word first),
  CDAB → [CD, AB] (low word first), BADC → [BA, DC], DCBA → [DC, BA].
- A point with `bit` sets one bit (0 = least significant) of a 16-bit register; several such points may share
  a register. `bool` points of the coil / discrete_input tables are single bits. `invert: true` writes the
  opposite bit (the device reports `mains_ok` where the point is `mains_failed`).
- A missing value (None, or NaN for an integer type) encodes as the point's `not_available` raw value when it
  has one; otherwise the point is left out.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping

from pumpwatch.core.config.models import BIT_TABLES, PointSpec, RegisterMap

__all__ = [
    "TABLES",
    "EncodedTables",
    "PointValue",
    "encode_point",
    "encode_points",
    "pack_bits",
    "table_sizes",
]

TABLES = ("coil", "discrete_input", "holding_register", "input_register")
PointValue = float | int | bool | None
EncodedTables = dict[str, dict[int, int]]  # table -> wire address -> 16-bit word (bit tables: 0/1)

_INT_RANGE = {
    "int16": (-0x8000, 0x7FFF),
    "uint16": (0, 0xFFFF),
    "int32": (-0x8000_0000, 0x7FFF_FFFF),
    "uint32": (0, 0xFFFF_FFFF),
}
_STRUCT = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "float32": ">f"}
_FLOAT32_MAX = 3.4028234663852886e38


def _order_words(data: bytes, word_order: str) -> list[int]:
    """Four big-endian bytes (A B C D) to two registers in the given word order."""
    a, b, c, d = data
    order = {
        "ABCD": ((a, b), (c, d)),
        "CDAB": ((c, d), (a, b)),
        "BADC": ((b, a), (d, c)),
        "DCBA": ((d, c), (b, a)),
    }[word_order]
    return [hi << 8 | lo for hi, lo in order]


def _not_available_words(spec: PointSpec, word_order: str) -> list[int] | None:
    if spec.not_available is None:
        return None
    if spec.width == 1:
        return [spec.not_available & 0xFFFF]
    return _order_words(struct.pack(">I", spec.not_available & 0xFFFF_FFFF), word_order)


def encode_point(spec: PointSpec, value: PointValue, word_order: str = "ABCD") -> list[int] | None:
    """Words for one register point (not for bit points). None: nothing to write (value missing)."""
    if spec.is_state or spec.table in BIT_TABLES:
        raise ValueError(f"{spec.name} is a bit, not a register value")
    if value is None or (isinstance(value, float) and math.isnan(value) and spec.type != "float32"):
        return _not_available_words(spec, word_order)
    scaled = (float(value) - spec.offset) / spec.scale
    if spec.type == "float32":
        if math.isfinite(scaled):
            scaled = min(max(scaled, -_FLOAT32_MAX), _FLOAT32_MAX)
        data = struct.pack(">f", scaled)
    else:
        lo, hi = _INT_RANGE[spec.type]
        raw = lo if scaled == -math.inf else hi if scaled == math.inf else round(scaled)
        data = struct.pack(_STRUCT[spec.type], min(max(raw, lo), hi))
    if len(data) == 2:
        return [data[0] << 8 | data[1]]
    return _order_words(data, word_order)


def encode_points(register_map: RegisterMap, values: Mapping[str, PointValue]) -> EncodedTables:
    """Per table, wire address → word (register tables) or 0/1 (bit tables), for the points in `values`."""
    out: EncodedTables = {t: {} for t in TABLES}
    for spec in register_map.points:
        if spec.name not in values:
            continue
        value = values[spec.name]
        table = out[spec.table]
        addr = register_map.wire_address(spec)
        if spec.table in BIT_TABLES:
            if value is not None:
                table[addr] = 1 if bool(value) != spec.invert else 0
            continue
        if spec.bit is not None:
            if value is None:
                continue
            mask = 1 << spec.bit
            word = table.get(addr, 0) & ~mask
            table[addr] = word | mask if bool(value) != spec.invert else word
            continue
        words = encode_point(spec, value, register_map.point_word_order(spec))
        if words is not None:
            for i, w in enumerate(words):
                table[addr + i] = w
    return out


def table_sizes(register_map: RegisterMap) -> dict[str, int]:
    """Per table, one past the highest wire address the map uses (0: table unused)."""
    sizes = dict.fromkeys(TABLES, 0)
    for spec in register_map.points:
        end = register_map.wire_address(spec) + spec.width
        sizes[spec.table] = max(sizes[spec.table], end)
    return sizes


def pack_bits(bits: Mapping[int, int], n_words: int) -> list[int]:
    """Bit address → 0/1 packed into 16-bit words, bit 0 of word 0 = address 0 (LSB first)."""
    words = [0] * n_words
    for addr, bit in bits.items():
        if bit and addr < n_words * 16:
            words[addr // 16] |= 1 << (addr % 16)
    return words
