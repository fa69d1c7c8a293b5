"""Decoders against hand-computed register words (docs/domain.md §2.3), not against our own encoder."""

from __future__ import annotations

import math
import struct

import pytest
from pymodbus.client import AsyncModbusTcpClient

from pumpwatch.collector.registers import make_decoder, words_to_u32
from pumpwatch.core.config.models import PointSpec
from pumpwatch.core.sample import Quality


def spec(**kw) -> PointSpec:
    base = {"name": "x", "table": "input_register", "address": 0}
    return PointSpec.model_validate({**base, **kw})


GOLDEN = [
    # (type, word order, scale, words as they arrive on the wire, expected value)
    ("float32", "ABCD", 1, [0x47F1, 0x2000], 123456.0),
    ("float32", "CDAB", 1, [0x2000, 0x47F1], 123456.0),
    ("float32", "BADC", 1, [0xF147, 0x0020], 123456.0),
    ("float32", "DCBA", 1, [0x0020, 0xF147], 123456.0),
    ("float32", "ABCD", 1, [0x40A0, 0x0000], 5.0),
    ("float32", "ABCD", 1, [0xC0A0, 0x0000], -5.0),
    ("float32", "ABCD", 1, [0x3F9D, 0x70A4], 1.23),
    ("int16", "ABCD", 0.01, [123], 1.23),
    ("int16", "ABCD", 0.01, [0xFFFB], -0.05),
    ("int16", "ABCD", 1, [0xFFFF], -1.0),
    ("int16", "ABCD", 1, [0x8000], -32768.0),
    ("uint16", "ABCD", 1, [0xFFFF], 65535.0),
    ("uint16", "ABCD", 0.1, [1015], 101.5),
    ("uint32", "ABCD", 1, [0x0001, 0x1170], 70000.0),
    ("uint32", "CDAB", 1, [0x1170, 0x0001], 70000.0),
    ("uint32", "ABCD", 1, [0xFFFF, 0xFFFF], 4294967295.0),
    ("int32", "ABCD", 1, [0xFFFF, 0xFFFE], -2.0),
    ("int32", "CDAB", 1, [0xFFFE, 0xFFFF], -2.0),
    ("int32", "ABCD", 0.001, [0x0001, 0xE240], 123.456),
]


@pytest.mark.parametrize(("typ", "order", "scale", "words", "expected"), GOLDEN)
def test_golden_vectors(typ, order, scale, words, expected) -> None:
    dec = make_decoder(spec(type=typ, scale=scale), order)
    # the value sits at offset 2 of a block, behind two unrelated words
    value, quality = dec([0xDEAD, 0xBEEF, *words, 0x1234], 2)
    assert quality is Quality.GOOD
    assert value == pytest.approx(expected, rel=1e-7)


def test_scaled_values_have_no_float_noise() -> None:
    value, _ = make_decoder(spec(type="int16", scale=0.01), "ABCD")([123], 0)
    assert repr(value) == "1.23"
    value, _ = make_decoder(spec(type="int16", scale=0.1), "ABCD")([51], 0)
    assert repr(value) == "5.1"


@pytest.mark.parametrize("order", ["ABCD", "CDAB"])
@pytest.mark.parametrize("x", [0.0, 1.5, -273.15, 3.4e38, 1e-30, 123456.0])
def test_float32_agrees_with_pymodbus(order: str, x: float) -> None:
    hi, lo = struct.unpack(">HH", struct.pack(">f", x))
    words = [hi, lo] if order == "ABCD" else [lo, hi]
    ours, q = make_decoder(spec(type="float32"), order)(words, 0)
    theirs = AsyncModbusTcpClient.convert_from_registers(
        words,
        data_type=AsyncModbusTcpClient.DATATYPE.FLOAT32,
        word_order="big" if order == "ABCD" else "little",
    )
    assert q is Quality.GOOD
    assert ours == pytest.approx(theirs, rel=1e-7)  # ours is rounded to float32 precision


@pytest.mark.parametrize("order", ["ABCD", "CDAB"])
def test_uint32_and_int32_agree_with_pymodbus(order: str) -> None:
    dt = AsyncModbusTcpClient.DATATYPE
    wo = "big" if order == "ABCD" else "little"
    for words in ([0, 0], [0x0001, 0x1170], [0xFFFF, 0x0000], [0x8000, 0x0001], [0x1234, 0xABCD]):
        for typ, pdt in (("uint32", dt.UINT32), ("int32", dt.INT32)):
            ours, _ = make_decoder(spec(type=typ), order)(words, 0)
            assert ours == AsyncModbusTcpClient.convert_from_registers(words, data_type=pdt, word_order=wo)


def test_word_order_helper() -> None:
    assert words_to_u32(0x1122, 0x3344, "ABCD") == 0x11223344
    assert words_to_u32(0x3344, 0x1122, "CDAB") == 0x11223344
    assert words_to_u32(0x2211, 0x4433, "BADC") == 0x11223344
    assert words_to_u32(0x4433, 0x2211, "DCBA") == 0x11223344


def test_not_available_marker() -> None:
    dec = make_decoder(spec(type="uint16", scale=0.01, not_available=0xFFFF), "ABCD")
    assert dec([0xFFFF], 0) == (None, Quality.NOT_AVAILABLE)
    assert dec([0xFFFE], 0) == (655.34, Quality.GOOD)
    dec32 = make_decoder(spec(type="uint32", not_available=0xFFFFFFFF), "ABCD")
    assert dec32([0xFFFF, 0xFFFF], 0) == (None, Quality.NOT_AVAILABLE)


def test_out_of_range_is_bad_value_but_kept() -> None:
    dec = make_decoder(spec(type="int16", scale=0.01, valid_min=-0.5, valid_max=10), "ABCD")
    assert dec([1001], 0) == (10.01, Quality.BAD_VALUE)
    assert dec([1000], 0) == (10.0, Quality.GOOD)


def test_nan_and_infinity_are_bad() -> None:
    dec = make_decoder(spec(type="float32"), "ABCD")
    assert dec([0x7FC0, 0x0000], 0) == (None, Quality.BAD_VALUE)  # NaN
    assert dec([0x7F80, 0x0000], 0) == (None, Quality.BAD_VALUE)  # +inf
    assert math.isfinite(dec([0x7F7F, 0xFFFF], 0)[0])  # largest finite float32


def test_bits() -> None:
    bitpoint = make_decoder(spec(type="bool", bit=4), "ABCD")
    assert bitpoint([0x0010], 0) == (1.0, Quality.GOOD)
    assert bitpoint([0xFFEF], 0) == (0.0, Quality.GOOD)
    di = make_decoder(spec(table="discrete_input", type="bool"), "ABCD")
    assert di([False, True], 1) == (1.0, Quality.GOOD)
    assert di([False, True], 0) == (0.0, Quality.GOOD)


def test_inverted_bits_read_the_other_way_round() -> None:
    """`invert: true`: a device's mains_ok (1 = mains present) is our mains_failed (1 = mains lost)."""
    bitpoint = make_decoder(spec(type="bool", bit=4, invert=True), "ABCD")
    assert bitpoint([0x0010], 0) == (0.0, Quality.GOOD)
    assert bitpoint([0xFFEF], 0) == (1.0, Quality.GOOD)
    di = make_decoder(spec(table="discrete_input", type="bool", invert=True), "ABCD")
    assert di([False, True], 1) == (0.0, Quality.GOOD)
    assert di([False, True], 0) == (1.0, Quality.GOOD)
    coil = make_decoder(spec(table="coil", type="bool", invert=True), "ABCD")
    assert coil([1], 0) == (0.0, Quality.GOOD)
    # the "no value" word is compared as it is on the wire, before inverting
    na = make_decoder(spec(type="bool", bit=0, invert=True, not_available=0xFFFF), "ABCD")
    assert na([0xFFFF], 0) == (None, Quality.NOT_AVAILABLE)
    assert na([0x0000], 0) == (1.0, Quality.GOOD)
