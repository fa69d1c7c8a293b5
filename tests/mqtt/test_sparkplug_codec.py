"""The Sparkplug B codec: topics, payload round trips, session-message shapes, and hostile input.

Cross-checks use Eclipse Tahu's own Python helper (`tahutils.tahu.sparkplug_b.addMetric`) and raw protobuf
messages as independent encoders, so a mistake cannot hide by being symmetric in encode and decode."""

from __future__ import annotations

import math

import pytest
from tahutils.tahu import sparkplug_b as tahu
from tahutils.tahu import sparkplug_b_pb2 as pb

from pumpwatch.protocols import sparkplug as spb
from pumpwatch.protocols.sparkplug import Metric, Payload, SparkplugError, Topic

# --- topics --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("spBv1.0/sewer/NBIRTH/rtu-7", Topic("sewer", "NBIRTH", "rtu-7")),
        ("spBv1.0/sewer/NDEATH/rtu-7", Topic("sewer", "NDEATH", "rtu-7")),
        ("spBv1.0/sewer/NDATA/rtu-7", Topic("sewer", "NDATA", "rtu-7")),
        ("spBv1.0/sewer/NCMD/rtu-7", Topic("sewer", "NCMD", "rtu-7")),
        ("spBv1.0/sewer/DBIRTH/rtu-7/PS-01", Topic("sewer", "DBIRTH", "rtu-7", "PS-01")),
        ("spBv1.0/sewer/DDATA/rtu-7/PS-01", Topic("sewer", "DDATA", "rtu-7", "PS-01")),
        ("spBv1.0/sewer/DDEATH/rtu-7/PS-01", Topic("sewer", "DDEATH", "rtu-7", "PS-01")),
        ("spBv1.0/sewer/DCMD/rtu-7/PS-01", Topic("sewer", "DCMD", "rtu-7", "PS-01")),
        ("spBv1.0/STATE/pumpwatch", Topic.state("pumpwatch")),
    ],
)
def test_topic_parse_and_format(text: str, expected: Topic) -> None:
    topic = Topic.parse(text)
    assert topic == expected
    assert str(topic) == text


def test_topic_accessors() -> None:
    assert Topic.parse("spBv1.0/STATE/host-1").host_id == "host-1"
    assert Topic.parse("spBv1.0/g/NDATA/e").host_id is None
    assert Topic.parse("spBv1.0/g/DDATA/e/d").is_device
    assert not Topic.parse("spBv1.0/g/NDATA/e").is_device


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("spAv1.0/g/NDATA/e", "namespace"),
        ("scada/v1/PS-01/level", "namespace"),
        ("", "namespace"),
        ("spBv1.0/g/NDATA", "levels"),
        ("spBv1.0/g", "levels"),
        ("spBv1.0", "levels"),
        ("spBv1.0/g/NDATA/e/d/extra", "levels"),
        ("spBv1.0/g/NFOO/e", "unknown message type"),
        ("spBv1.0/g/ndata/e", "unknown message type"),
        ("spBv1.0/g/NDATA/e/d", "node message"),
        ("spBv1.0/g/DDATA/e", "device_id"),
        ("spBv1.0//NDATA/e", "group_id is empty"),
        ("spBv1.0/g/NDATA/", "edge_node_id is empty"),
        ("spBv1.0/g/DDATA/e/", "device_id is empty"),
        ("spBv1.0/g/NDATA/+", "contains +"),
        ("spBv1.0/#/NDATA/e", "contains #"),
        ("spBv1.0/STATE/", "host id is empty"),
    ],
)
def test_malformed_topics_are_rejected_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(SparkplugError, match=reason):
        Topic.parse(text)


def test_topic_validates_itself() -> None:
    with pytest.raises(SparkplugError, match="unknown message type"):
        Topic("g", "NOPE", "e")
    with pytest.raises(SparkplugError, match="needs a device_id"):
        Topic("g", "DBIRTH", "e")
    with pytest.raises(SparkplugError, match="contains /"):
        Topic("g/h", "NDATA", "e")


# --- round trips ---------------------------------------------------------------------------------------

ALL_SCALARS = Payload(
    timestamp_ms=1_782_864_000_123,
    seq=17,
    metrics=(
        Metric("i8", -128, spb.INT8),
        Metric("i16", -300, spb.INT16),
        Metric("i32", -5, spb.INT32),
        Metric("i64", -(2**63), spb.INT64),
        Metric("u8", 255, spb.UINT8),
        Metric("u16", 65535, spb.UINT16),
        Metric("u32", 2**32 - 1, spb.UINT32),
        Metric("u64", 2**64 - 1, spb.UINT64),
        Metric("f32", 1.5, spb.FLOAT),
        Metric("f64", 3.141592653589793, spb.DOUBLE),
        Metric("bool", True, spb.BOOLEAN),
        Metric("str", "満水 high water", spb.STRING),
        Metric("text", "long text", spb.TEXT),
        Metric("uuid", "0c8e3a4c-13cf-4c1f-9d5b-4c0f6d7f1b2a", spb.UUID),
        Metric("dt", 1_782_864_000_000, spb.DATETIME),
        Metric("null_level", None, spb.DOUBLE, is_null=True),
        Metric("with_alias", 2.5, spb.DOUBLE, alias=42, timestamp_ms=1_782_864_000_000),
        Metric("backfill", 0.25, spb.DOUBLE, is_historical=True, is_transient=True),
    ),
)


def test_round_trip_every_scalar_datatype() -> None:
    assert spb.decode(spb.encode(ALL_SCALARS)) == ALL_SCALARS


def test_signed_int32_minus_five_round_trips_and_is_twos_complement_on_the_wire() -> None:
    p = Payload(1, 1, (Metric("delta", -5, spb.INT32),))
    data = spb.encode(p)
    raw = pb.Payload()
    raw.ParseFromString(data)
    assert raw.metrics[0].int_value == 2**32 - 5
    assert spb.decode(data).metrics[0].value == -5


def test_decodes_what_tahus_python_helper_encodes() -> None:
    raw = pb.Payload()
    raw.timestamp = 1000
    raw.seq = 3
    tahu.addMetric(raw, "i8", None, tahu.MetricDataType.Int8, -1, 1000)  # Tahu Python: 8-bit wrap (255)
    tahu.addMetric(raw, "i16", None, tahu.MetricDataType.Int16, -2, 1000)
    tahu.addMetric(raw, "i32", None, tahu.MetricDataType.Int32, -5, 1000)
    tahu.addMetric(raw, "i64", None, tahu.MetricDataType.Int64, -7, 1000)
    tahu.addMetric(raw, "level", 9, tahu.MetricDataType.Double, 2.75, 1000)
    tahu.addMetric(raw, "running", None, tahu.MetricDataType.Boolean, True, 1000)
    tahu.addMetric(raw, "name", None, tahu.MetricDataType.String, "PS-01", 1000)
    p = spb.decode(raw.SerializeToString())
    assert p.timestamp_ms == 1000 and p.seq == 3
    assert [(m.name, m.value) for m in p.metrics] == [
        ("i8", -1),
        ("i16", -2),
        ("i32", -5),
        ("i64", -7),
        ("level", 2.75),
        ("running", True),
        ("name", "PS-01"),
    ]
    assert p.find("level") == Metric("level", 2.75, spb.DOUBLE, alias=9, timestamp_ms=1000)


def test_metric_helper_picks_the_datatype_from_the_python_type() -> None:
    assert spb.metric("b", True).datatype == spb.BOOLEAN  # bool before int
    assert spb.metric("i", 3).datatype == spb.INT64
    assert spb.metric("f", 3.0).datatype == spb.DOUBLE
    assert spb.metric("s", "x").datatype == spb.STRING
    null = spb.metric("n", None)
    assert null.is_null and null.value is None
    assert spb.metric("n", None, datatype=spb.FLOAT).datatype == spb.FLOAT
    m = spb.metric("x", 1, alias=4, timestamp_ms=99)
    assert (m.alias, m.timestamp_ms) == (4, 99)


# --- session messages ----------------------------------------------------------------------------------


def test_node_birth_shape() -> None:
    level = spb.metric("level_m", 1.25, timestamp_ms=5000)
    p = spb.decode(spb.encode(spb.node_birth(7, [level], 5000)))
    assert p.seq == 0
    assert p.timestamp_ms == 5000
    assert p.metrics[0] == Metric(spb.BD_SEQ, 7, spb.INT64, timestamp_ms=5000)
    assert p.metrics[1] == Metric(spb.REBIRTH, False, spb.BOOLEAN, timestamp_ms=5000)
    assert p.metrics[2:] == (level,)


def test_node_death_holds_only_bdseq_and_no_seq() -> None:
    data = spb.encode(spb.node_death(255))
    raw = pb.Payload()
    raw.ParseFromString(data)
    assert not raw.HasField("seq")
    p = spb.decode(data)
    assert p.seq is None
    assert p.metrics == (Metric(spb.BD_SEQ, 255, spb.INT64),)


def test_rebirth_request_shape() -> None:
    p = spb.decode(spb.encode(spb.rebirth_request(123)))
    assert p.seq is None and p.timestamp_ms == 123
    assert p.metrics == (Metric(spb.REBIRTH, True, spb.BOOLEAN, timestamp_ms=123),)


def test_next_seq_wraps_at_256() -> None:
    assert spb.next_seq(0) == 1
    assert spb.next_seq(254) == 255
    assert spb.next_seq(255) == 0


# --- datatype left out (NDATA per spec) ----------------------------------------------------------------


def test_metric_without_datatype_decodes_as_unknown_and_resolves_with_the_birth_type() -> None:
    p = Payload(1, 5, (Metric("delta", -5, spb.UNKNOWN), Metric("level", 1.5, spb.UNKNOWN)))
    data = spb.encode(p)
    raw = pb.Payload()
    raw.ParseFromString(data)
    assert not raw.metrics[0].HasField("datatype")
    delta, level = spb.decode(data).metrics
    assert delta.datatype == spb.UNKNOWN and delta.value == 2**64 - 5  # as sent: unsigned
    assert delta.resolve(spb.INT64).value == -5
    assert level.resolve(spb.DOUBLE) == Metric("level", 1.5, spb.DOUBLE)
    with pytest.raises(SparkplugError, match="'level'.*Boolean"):
        level.resolve(spb.BOOLEAN)
    with pytest.raises(SparkplugError, match="differs from the birth"):
        Metric("x", 1.0, spb.DOUBLE).resolve(spb.FLOAT)


# --- hostile input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "garbage",
    [b"\xff\xff\xff\xff", b"not a protobuf payload", b"\x0a\x05ab", b"\x12\x80\x80\x80\x80\x10"],
)
def test_garbage_bytes_raise_sparkplug_error(garbage: bytes) -> None:
    with pytest.raises(SparkplugError, match="not a Sparkplug B protobuf payload"):
        spb.decode(garbage)


def test_oversize_payload_is_refused_before_parsing() -> None:
    big = spb.encode(Payload(1, 0, (spb.metric("blob", "x" * 300_000),)))
    with pytest.raises(SparkplugError, match=rf"{len(big)} bytes exceeds the limit of 262144"):
        spb.decode(big)
    small = spb.encode(spb.node_death(1))
    with pytest.raises(SparkplugError, match="exceeds the limit of 4 bytes"):
        spb.decode(small, max_bytes=4)


@pytest.mark.parametrize(
    ("value", "datatype"), [(math.nan, spb.DOUBLE), (math.inf, spb.DOUBLE), (-math.inf, spb.FLOAT)]
)
def test_non_finite_float_is_refused_naming_the_metric(value: float, datatype: int) -> None:
    data = spb.encode(Payload(1, 1, (spb.metric("ok", 1.0), Metric("wet_well_level_m", value, datatype))))
    with pytest.raises(SparkplugError, match="metric 'wet_well_level_m'.*not a finite number"):
        spb.decode(data)


def _raw_metric(**fields: object) -> bytes:
    raw = pb.Payload()
    raw.seq = 1
    m = raw.metrics.add()
    for k, v in fields.items():
        if k == "dataset":
            m.dataset_value.num_of_columns = 1
        else:
            setattr(m, k, v)
    return raw.SerializeToString()


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        (
            {"name": "table", "datatype": 16, "dataset": True},
            "unsupported datatype DataSet for metric 'table'",
        ),
        (
            {"name": "blob", "datatype": 17, "bytes_value": b"\x00"},
            "unsupported datatype Bytes for metric 'blob'",
        ),
        ({"name": "tpl", "datatype": 19, "is_null": True}, "unsupported datatype Template for metric 'tpl'"),
        ({"name": "arr", "datatype": 31, "bytes_value": b""}, "unsupported datatype DoubleArray"),
        ({"name": "odd", "datatype": 99, "int_value": 1}, "unsupported datatype #99 for metric 'odd'"),
        (
            {"name": "lvl", "datatype": 10, "boolean_value": True},
            "'lvl': datatype Double but value in boolean",
        ),
        ({"name": "lvl", "datatype": 10}, "'lvl': no value and not marked is_null"),
        ({"name": "lvl", "datatype": 10, "is_null": True, "double_value": 1.0}, "is_null but carries"),
        ({"name": "i8", "datatype": 1, "int_value": 300}, "'i8': 300 is out of range for Int8"),
        ({"name": "u16", "datatype": 6, "int_value": 70000}, "'u16': 70000 is out of range for UInt16"),
        ({"alias": 12, "datatype": 10, "bytes_value": b"x"}, "alias 12"),
        ({"name": "raw", "bytes_value": b"x"}, "unsupported value field bytes_value"),
    ],
)
def test_malformed_metrics_raise_sparkplug_error(fields: dict[str, object], reason: str) -> None:
    with pytest.raises(SparkplugError, match=reason):
        spb.decode(_raw_metric(**fields))


def test_invalid_utf8_is_refused() -> None:
    good = _raw_metric(name="AB", datatype=12, string_value="CD")
    with pytest.raises(SparkplugError, match="invalid UTF-8"):
        spb.decode(good.replace(b"AB", b"\xff\xfe"))
    with pytest.raises(SparkplugError, match="invalid UTF-8"):
        spb.decode(good.replace(b"CD", b"\xc3\x28"))


def test_unknown_protobuf_fields_are_ignored() -> None:
    data = spb.encode(spb.node_death(3)) + b"\xa0\x06\x01"  # field 100, varint 1: not in the schema
    assert spb.decode(data) == spb.node_death(3)


def test_encode_refuses_values_that_do_not_fit() -> None:
    with pytest.raises(SparkplugError, match="40000 is out of range for Int16"):
        spb.encode(Payload(1, 1, (Metric("x", 40000, spb.INT16),)))
    with pytest.raises(SparkplugError, match="Boolean needs true/false"):
        spb.encode(Payload(1, 1, (Metric("x", 1, spb.BOOLEAN),)))
    with pytest.raises(SparkplugError, match="cannot encode"):
        spb.encode(Payload(-1, 1, ()))
