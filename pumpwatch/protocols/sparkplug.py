"""Sparkplug B (spec 3.0) topics and payloads, shared by the simulated edge node and the collector's host
application. Pure: no I/O, no MQTT.

- `Topic`: `spBv1.0/{group_id}/{message_type}/{edge_node_id}[/{device_id}]`, or the host's
  `spBv1.0/STATE/{host_id}` (then `group_id` is "" and `edge_node_id` holds the host id; see `Topic.state`).
- `Payload` / `Metric`: frozen value types; `decode` turns wire bytes into them, `encode` back.
- `node_birth`, `node_death`, `rebirth_request`, `next_seq`: the session messages' shapes.

Wire conventions (Eclipse Tahu's `sparkplug_b.proto`, generated code shipped by `tahutils`):

- Int8/Int16/Int32/UInt8/UInt16/UInt32 travel in `int_value` (uint32), Int64/UInt64/DateTime in `long_value`
  (uint64); negative signed values are two's complement. `encode` writes Int8/Int16 negatives sign-extended to
  32 bits (Tahu Java); `decode` also accepts the 8/16-bit form (Tahu Python) and either value field for any
  integer type. Out-of-range integers are a `SparkplugError`, never silently truncated.
- The spec says the datatype SHOULD NOT be sent in NDATA/DDATA/NCMD/DCMD: such a metric decodes with
  `datatype == UNKNOWN` and its value taken from whichever value field is set (integers unsigned, as sent).
  A host knows the datatype from the birth: `Metric.resolve(datatype)` re-reads the value with it (sign,
  range).
  `encode` omits the datatype when `Metric.datatype == UNKNOWN` and picks the field from the Python type.
- `decode` is strict (size limit, malformed protobuf, invalid UTF-8, unsupported datatypes, NaN/inf, value
  field not matching the datatype, a metric with no value that is not marked null); every failure is a
  `SparkplugError` naming the metric. `encode` is permissive about what the wire can carry (NaN, inf) so tests
  can build hostile payloads; it still refuses values that do not fit their datatype.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from google.protobuf.message import DecodeError, EncodeError
from tahutils.tahu import sparkplug_b_pb2 as _pb

__all__ = [
    "BD_SEQ",
    "BOOLEAN",
    "DATATYPE_NAMES",
    "DATETIME",
    "DEVICE_MESSAGE_TYPES",
    "DOUBLE",
    "FLOAT",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "MESSAGE_TYPES",
    "NAMESPACE",
    "NODE_MESSAGE_TYPES",
    "REBIRTH",
    "STRING",
    "TEXT",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "UNKNOWN",
    "UUID",
    "Metric",
    "Payload",
    "SparkplugError",
    "Topic",
    "decode",
    "encode",
    "metric",
    "next_seq",
    "node_birth",
    "node_death",
    "rebirth_request",
]

NAMESPACE = "spBv1.0"
BD_SEQ = "bdSeq"
REBIRTH = "Node Control/Rebirth"
MAX_PAYLOAD_BYTES = 256 * 1024

# Datatypes: the values of Tahu's `DataType` enum.
_DT = _pb.DataType
UNKNOWN: int = _DT.Value("Unknown")
INT8: int = _DT.Value("Int8")
INT16: int = _DT.Value("Int16")
INT32: int = _DT.Value("Int32")
INT64: int = _DT.Value("Int64")
UINT8: int = _DT.Value("UInt8")
UINT16: int = _DT.Value("UInt16")
UINT32: int = _DT.Value("UInt32")
UINT64: int = _DT.Value("UInt64")
FLOAT: int = _DT.Value("Float")
DOUBLE: int = _DT.Value("Double")
BOOLEAN: int = _DT.Value("Boolean")
STRING: int = _DT.Value("String")
DATETIME: int = _DT.Value("DateTime")
TEXT: int = _DT.Value("Text")
UUID: int = _DT.Value("UUID")
DATATYPE_NAMES: dict[int, str] = {v: k for k, v in _DT.items()}

_SIGNED_BITS = {INT8: 8, INT16: 16, INT32: 32, INT64: 64}
_UNSIGNED_BITS = {UINT8: 8, UINT16: 16, UINT32: 32, UINT64: 64, DATETIME: 64}
_INT_TYPES = frozenset(_SIGNED_BITS) | frozenset(_UNSIGNED_BITS)
_LONG_FIELD_TYPES = frozenset({INT64, UINT64, DATETIME})
_STRING_TYPES = frozenset({STRING, TEXT, UUID})
_FLOAT_TYPES = frozenset({FLOAT, DOUBLE})
SUPPORTED_DATATYPES = _INT_TYPES | _STRING_TYPES | _FLOAT_TYPES | {BOOLEAN}

NODE_MESSAGE_TYPES = frozenset({"NBIRTH", "NDEATH", "NDATA", "NCMD"})
DEVICE_MESSAGE_TYPES = frozenset({"DBIRTH", "DDEATH", "DDATA", "DCMD"})
MESSAGE_TYPES = NODE_MESSAGE_TYPES | DEVICE_MESSAGE_TYPES | {"STATE"}

Value = bool | int | float | str | None


class SparkplugError(ValueError):
    """A malformed Sparkplug topic or payload; the message says precisely what is wrong."""


def _dt_name(datatype: int) -> str:
    return DATATYPE_NAMES.get(datatype, f"#{datatype}")


# --- topics --------------------------------------------------------------------------------------------


def _check_id(what: str, value: str) -> None:
    if not value:
        raise SparkplugError(f"{what} is empty")
    bad = sorted({c for c in value if c in "/+#"})
    if bad:
        raise SparkplugError(f"{what} {value!r} contains {' '.join(bad)}")


@dataclass(frozen=True, slots=True)
class Topic:
    """A Sparkplug topic. For STATE, `group_id` is "" and `edge_node_id` is the host application's id."""

    group_id: str
    message_type: str
    edge_node_id: str
    device_id: str | None = None

    def __post_init__(self) -> None:
        if self.message_type not in MESSAGE_TYPES:
            known = ", ".join(sorted(MESSAGE_TYPES))
            raise SparkplugError(f"unknown message type {self.message_type!r} (expected one of {known})")
        if self.message_type == "STATE":
            if self.group_id:
                raise SparkplugError("a STATE topic has no group_id")
            _check_id("host id", self.edge_node_id)
            if self.device_id is not None:
                raise SparkplugError("a STATE topic has no device_id")
            return
        _check_id("group_id", self.group_id)
        _check_id("edge_node_id", self.edge_node_id)
        if self.message_type in DEVICE_MESSAGE_TYPES:
            if self.device_id is None:
                raise SparkplugError(f"{self.message_type} needs a device_id")
            _check_id("device_id", self.device_id)
        elif self.device_id is not None:
            raise SparkplugError(f"{self.message_type} is a node message: it takes no device_id")

    @classmethod
    def state(cls, host_id: str) -> Topic:
        return cls("", "STATE", host_id)

    @property
    def host_id(self) -> str | None:
        return self.edge_node_id if self.message_type == "STATE" else None

    @property
    def is_device(self) -> bool:
        return self.message_type in DEVICE_MESSAGE_TYPES

    @classmethod
    def parse(cls, topic: str) -> Topic:
        parts = topic.split("/")
        if parts[0] != NAMESPACE:
            raise SparkplugError(f"topic {topic!r}: namespace is {parts[0]!r}, expected {NAMESPACE!r}")
        if len(parts) == 3 and parts[1] == "STATE":
            try:
                return cls.state(parts[2])
            except SparkplugError as exc:
                raise SparkplugError(f"topic {topic!r}: {exc}") from None
        if len(parts) < 4:
            raise SparkplugError(
                f"topic {topic!r}: {len(parts)} levels, expected "
                f"{NAMESPACE}/group_id/message_type/edge_node_id[/device_id]"
            )
        if len(parts) > 5:
            raise SparkplugError(f"topic {topic!r}: {len(parts)} levels, at most 5 expected")
        mtype = parts[2]
        if mtype in DEVICE_MESSAGE_TYPES and len(parts) != 5:
            raise SparkplugError(f"topic {topic!r}: {mtype} needs a device_id level")
        if mtype in NODE_MESSAGE_TYPES and len(parts) != 4:
            raise SparkplugError(f"topic {topic!r}: {mtype} is a node message, it has no device_id level")
        try:
            return cls(parts[1], mtype, parts[3], parts[4] if len(parts) == 5 else None)
        except SparkplugError as exc:
            raise SparkplugError(f"topic {topic!r}: {exc}") from None

    def __str__(self) -> str:
        if self.message_type == "STATE":
            return f"{NAMESPACE}/STATE/{self.edge_node_id}"
        base = f"{NAMESPACE}/{self.group_id}/{self.message_type}/{self.edge_node_id}"
        return base if self.device_id is None else f"{base}/{self.device_id}"


# --- payloads ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric. `datatype` is UNKNOWN when the wire left it out (allowed in DATA and CMD messages)."""

    name: str | None
    value: Value
    datatype: int
    alias: int | None = None
    timestamp_ms: int | None = None
    is_null: bool = False
    is_historical: bool = False
    is_transient: bool = False

    @property
    def label(self) -> str:
        """How error messages name it."""
        if self.name is not None:
            return repr(self.name)
        return f"alias {self.alias}" if self.alias is not None else "(unnamed)"

    def resolve(self, datatype: int) -> Metric:
        """This metric read with `datatype` (known from the birth): signs integers and checks the value fits.
        A metric that already carries a different datatype is an error."""
        if self.datatype == datatype:
            return self
        if self.datatype != UNKNOWN:
            raise SparkplugError(
                f"metric {self.label}: datatype {_dt_name(self.datatype)} differs from the birth's "
                f"{_dt_name(datatype)}"
            )
        if datatype not in SUPPORTED_DATATYPES:
            raise SparkplugError(f"unsupported datatype {_dt_name(datatype)} for metric {self.label}")
        value = self.value
        if not self.is_null:
            value = _coerce(self.label, datatype, value, wire=True)
        return Metric(
            self.name,
            value,
            datatype,
            self.alias,
            self.timestamp_ms,
            self.is_null,
            self.is_historical,
            self.is_transient,
        )


@dataclass(frozen=True, slots=True)
class Payload:
    timestamp_ms: int | None
    seq: int | None
    metrics: tuple[Metric, ...] = ()

    def find(self, name: str) -> Metric | None:
        """The first metric called `name`, or None."""
        for m in self.metrics:
            if m.name == name:
                return m
        return None


def metric(
    name: str | None,
    value: Value,
    *,
    alias: int | None = None,
    timestamp_ms: int | None = None,
    datatype: int | None = None,
) -> Metric:
    """A metric whose datatype follows the Python type (bool → Boolean, int → Int64, float → Double,
    str → String; None → a null of `datatype`, Unknown if not given). `datatype` overrides the choice."""
    if datatype is None:
        if value is None:
            datatype = UNKNOWN
        elif isinstance(value, bool):
            datatype = BOOLEAN
        elif isinstance(value, int):
            datatype = INT64
        elif isinstance(value, float):
            datatype = DOUBLE
        elif isinstance(value, str):
            datatype = STRING
        else:
            raise SparkplugError(f"metric {name!r}: no Sparkplug datatype for {type(value).__name__}")
    return Metric(name, value, datatype, alias, timestamp_ms, is_null=value is None)


def next_seq(seq: int) -> int:
    return (seq + 1) % 256


def node_birth(bd_seq: int, metrics: Iterable[Metric], timestamp_ms: int) -> Payload:
    """NBIRTH: seq 0, `bdSeq` (Int64) and `Node Control/Rebirth` = false first, then the node's metrics."""
    head = (
        metric(BD_SEQ, bd_seq, datatype=INT64, timestamp_ms=timestamp_ms),
        metric(REBIRTH, False, timestamp_ms=timestamp_ms),
    )
    return Payload(timestamp_ms, 0, head + tuple(metrics))


def node_death(bd_seq: int, timestamp_ms: int | None = None) -> Payload:
    """NDEATH (the MQTT will): only `bdSeq`, no seq."""
    return Payload(timestamp_ms, None, (metric(BD_SEQ, bd_seq, datatype=INT64, timestamp_ms=timestamp_ms),))


def rebirth_request(timestamp_ms: int) -> Payload:
    """NCMD asking an edge node to publish its births again."""
    return Payload(timestamp_ms, None, (metric(REBIRTH, True, timestamp_ms=timestamp_ms),))


# --- decoding ------------------------------------------------------------------------------------------


def _signed(label: str, datatype: int, raw: int, *, wire: bool) -> int:
    """`raw` as a signed value of `datatype`. From the wire (`wire=True`) it is two's complement in the type's
    width or sign-extended to 32 bits; otherwise it is a Python int that must be in the type's range."""
    bits = _SIGNED_BITS[datatype]
    if not wire:
        if not -(1 << (bits - 1)) <= raw < (1 << (bits - 1)):
            raise SparkplugError(f"metric {label}: {raw} is out of range for {_dt_name(datatype)}")
        return raw
    if -(1 << (bits - 1)) <= raw < 0:  # already signed (a Metric built in Python, then resolved)
        return raw
    if 0 <= raw < (1 << bits):
        return raw - (1 << bits) if raw >= 1 << (bits - 1) else raw
    if bits < 32 and (1 << 32) - (1 << (bits - 1)) <= raw < (1 << 32):  # sign-extended to 32 bits
        return raw - (1 << 32)
    raise SparkplugError(f"metric {label}: {raw} is out of range for {_dt_name(datatype)}")


def _coerce(label: str, datatype: int, value: Value, *, wire: bool) -> Value:
    """Check `value` (decoded from the wire, or given to `encode`) against `datatype`; integers come back
    signed per type."""
    if datatype in _INT_TYPES:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SparkplugError(f"metric {label}: {_dt_name(datatype)} needs an integer, not {value!r}")
        if datatype in _SIGNED_BITS:
            return _signed(label, datatype, value, wire=wire)
        if not 0 <= value < (1 << _UNSIGNED_BITS[datatype]):
            raise SparkplugError(f"metric {label}: {value} is out of range for {_dt_name(datatype)}")
        return value
    if datatype in _FLOAT_TYPES:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SparkplugError(f"metric {label}: {_dt_name(datatype)} needs a number, not {value!r}")
        return float(value)
    if datatype == BOOLEAN:
        if not isinstance(value, bool):
            raise SparkplugError(f"metric {label}: Boolean needs true/false, not {value!r}")
        return value
    if datatype in _STRING_TYPES:
        if not isinstance(value, str):
            raise SparkplugError(f"metric {label}: {_dt_name(datatype)} needs a string, not {value!r}")
        return value
    raise SparkplugError(f"unsupported datatype {_dt_name(datatype)} for metric {label}")


_FIELD_FOR = {  # the value field(s) each supported datatype may use
    **dict.fromkeys(_INT_TYPES, ("int_value", "long_value")),
    FLOAT: ("float_value",),
    DOUBLE: ("double_value",),
    BOOLEAN: ("boolean_value",),
    **dict.fromkeys(_STRING_TYPES, ("string_value",)),
}


_SCALAR_FIELDS = frozenset(
    {"int_value", "long_value", "float_value", "double_value", "boolean_value", "string_value"}
)


def _utf8(what: str, v: object) -> object:
    # proto2 string fields are not UTF-8-checked by upb: invalid bytes come back as `bytes`.
    if isinstance(v, bytes):
        raise SparkplugError(f"{what}: invalid UTF-8 {v[:40]!r}")
    return v


def _decode_metric(i: int, m: _pb.Payload.Metric) -> Metric:
    name = _utf8(f"metric #{i} name", m.name) if m.HasField("name") else None
    assert name is None or isinstance(name, str)
    alias = m.alias if m.HasField("alias") else None
    label = repr(name) if name is not None else (f"alias {alias}" if alias is not None else f"#{i}")
    datatype = m.datatype
    field = m.WhichOneof("value")
    if datatype != UNKNOWN and datatype not in SUPPORTED_DATATYPES:
        raise SparkplugError(f"unsupported datatype {_dt_name(datatype)} for metric {label}")
    value: Value = None
    if m.is_null:
        if field is not None:
            raise SparkplugError(f"metric {label}: is_null but carries {field}")
    elif field is None:
        raise SparkplugError(f"metric {label}: no value and not marked is_null")
    elif field not in _SCALAR_FIELDS:
        raise SparkplugError(f"metric {label}: unsupported value field {field}")
    else:
        if datatype != UNKNOWN and field not in _FIELD_FOR[datatype]:
            raise SparkplugError(f"metric {label}: datatype {_dt_name(datatype)} but value in {field}")
        # (the protobuf field by name: its type is the field's, checked per datatype above)
        value = _utf8(f"metric {label} {field}", getattr(m, field))  # type: ignore[assignment]
        if isinstance(value, float) and not math.isfinite(value):
            raise SparkplugError(f"metric {label}: value {value} is not a finite number")
        if datatype != UNKNOWN:
            value = _coerce(label, datatype, value, wire=True)
    return Metric(
        name=name,
        value=value,
        datatype=datatype,
        alias=alias,
        timestamp_ms=m.timestamp if m.HasField("timestamp") else None,
        is_null=m.is_null,
        is_historical=m.is_historical,
        is_transient=m.is_transient,
    )


def decode(data: bytes, *, max_bytes: int = MAX_PAYLOAD_BYTES) -> Payload:
    """Bytes from the wire → `Payload`; `SparkplugError` says why when they are not a valid one."""
    if len(data) > max_bytes:
        raise SparkplugError(f"payload of {len(data)} bytes exceeds the limit of {max_bytes} bytes")
    pb = _pb.Payload()
    try:
        pb.ParseFromString(bytes(data))
    except DecodeError as exc:
        raise SparkplugError(f"not a Sparkplug B protobuf payload: {exc}") from None
    try:
        metrics = tuple(_decode_metric(i, m) for i, m in enumerate(pb.metrics))
    except UnicodeDecodeError as exc:
        raise SparkplugError(f"invalid UTF-8 in a string field: {exc}") from None
    return Payload(
        timestamp_ms=pb.timestamp if pb.HasField("timestamp") else None,
        seq=pb.seq if pb.HasField("seq") else None,
        metrics=metrics,
    )


# --- encoding ------------------------------------------------------------------------------------------


def _set_value(m: _pb.Payload.Metric, src: Metric) -> None:
    label, v, dt = src.label, src.value, src.datatype
    if dt == UNKNOWN:  # no datatype on the wire: the field follows the Python type
        if isinstance(v, bool):
            m.boolean_value = v
        elif isinstance(v, int):
            if not -(1 << 63) <= v < (1 << 64):
                raise SparkplugError(f"metric {label}: {v} does not fit in 64 bits")
            m.long_value = v % (1 << 64)
        elif isinstance(v, float):
            m.double_value = v
        elif isinstance(v, str):
            m.string_value = v
        else:
            raise SparkplugError(f"metric {label}: no Sparkplug value field for {type(v).__name__}")
        return
    m.datatype = dt
    if dt in _FLOAT_TYPES:  # permissive: NaN and inf are encodable
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise SparkplugError(f"metric {label}: {_dt_name(dt)} needs a number, not {v!r}")
        if dt == FLOAT:
            m.float_value = float(v)
        else:
            m.double_value = float(v)
        return
    v = _coerce(label, dt, v, wire=False)
    if dt in _INT_TYPES:
        assert isinstance(v, int)
        if dt in _LONG_FIELD_TYPES:
            m.long_value = v % (1 << 64)
        else:
            m.int_value = v % (1 << 32)
    elif dt == BOOLEAN:
        m.boolean_value = bool(v)
    else:
        m.string_value = str(v)


def encode(p: Payload) -> bytes:
    try:
        return _encode(p)
    except SparkplugError:
        raise
    except (ValueError, TypeError, EncodeError) as exc:  # e.g. a negative timestamp for a uint64 field
        raise SparkplugError(f"cannot encode payload: {exc}") from None


def _encode(p: Payload) -> bytes:
    pb = _pb.Payload()
    if p.timestamp_ms is not None:
        pb.timestamp = p.timestamp_ms
    if p.seq is not None:
        pb.seq = p.seq
    for src in p.metrics:
        m = pb.metrics.add()
        if src.name is not None:
            m.name = src.name
        if src.alias is not None:
            m.alias = src.alias
        if src.timestamp_ms is not None:
            m.timestamp = src.timestamp_ms
        if src.is_historical:
            m.is_historical = True
        if src.is_transient:
            m.is_transient = True
        if src.is_null or src.value is None:
            m.is_null = True
            if src.datatype != UNKNOWN:
                m.datatype = src.datatype
        else:
            _set_value(m, src)
    data: bytes = pb.SerializeToString()  # (tahutils has no types: its messages are Any)
    return data
