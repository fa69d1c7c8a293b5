"""Register maps → read plans and decoders, built once at start; the poll loop does nothing clever.

A `ReadPlan` groups a unit's points into contiguous blocks per table (at most 125 registers or 2000 bits,
joining neighbours across at most `max_gap` unused addresses). Each point gets a decoder closure chosen
once for its type, word order, scale and limits.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pumpwatch.core.config.models import BIT_TABLES, MAX_READ, PointSpec, RegisterMap
from pumpwatch.core.sample import Quality

Decoded = tuple[float | None, Quality]
Decoder = Callable[[Sequence[int], int], Decoded]  # (block words or bits, offset in block) -> value, quality

_F32 = struct.Struct(">f")

FUNCTION_CODE = {"coil": 1, "discrete_input": 2, "holding_register": 3, "input_register": 4}


def _swap_bytes(w: int) -> int:
    return ((w & 0xFF) << 8) | (w >> 8)


def words_to_u32(w0: int, w1: int, order: str) -> int:
    """Two wire-order registers → the 32-bit value whose big-endian bytes are A B C D."""
    if order == "ABCD":
        hi, lo = w0, w1
    elif order == "CDAB":
        hi, lo = w1, w0
    elif order == "BADC":
        hi, lo = _swap_bytes(w0), _swap_bytes(w1)
    elif order == "DCBA":
        hi, lo = _swap_bytes(w1), _swap_bytes(w0)
    else:  # pragma: no cover - config validation rejects it
        raise ValueError(f"unknown word order {order!r}")
    return (hi << 16) | lo


def _raw_reader(spec: PointSpec, order: str) -> Callable[[Sequence[int], int], tuple[int, float]]:
    """Returns f(words, offset) -> (raw unsigned word(s) for the n/a check, numeric value before scaling)."""
    t = spec.type
    # `invert`: the device's 1 is our false (a `mains_ok` bit read as `mains_failed`); the raw word stays
    # as read, so `not_available` compares with what is on the wire.
    on, off = (0.0, 1.0) if spec.invert else (1.0, 0.0)
    if spec.table in BIT_TABLES:
        return lambda words, i: (int(words[i]), on if words[i] else off)
    if spec.bit is not None:
        mask = 1 << spec.bit
        return lambda words, i: (words[i], on if words[i] & mask else off)
    if t == "uint16":
        return lambda words, i: (words[i], float(words[i]))
    if t == "int16":
        return lambda words, i: (words[i], float(words[i] - 0x10000 if words[i] & 0x8000 else words[i]))
    if t == "uint32":

        def u32(words: Sequence[int], i: int) -> tuple[int, float]:
            u = words_to_u32(words[i], words[i + 1], order)
            return u, float(u)

        return u32
    if t == "int32":

        def i32(words: Sequence[int], i: int) -> tuple[int, float]:
            u = words_to_u32(words[i], words[i + 1], order)
            return u, float(u - 0x1_0000_0000 if u & 0x8000_0000 else u)

        return i32
    if t == "float32":

        def f32(words: Sequence[int], i: int) -> tuple[int, float]:
            u = words_to_u32(words[i], words[i + 1], order)
            x = _F32.unpack(u.to_bytes(4, "big"))[0]
            # a float32 carries ~7 significant digits; more is noise from widening to float64
            return u, float(f"{x:.7g}") if math.isfinite(x) else x

        return f32
    raise ValueError(f"no decoder for type {t!r}")  # pragma: no cover - validated in config


def make_decoder(spec: PointSpec, word_order: str) -> Decoder:
    raw_of = _raw_reader(spec, word_order)
    scale, offset, na = spec.scale, spec.offset, spec.not_available
    lo, hi = spec.valid_min, spec.valid_max
    state = spec.is_state
    scaled = scale != 1 or offset != 0

    def decode(words: Sequence[int], i: int) -> Decoded:
        raw, x = raw_of(words, i)
        if na is not None and raw == na:
            return None, Quality.NOT_AVAILABLE
        if state:
            return x, Quality.GOOD
        if not math.isfinite(x):
            return None, Quality.BAD_VALUE
        if scaled:
            # rounding drops float noise: 123 × 0.01 reads 1.23, not 1.2300000000000002
            x = round(x * scale + offset, 9)
        if (lo is not None and x < lo) or (hi is not None and x > hi):
            return x, Quality.BAD_VALUE
        return x, Quality.GOOD

    return decode


@dataclass(frozen=True, slots=True)
class BoundPoint:
    name: str
    offset: int  # index into the block's words (or bits)
    width: int
    decode: Decoder


@dataclass(frozen=True, slots=True)
class Block:
    table: str
    start: int  # wire address
    count: int
    points: tuple[BoundPoint, ...]

    @property
    def function_code(self) -> int:
        return FUNCTION_CODE[self.table]


@dataclass(frozen=True, slots=True)
class ReadPlan:
    blocks: tuple[Block, ...]

    @property
    def point_names(self) -> tuple[str, ...]:
        return tuple(p.name for b in self.blocks for p in b.points)


_TABLE_ORDER = ("discrete_input", "coil", "input_register", "holding_register")


def build_read_plan(rm: RegisterMap, *, max_registers: int | None = None) -> ReadPlan:
    """Contiguous blocks per table, each within the Modbus limit (or a device's lower `max_registers`)."""
    blocks: list[Block] = []
    for table in _TABLE_ORDER:
        specs = sorted((p for p in rm.points if p.table == table), key=rm.wire_address)
        if not specs:
            continue
        limit = min(MAX_READ[table], max_registers or MAX_READ[table])
        group: list[PointSpec] = []
        start = end = 0
        for spec in specs:
            a = rm.wire_address(spec)
            a_end = a + spec.width
            if group and (a - end <= rm.max_gap and max(end, a_end) - start <= limit):
                group.append(spec)
                end = max(end, a_end)
                continue
            if group:
                blocks.append(_block(rm, table, start, end, group))
            group, start, end = [spec], a, a_end
        blocks.append(_block(rm, table, start, end, group))
    return ReadPlan(tuple(blocks))


def _block(rm: RegisterMap, table: str, start: int, end: int, specs: list[PointSpec]) -> Block:
    return Block(
        table=table,
        start=start,
        count=end - start,
        points=tuple(
            BoundPoint(
                name=s.name,
                offset=rm.wire_address(s) - start,
                width=s.width,
                decode=make_decoder(s, rm.point_word_order(s)),
            )
            for s in specs
        ),
    )
