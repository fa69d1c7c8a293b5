from __future__ import annotations

import math

import pytest
from pymodbus.client.mixin import ModbusClientMixin

from pumpwatch.core.config.models import PointSpec, RegisterMap
from pumpwatch.simulators.registers import encode_point, encode_points, pack_bits, table_sizes
from tests.simulators import demo_fleet


def reg(type_: str, **kw) -> PointSpec:
    return PointSpec(name="x", table="input_register", address=0, type=type_, **kw)


# --- golden words from docs/domain.md §2.3 (hand-computed) ------------------------------------------------


@pytest.mark.parametrize(
    ("value", "order", "words"),
    [
        (123456.0, "ABCD", [0x47F1, 0x2000]),
        (123456.0, "CDAB", [0x2000, 0x47F1]),
        (123456.0, "BADC", [0xF147, 0x0020]),
        (123456.0, "DCBA", [0x0020, 0xF147]),
        (5.0, "ABCD", [0x40A0, 0x0000]),
        (-5.0, "ABCD", [0xC0A0, 0x0000]),
        (1.23, "ABCD", [0x3F9D, 0x70A4]),
        (1.23, "CDAB", [0x70A4, 0x3F9D]),
    ],
)
def test_float32_golden(value: float, order: str, words: list[int]):
    assert encode_point(reg("float32"), value, order) == words


def test_scaled_int16_golden():
    level = reg("int16", scale=0.01)
    assert encode_point(level, 1.23) == [123]
    assert encode_point(level, -0.05) == [0xFFFB]
    assert encode_point(level, 0.0) == [0]


@pytest.mark.parametrize(
    ("value", "order", "words"),
    [
        (70000, "ABCD", [0x0001, 0x1170]),
        (70000, "CDAB", [0x1170, 0x0001]),
        (70000, "BADC", [0x0100, 0x7011]),
        (70000, "DCBA", [0x7011, 0x0100]),
    ],
)
def test_uint32_golden(value: int, order: str, words: list[int]):
    assert encode_point(reg("uint32"), value, order) == words


def test_int32_and_uint16():
    assert encode_point(reg("int32"), -2) == [0xFFFF, 0xFFFE]
    assert encode_point(reg("uint16"), 65535) == [0xFFFF]
    assert encode_point(reg("uint16", scale=0.01), 13.6) == [1360]


def test_scale_and_offset():
    # raw = round((value − offset) / scale): −10..+40 °C as 0.1 with offset −10
    p = reg("uint16", scale=0.1, offset=-10)
    assert encode_point(p, 25.3) == [353]
    assert encode_point(p, -10) == [0]


def test_out_of_range_is_clamped():
    assert encode_point(reg("int16", scale=0.01), 1000.0) == [0x7FFF]
    assert encode_point(reg("int16", scale=0.01), -1000.0) == [0x8000]
    assert encode_point(reg("uint16"), -3) == [0]
    assert encode_point(reg("uint16"), 70000) == [0xFFFF]
    assert encode_point(reg("uint32"), 2**40) == [0xFFFF, 0xFFFF]
    assert encode_point(reg("int32"), -(2**40)) == [0x8000, 0x0000]
    assert encode_point(reg("uint16"), math.inf) == [0xFFFF]
    assert encode_point(reg("float32"), 1e60) == [0x7F7F, 0xFFFF]  # largest finite float32


def test_missing_values():
    assert encode_point(reg("int16"), None) is None
    assert encode_point(reg("int16", not_available=0xFFFF), None) == [0xFFFF]
    assert encode_point(reg("uint32", not_available=0xFFFFFFFF), math.nan, "CDAB") == [0xFFFF, 0xFFFF]
    assert encode_point(reg("uint32", not_available=0x0001FFFF), None, "CDAB") == [0xFFFF, 0x0001]
    nan_words = encode_point(reg("float32"), math.nan)
    assert nan_words[0] & 0x7F80 == 0x7F80  # a NaN stays a NaN in a float register


def test_bit_points_are_refused_by_encode_point():
    with pytest.raises(ValueError):
        encode_point(PointSpec(name="b", table="discrete_input", address=0, type="bool"), True)


@pytest.mark.parametrize("order", ["ABCD", "CDAB"])
@pytest.mark.parametrize("value", [0.0, 1.5, -273.15, 3.3e-5, 123456.0, 6.02e23])
def test_float32_agrees_with_pymodbus(value: float, order: str):
    """A third-party oracle: pymodbus's own converter (big = ABCD; little reverses the two words = CDAB)."""
    words = encode_point(reg("float32"), value, order)
    back = ModbusClientMixin.convert_from_registers(
        words, ModbusClientMixin.DATATYPE.FLOAT32, word_order="big" if order == "ABCD" else "little"
    )
    assert back == pytest.approx(value, rel=1e-6)


def test_encode_points_by_table_and_bits_sharing_a_register():
    rmap = RegisterMap(
        name="t",
        address_base=1,
        word_order="CDAB",
        points=[
            PointSpec(name="mains_failed", table="discrete_input", address=1, type="bool"),
            PointSpec(name="pump1_running", table="discrete_input", address=3, type="bool"),
            PointSpec(name="level", table="holding_register", address=1, type="int16", scale=0.01),
            PointSpec(name="hours", table="holding_register", address=2, type="uint32"),
            PointSpec(
                name="hours_abcd", table="holding_register", address=4, type="uint32", word_order="ABCD"
            ),
            PointSpec(name="dry_run", table="input_register", address=10, type="bool", bit=4),
            PointSpec(name="high_water", table="input_register", address=10, type="bool", bit=15),
            PointSpec(name="p1_err", table="input_register", address=10, type="bool", bit=5),
            PointSpec(name="remote", table="coil", address=9, type="bool"),
        ],
    )
    enc = encode_points(
        rmap,
        {
            "mains_failed": True,
            "pump1_running": False,
            "level": 1.23,
            "hours": 70000,
            "hours_abcd": 70000,
            "dry_run": True,
            "high_water": 1,
            "p1_err": False,
            "remote": True,
            "not_in_map": 5,
        },
    )
    # address_base 1: documentation numbers minus one are the wire addresses
    assert enc["discrete_input"] == {0: 1, 2: 0}
    assert enc["holding_register"] == {0: 123, 1: 0x1170, 2: 0x0001, 3: 0x0001, 4: 0x1170}
    assert enc["input_register"] == {9: (1 << 4) | (1 << 15)}
    assert enc["coil"] == {8: 1}
    assert table_sizes(rmap) == {"coil": 9, "discrete_input": 3, "holding_register": 5, "input_register": 10}
    # a value left out is simply not encoded
    assert encode_points(rmap, {"level": 0.5})["holding_register"] == {0: 50}


def test_canonical_map_sizes_and_counters():
    maps = demo_fleet().register_maps
    assert table_sizes(maps["mps-canonical"]) == {
        "coil": 0,
        "discrete_input": 16,
        "holding_register": 5,
        "input_register": 15,
    }
    assert table_sizes(maps["mps-canonical-float"])["input_register"] == 108
    enc = encode_points(maps["mps-canonical"], {"pump1_starts": 324625, "wet_well_level_m": 0.995})
    assert enc["input_register"] == {8: 0x0004, 9: 0xF411, 0: 100}  # 324625 = 0x0004F411, ABCD


def test_pack_bits_lsb_first():
    assert pack_bits({0: 1, 15: 1, 16: 1, 33: 0}, 3) == [0x8001, 0x0001, 0]
    assert pack_bits({40: 1}, 2) == [0, 0]  # beyond the block: dropped
