"""Hostile input (goals 8 and 9), property-based with hypothesis.

Modbus: a server on a real loopback socket answers the collector's requests with malformed responses
(random bytes, protocol id ≠ 0, wrong length, truncated, trailing garbage, wrong function, exception codes,
wrong transaction id, byte count off) and then correct ones. The collector never raises, counts every poll
that met a bad answer, never turns a bad answer into a good value (every good value is the true one), and
reads good values again afterwards.
MQTT: JSON and Sparkplug B payloads (random bytes, random JSON, near-valid messages with wrong types,
NaN/Inf, huge numbers, naive or absurd timestamps, unknown metrics and aliases, seq jumps) go into the
ingest; nothing escapes it, no "internal error", every message is counted (accepted or rejected), and a
valid message after each one is stored.

Example counts: PUMPWATCH_FUZZ_EXAMPLES (default 25 Modbus / 150 MQTT in `make test`; `make fuzz` runs
thousands).
"""

from __future__ import annotations

import math
import os
import struct
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pumpwatch.collector.sources.modbus import ModbusSource, UnitPlan
from pumpwatch.collector.sources.mqtt import MqttIngest
from pumpwatch.core.clock import FakeClock, SystemClock
from pumpwatch.core.config.models import MetricMap, MqttBroker, MqttJsonController, SparkplugController
from pumpwatch.core.sample import Quality, Sample
from pumpwatch.protocols import sparkplug as spb
from tests.collector.test_modbus_source import PLAN, controller, fill
from tests.fakes import RawModbusServer

SCALE = int(os.environ.get("PUMPWATCH_FUZZ_EXAMPLES", "0") or 0)
MODBUS_EXAMPLES = SCALE or 25
MQTT_EXAMPLES = SCALE * 6 or 150
FUZZ = settings(deadline=None, suppress_health_check=list(HealthCheck), derandomize=SCALE == 0)

# --- Modbus ------------------------------------------------------------------------------------------------

KINDS = ("random", "protocol", "length", "truncate", "trailing", "function", "exception", "tid", "count")
bad_answer = st.tuples(st.sampled_from(KINDS), st.binary(min_size=0, max_size=40), st.integers(1, 65535))


class FuzzServer(RawModbusServer):
    """Answers the next requests with the given malformed answers, then correctly."""

    def __init__(self, bad: list[tuple[str, bytes, int]]) -> None:
        super().__init__()
        self.bad = list(bad)
        self.used = 0
        self.met: list[str] = []  # the kinds met, in order

    async def _serve(self, reader, writer) -> None:
        import asyncio

        self._writers.add(writer)
        try:
            while True:
                head = await reader.readexactly(7)
                tid, _pid, length, unit_id = struct.unpack(">HHHB", head)
                pdu = await reader.readexactly(length - 1)
                reply = self._answer(unit_id, pdu[0], pdu) or b""
                good = struct.pack(">HHHB", tid, 0, len(reply) + 1, unit_id) + reply
                if self.bad:
                    self.used += 1
                    kind = self.bad[0][0]
                    good = mangle(good, *self.bad.pop(0))
                    self.met.append(
                        "harmless" if kind == "trailing" or (kind == "count" and pdu[0] in (1, 2)) else kind
                    )
                writer.write(good)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


def mangle(frame: bytes, kind: str, data: bytes, n: int) -> bytes:
    head, pdu = bytearray(frame[:7]), bytearray(frame[7:])
    if kind == "random":
        return data or b"\x00"
    if kind == "protocol":
        head[2:4] = struct.pack(">H", n)
    elif kind == "length":
        wrong = n if n != len(pdu) + 1 else n + 1
        head[4:6] = struct.pack(">H", wrong & 0xFFFF)
    elif kind == "truncate":
        return frame[: n % len(frame)]
    elif kind == "trailing":
        return frame + (data or b"\xff")
    elif kind == "function":
        pdu[0] = (pdu[0] + 1 + n % 126) % 128 or 7
    elif kind == "exception":
        pdu = bytearray([pdu[0] | 0x80, n % 256])
        head[4:6] = struct.pack(">H", 3)
    elif kind == "tid":
        head[0:2] = struct.pack(">H", (struct.unpack(">H", head[0:2])[0] + n) & 0xFFFF or 1)
    elif kind == "count" and len(pdu) > 1:
        pdu[1] = (pdu[1] + n) % 256 if (pdu[1] + n) % 256 != pdu[1] else pdu[1] ^ 1
    return bytes(head + pdu)


class Recorder:
    def __init__(self) -> None:
        self.samples: list[Sample] = []

    def __call__(self, batch: list[Sample]) -> None:
        self.samples.extend(batch)


TRUE = {  # what `fill` stores, decoded
    "mains_failed": 1.0,
    "pump1_running": 0.0,
    "wet_well_level_m": 1.23,
    "pump1_current_a": 9.5,
    "pump1_run_hours_h": 70000.0,
    "flow_m3_min": 5.0,
}


@settings(FUZZ, max_examples=MODBUS_EXAMPLES)
@given(bad=st.lists(bad_answer, min_size=1, max_size=4))
async def test_malformed_modbus_responses(bad) -> None:
    async with FuzzServer(bad) as srv:
        fill(srv, 1)
        rec = Recorder()
        ctrl = controller(srv.port, [1], timeout_s=0.15, comm_loss_after=100, reconnect_max_s=0.05)
        src = ModbusSource(ctrl, [UnitPlan(1, "S1", PLAN)], SystemClock(), rec)
        polls_with_bad = 0
        try:
            for _ in range(len(bad) + 6):  # every bad answer is met, then the collector must recover
                used, clean = srv.used, not srv.bad
                await src.poll_once()  # must not raise
                # Harmless: trailing bytes after a whole, correct frame (pymodbus's framer skips them, or
                # drops the link) and a wrong byte count in a bit answer (pymodbus ignores that field):
                # the values are right, so they need not be counted.
                if any(kind != "harmless" for kind in srv.met[used : srv.used]):
                    polls_with_bad += 1
                if clean and _all_good(rec, since=len(rec.samples) - 6):
                    break  # a poll after the last bad answer read everything right
        finally:
            src._close()
    # Each poll that met bad bytes is counted: a missed poll, a bad block, or a dropped and re-opened
    # connection (garbage after a whole, correct frame: the frame's values are right, the link is reset).
    stats = src.stats
    assert stats.missed + stats.bad_blocks + (stats.connects - 1) >= polls_with_bad, (stats, bad)
    for s in rec.samples:  # a bad answer never became a good value
        if s.quality is Quality.GOOD:
            assert math.isclose(s.value, TRUE[s.point], rel_tol=1e-6), (s, bad)
    last = {s.point: s for s in rec.samples}
    assert all(last[p].quality is Quality.GOOD for p in TRUE), f"no recovery after {bad}: {last}"


def _all_good(rec: Recorder, since: int) -> bool:
    tail = rec.samples[max(0, since) :]
    return len(tail) >= len(TRUE) and all(s.quality is Quality.GOOD for s in tail[-len(TRUE) :])


# --- MQTT ------------------------------------------------------------------------------------------------

MAP = MetricMap.model_validate(
    {
        "name": "mini",
        "metrics": [
            {"name": "wet_well_level_m", "unit": "m", "valid_min": -0.5, "valid_max": 10},
            {"name": "pump1_running", "type": "bool", "metric": "Pumps/Pump1/Running"},
            {"name": "pump1_starts", "type": "int", "kind": "counter"},
        ],
    }
)
T0 = datetime(2026, 9, 1, tzinfo=UTC)

json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
)
timestamp = st.one_of(
    st.none(),
    st.integers(min_value=-(2**40), max_value=2**45),
    st.sampled_from(["2026-09-01T00:00:00", "2026-09-01T00:00:00+09:00", "yesterday", "", "9999-99-99"]),
)
metric_name = st.sampled_from(["wet_well_level_m", "Pumps/Pump1/Running", "pump1_starts", "nope", ""])


@st.composite
def json_message(draw) -> tuple[str, bytes]:
    topic = draw(
        st.sampled_from(
            [
                "scada/v1/S1",
                "scada/v1/S1/wet_well_level_m",
                "scada/v1/S1/status",
                "scada/v1/S1/nope",
                "scada/v1/NOBODY",
                "scada/v1/S1/pump1_running/extra",
            ]
        )
    )
    kind = draw(st.sampled_from(["bytes", "json", "batch", "single", "huge"]))
    if kind == "bytes":
        return topic, draw(st.binary(max_size=200))
    if kind == "json":
        return topic, _dumps(draw(json_value))
    if kind == "batch":
        values = draw(st.dictionaries(metric_name, scalar, max_size=4))
        return topic, _dumps({"ts": draw(timestamp), "values": values})
    if kind == "huge":
        return topic, b'{"values": {"wet_well_level_m": 1.0}, "pad": "' + b"x" * 300_000 + b'"}'
    return topic, _dumps({"v": draw(scalar), "ts": draw(timestamp), "q": draw(st.text(max_size=8))})


def _dumps(v) -> bytes:
    import json

    return json.dumps(v, allow_nan=True).encode()


@st.composite
def spb_message(draw) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(["NDATA", "NDATA", "NBIRTH", "DDATA", "NDEATH", "NCMD"]))
    topic = f"spBv1.0/g/{kind}/e" + ("/dev" if kind == "DDATA" else "")
    if draw(st.booleans()):
        return topic, draw(st.binary(max_size=200))
    metrics = []
    for _ in range(draw(st.integers(0, 4))):
        value = draw(scalar)
        try:
            dt = draw(st.sampled_from([None, spb.INT8, spb.UINT64, spb.FLOAT, spb.BOOLEAN, spb.STRING]))
            metrics.append(
                spb.metric(
                    draw(st.one_of(st.none(), metric_name)),
                    value,
                    alias=draw(st.one_of(st.none(), st.integers(0, 10))),
                    timestamp_ms=draw(st.one_of(st.none(), st.integers(0, 2**45))),
                    datatype=dt,
                )
            )
        except (spb.SparkplugError, TypeError, ValueError, OverflowError):
            continue
    payload = spb.Payload(
        draw(st.one_of(st.none(), st.integers(0, 2**45))), draw(st.integers(0, 300)), tuple(metrics)
    )
    try:
        return topic, spb.encode(payload)
    except (spb.SparkplugError, TypeError, ValueError, OverflowError):
        return topic, draw(st.binary(max_size=50))


def make_ingest(rec: Recorder, clock: FakeClock) -> MqttIngest:
    ctrls = [
        MqttJsonController.model_validate(
            {"id": "j", "protocol": "mqtt_json", "stations": [{"station": "S1", "map": "mini"}]}
        ),
        SparkplugController.model_validate(
            {
                "id": "s",
                "protocol": "sparkplug_b",
                "group_id": "g",
                "edge_node_id": "e",
                "reorder_timeout_s": 0,
                "stations": [{"station": "S2", "map": "mini"}],
            }
        ),
    ]
    return MqttIngest(MqttBroker(), ctrls, {"mini": MAP}, clock, rec)


def counted(ingest: MqttIngest) -> int:
    return ingest.accepted + sum(ingest.rejected.values()) + sum(ingest.ignored.values())


def birth(bd: int, ts: int) -> bytes:
    metrics = [
        spb.metric("bdSeq", bd),
        spb.metric("wet_well_level_m", 1.0, alias=1),
        spb.metric("Pumps/Pump1/Running", False, alias=2),
        spb.metric("pump1_starts", 7, alias=3),
    ]
    return spb.encode(spb.Payload(ts, 0, tuple(metrics)))


@settings(FUZZ, max_examples=MQTT_EXAMPLES)
@given(msgs=st.lists(st.one_of(json_message(), spb_message()), min_size=1, max_size=5))
def test_malformed_mqtt_payloads(msgs) -> None:
    clock = FakeClock(T0)
    rec = Recorder()
    ingest = make_ingest(rec, clock)
    for i, (topic, payload) in enumerate(msgs):
        clock.advance(1)
        before = counted(ingest)
        ingest._on_message(topic, payload)  # must not raise
        assert counted(ingest) > before, f"uncounted: {topic} {payload[:80]!r}"
        assert ingest.rejected["internal error"] == 0, ingest.dead_letters[-1]
        # an interleaved valid message of each kind is stored with its value
        level = 2.0 + i / 100
        now = clock.now()
        n = len(rec.samples)
        ingest._on_message(
            "scada/v1/S1", _dumps({"ts": now.isoformat(), "values": {"wet_well_level_m": level}})
        )
        assert [
            (s.station, s.value, s.quality) for s in rec.samples[n:] if s.point == "wet_well_level_m"
        ] == [("S1", level, Quality.GOOD)], (topic, payload[:80])
        ms = int(now.timestamp() * 1000)
        ingest._on_message("spBv1.0/g/NBIRTH/e", birth(i, ms))
        n = len(rec.samples)
        data = spb.encode(spb.Payload(ms, 1, (spb.metric(None, level, alias=1, timestamp_ms=ms),)))
        ingest._on_message("spBv1.0/g/NDATA/e", data)
        got = [(s.station, s.value, s.quality) for s in rec.samples[n:] if s.point == "wet_well_level_m"]
        assert got == [("S2", level, Quality.GOOD)], (topic, payload[:80], got)
    assert ingest.rejected["internal error"] == 0


def test_fuzz_checks_can_fail() -> None:
    """The bad-answer generator really breaks frames, and the ingest counts a bad message as rejected."""
    frame = struct.pack(">HHHB", 7, 0, 3, 1) + bytes([4, 0])
    for kind in KINDS:
        assert mangle(frame, kind, b"", 3) != frame, kind
    ingest = make_ingest(Recorder(), FakeClock(T0))
    ingest._on_message("scada/v1/S1", b"{not json")
    assert sum(ingest.rejected.values()) == 1 and ingest.accepted == 0
    assert T0 + timedelta(0) == T0
