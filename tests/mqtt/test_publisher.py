"""Simulated MQTT devices against a real Mosquitto, observed by a plain aiomqtt subscriber.

Publishing intervals run on a FakeClock: a test moves time and waits for the message, never sleeps."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

import pytest

from pumpwatch.core.backoff import jittered
from pumpwatch.core.clock import FakeClock
from pumpwatch.core.config.models import MetricMap, MqttJsonController, SparkplugController
from pumpwatch.protocols import sparkplug as spb
from pumpwatch.simulators.mqtt_json_publisher import JsonPublisher
from pumpwatch.simulators.mqtt_values import typed_value
from pumpwatch.simulators.sparkplug_node import SparkplugEdgeNode
from tests.mqtt_broker import MosquittoBroker, Subscriber

pytestmark = pytest.mark.integration

MAP = MetricMap(
    name="mps-mini",
    metrics=[
        {"name": "wet_well_level_m", "unit": "m"},
        {"name": "pump1_running", "type": "bool"},
        {"name": "pump1_starts", "type": "int", "kind": "counter"},
        {"name": "mains_ok", "type": "bool", "metric": "Power/Mains OK"},
    ],
)


def values(**over: object) -> dict[str, object]:
    v: dict[str, object] = {
        "wet_well_level_m": 1.25,
        "pump1_running": False,
        "pump1_starts": 7,
        "mains_ok": True,
    }
    v.update(over)
    return v


def json_ctrl(*stations: str) -> MqttJsonController:
    return MqttJsonController(
        id="json-1",
        protocol="mqtt_json",
        expected_interval_s=10,
        stations=[{"station": s, "map": MAP.name} for s in stations or ("PS-01",)],
    )


def spb_ctrl() -> SparkplugController:
    return SparkplugController(
        id="spb-1",
        protocol="sparkplug_b",
        group_id="sewer",
        edge_node_id="rtu-7",
        expected_interval_s=10,
        stations=[
            {"station": "PS-01", "map": MAP.name},  # node-level metrics
            {"station": "PS-02", "map": MAP.name, "device_id": "PS-02"},
        ],
    )


NODE = "spBv1.0/sewer/*/rtu-7"
ALL = "spBv1.0/sewer/*"


def decoded(message) -> spb.Payload:  # noqa: ANN001
    return spb.decode(message.payload)


@asynccontextmanager
async def online(device: JsonPublisher | SparkplugEdgeNode) -> AsyncIterator[None]:
    async with device:
        async with asyncio.timeout(5):
            await device.wait_online()
        yield


# --- JSON ----------------------------------------------------------------------------------------------


async def test_json_batch_payload_matches_the_values(mqtt_broker: MosquittoBroker) -> None:
    clock = FakeClock()
    state = values()
    samples: list[tuple[str, str, object, datetime]] = []
    pub = JsonPublisher(
        mqtt_broker.broker_config(),
        json_ctrl(),
        {"PS-01": (lambda: state, MAP)},
        clock,
        on_sample=lambda *s: samples.append(s),
    )
    assert pub.interval_s == 5.0  # expected_interval_s / 2
    async with Subscriber(mqtt_broker, "scada/v1/#") as sub, online(pub):
        assert (await sub.next("scada/v1/PS-01/status")).payload == b"online"
        body = json.loads((await sub.next("scada/v1/PS-01")).payload)
        assert body == {
            "ts": "2026-07-01T00:00:00.000+00:00",
            "values": {
                "wet_well_level_m": 1.25,
                "pump1_running": False,
                "pump1_starts": 7,
                "Power/Mains OK": True,
            },
        }
        assert datetime.fromisoformat(body["ts"]) == clock.now()

        state.update(wet_well_level_m=2.5, pump1_running=True, pump1_starts=8.0, mains_ok=0)
        clock.advance(5)
        body = json.loads((await sub.next("scada/v1/PS-01")).payload)
        assert body["ts"] == "2026-07-01T00:00:05.000+00:00"
        assert body["values"] == {
            "wet_well_level_m": 2.5,
            "pump1_running": True,
            "pump1_starts": 8,
            "Power/Mains OK": False,
        }
        assert isinstance(body["values"]["pump1_starts"], int)
        await sub.quiet("scada/v1/PS-01", for_s=0.1)  # nothing until the next interval
        assert pub.published == 2
    assert samples[-1] == ("PS-01", "mains_ok", False, clock.now())
    assert len(samples) == 8


async def test_json_per_point_payloads(mqtt_broker: MosquittoBroker) -> None:
    clock = FakeClock()
    state = values(wet_well_level_m=math.nan, pump1_starts=None)
    pub = JsonPublisher(
        mqtt_broker.broker_config(), json_ctrl(), {"PS-01": (lambda: state, MAP)}, clock, batch=False
    )
    async with Subscriber(mqtt_broker, "scada/v1/#") as sub, online(pub):
        got = {}
        for spec in MAP.metrics:
            got[spec.wire_name] = json.loads((await sub.next(f"scada/v1/PS-01/{spec.wire_name}")).payload)
        ts = "2026-07-01T00:00:00.000+00:00"
        assert got == {
            "wet_well_level_m": {"v": None, "ts": ts, "q": "bad"},  # NaN: no value
            "pump1_running": {"v": False, "ts": ts, "q": "good"},
            "pump1_starts": {"v": None, "ts": ts, "q": "bad"},
            "Power/Mains OK": {"v": True, "ts": ts, "q": "good"},
        }
        assert pub.published == 4


async def test_json_status_is_retained_and_the_will_says_offline_on_kill(
    mqtt_broker: MosquittoBroker,
) -> None:
    pub = JsonPublisher(mqtt_broker.broker_config(), json_ctrl(), {"PS-01": (values, MAP)}, FakeClock())
    status = "scada/v1/PS-01/status"
    async with online(pub):
        async with Subscriber(mqtt_broker, status) as late:  # joins after the fact: gets the retained one
            m = await late.next(status)
            assert (m.payload, m.retain) == (b"online", True)
        async with Subscriber(mqtt_broker, status) as sub:
            await sub.next(status)  # retained "online"
            await pub.kill()
            m = await sub.next(status, timeout=3)
            assert m.payload == b"offline"  # the broker delivered the will: no DISCONNECT was sent
            async with Subscriber(mqtt_broker, status) as late:
                m = await late.next(status)
                assert (m.payload, m.retain) == (b"offline", True)
            pub.revive()
            assert (await sub.next(status)).payload == b"online"
            assert pub.sessions == 2
            await pub.stop()  # clean: publishes "offline" itself, since the will is dropped
            assert (await sub.next(status)).payload == b"offline"
            await sub.quiet(status, for_s=0.2)


async def test_json_each_station_has_its_own_session_and_status(mqtt_broker: MosquittoBroker) -> None:
    clock = FakeClock()
    sources = {s: (values, MAP) for s in ("PS-01", "PS-02")}
    pub = JsonPublisher(mqtt_broker.broker_config(), json_ctrl("PS-01", "PS-02"), sources, clock)
    async with Subscriber(mqtt_broker, "scada/v1/#") as sub, online(pub):
        assert pub.stations == ["PS-01", "PS-02"]
        for station in pub.stations:
            assert (await sub.next(f"scada/v1/{station}/status")).payload == b"online"
            await sub.next(f"scada/v1/{station}")
        await pub.kill("PS-02")
        assert (await sub.next("scada/v1/PS-02/status")).payload == b"offline"
        clock.advance(5)
        await sub.next("scada/v1/PS-01")  # the other station carries on
        await sub.quiet("scada/v1/PS-02", for_s=0.2)
        await sub.quiet("scada/v1/PS-01/status", for_s=0.0)


async def test_json_reconnects_after_a_broker_restart(mqtt_broker: MosquittoBroker) -> None:
    clock = FakeClock()
    pub = JsonPublisher(
        mqtt_broker.broker_config(reconnect_max_s=1.0), json_ctrl(), {"PS-01": (values, MAP)}, clock
    )
    async with online(pub):
        mqtt_broker.restart()  # persistence false: the retained status is gone too
        async with Subscriber(mqtt_broker, "scada/v1/#") as sub:
            # Retained, or live if we subscribed first: either way from the new session.
            assert (await sub.next("scada/v1/PS-01/status", timeout=5)).payload == b"online"
            clock.advance(5)
            await sub.next("scada/v1/PS-01")
        assert pub.sessions == 2


async def test_publish_raw_sends_bytes_as_given(mqtt_broker: MosquittoBroker) -> None:
    pub = JsonPublisher(mqtt_broker.broker_config(), json_ctrl(), {"PS-01": (values, MAP)}, FakeClock())
    async with Subscriber(mqtt_broker, "scada/v1/PS-01/junk") as sub, online(pub):
        await pub.publish_raw("scada/v1/PS-01/junk", b"\xff{not json")
        assert (await sub.next("scada/v1/PS-01/junk")).payload == b"\xff{not json"


def test_values_are_converted_per_metric_type_and_backoff_is_capped() -> None:
    level, running, starts, _ = MAP.metrics
    assert typed_value(level, 3) == 3.0 and isinstance(typed_value(level, 3), float)
    assert typed_value(level, math.inf) is None
    assert typed_value(level, "n/a") is None
    assert typed_value(running, 1) is True
    assert typed_value(starts, 7.6) == 8
    assert all(0 <= jittered(a, 2.0) <= 2.0 for a in range(30))
    assert all(jittered(0, 60.0) <= 1.0 for _ in range(50))


# --- Sparkplug B ---------------------------------------------------------------------------------------


def edge_node(
    broker: MosquittoBroker, clock: FakeClock, node_state: dict, dev_state: dict, **kw
) -> SparkplugEdgeNode:
    sources = {"PS-01": (lambda: node_state, MAP), "PS-02": (lambda: dev_state, MAP)}
    return SparkplugEdgeNode(broker.broker_config(), spb_ctrl(), sources, clock, **kw)


async def test_births_carry_seq_bdseq_and_every_metric(mqtt_broker: MosquittoBroker) -> None:
    clock = FakeClock()
    node = edge_node(mqtt_broker, clock, values(), values(wet_well_level_m=None, pump1_starts=2))
    async with Subscriber(mqtt_broker, "spBv1.0/#") as sub, online(node):
        m = await sub.next(ALL)
        assert m.topic.value == "spBv1.0/sewer/NBIRTH/rtu-7" and not m.retain and m.qos == 0
        birth = decoded(m)
        ts = round(clock.now().timestamp() * 1000)
        assert birth.seq == 0 and birth.timestamp_ms == ts
        assert birth.find(spb.BD_SEQ) == spb.Metric(spb.BD_SEQ, 0, spb.INT64, timestamp_ms=ts)
        assert birth.find(spb.REBIRTH).value is False
        assert {(x.name, x.value, x.datatype) for x in birth.metrics[2:]} == {
            ("wet_well_level_m", 1.25, spb.DOUBLE),
            ("pump1_running", False, spb.BOOLEAN),
            ("pump1_starts", 7, spb.INT64),
            ("Power/Mains OK", True, spb.BOOLEAN),
        }
        assert all(x.timestamp_ms == ts for x in birth.metrics)

        m = await sub.next(ALL)
        assert m.topic.value == "spBv1.0/sewer/DBIRTH/rtu-7/PS-02"
        dbirth = decoded(m)
        assert dbirth.seq == 1
        assert [(x.name, x.value, x.datatype, x.is_null) for x in dbirth.metrics] == [
            ("wet_well_level_m", None, spb.DOUBLE, True),
            ("pump1_running", False, spb.BOOLEAN, False),
            ("pump1_starts", 2, spb.INT64, False),
            ("Power/Mains OK", True, spb.BOOLEAN, False),
        ]
        assert (node.births, node.published, node.bd_seq) == (1, 0, 0)


async def test_data_carries_only_changes_and_seq_wraps_at_255(mqtt_broker: MosquittoBroker) -> None:
    clock = FakeClock()
    node_state, dev_state = values(), values()
    node = edge_node(mqtt_broker, clock, node_state, dev_state, interval_s=1.0)
    async with Subscriber(mqtt_broker, "spBv1.0/#") as sub, online(node):
        await sub.next("spBv1.0/sewer/NBIRTH/rtu-7")
        assert decoded(await sub.next("spBv1.0/sewer/DBIRTH/rtu-7/PS-02")).seq == 1
        clock.advance(1)
        await sub.quiet(ALL, for_s=0.1)  # nothing changed: nothing sent (report by exception)

        seqs = []
        for i in range(300):
            node_state["wet_well_level_m"] = 1.0 + i / 100
            clock.advance(1)
            p = decoded(await sub.next("spBv1.0/sewer/NDATA/rtu-7"))
            assert [(x.name, x.value) for x in p.metrics] == [("wet_well_level_m", 1.0 + i / 100)]
            assert p.metrics[0].datatype == spb.UNKNOWN  # the spec: SHOULD NOT repeat it in DATA
            seqs.append(p.seq)
        assert seqs == [(2 + i) % 256 for i in range(300)]  # ... 254, 255, 0, 1 ...

        dev_state.update(pump1_running=True, pump1_starts=8)
        clock.advance(1)
        p = decoded(await sub.next("spBv1.0/sewer/DDATA/rtu-7/PS-02"))
        assert p.seq == (seqs[-1] + 1) % 256
        assert [
            (x.name, x.resolve(dt).value) for x, dt in zip(p.metrics, (spb.BOOLEAN, spb.INT64), strict=True)
        ] == [
            ("pump1_running", True),
            ("pump1_starts", 8),
        ]
        await sub.quiet(ALL, for_s=0.1)
        assert node.published == 301


async def test_skip_seq_makes_a_gap(mqtt_broker: MosquittoBroker) -> None:
    clock = FakeClock()
    node_state = values()
    node = edge_node(mqtt_broker, clock, node_state, values(), interval_s=1.0)
    async with Subscriber(mqtt_broker, "spBv1.0/#") as sub, online(node):
        await sub.next("spBv1.0/sewer/NBIRTH/*")
        await sub.next("spBv1.0/sewer/DBIRTH/*")
        node_state["pump1_starts"] = 8
        clock.advance(1)
        assert decoded(await sub.next("spBv1.0/sewer/NDATA/*")).seq == 2
        node.skip_seq(3)
        node_state["pump1_starts"] = 9
        clock.advance(1)
        assert decoded(await sub.next("spBv1.0/sewer/NDATA/*")).seq == 6  # 3, 4, 5 "lost"
        node_state["pump1_starts"] = 10
        clock.advance(1)
        assert decoded(await sub.next("spBv1.0/sewer/NDATA/*")).seq == 7


async def test_ndeath_will_on_kill_matches_bdseq_and_the_next_session_increments_it(
    mqtt_broker: MosquittoBroker,
) -> None:
    node = edge_node(mqtt_broker, FakeClock(), values(), values())
    node.bd_seq = 254  # the first session will be 255, the next one wraps to 0
    async with Subscriber(mqtt_broker, "spBv1.0/#") as sub, online(node):
        assert decoded(await sub.next("spBv1.0/sewer/NBIRTH/*")).find(spb.BD_SEQ).value == 255
        await sub.next("spBv1.0/sewer/DBIRTH/*")
        await node.kill(reconnect=True)
        m = await sub.next("spBv1.0/sewer/NDEATH/rtu-7", timeout=3)
        death = decoded(m)
        assert death.seq is None and death.metrics == (spb.Metric(spb.BD_SEQ, 255, spb.INT64),)
        birth = decoded(await sub.next("spBv1.0/sewer/NBIRTH/*", timeout=5))
        assert (birth.seq, birth.find(spb.BD_SEQ).value) == (0, 0)
        assert decoded(await sub.next("spBv1.0/sewer/DBIRTH/*")).seq == 1
        assert (node.sessions, node.births) == (2, 2)

        await node.kill()  # and stays dead
        assert decoded(await sub.next("spBv1.0/sewer/NDEATH/*", timeout=3)).find(spb.BD_SEQ).value == 0
        await sub.quiet(ALL, for_s=0.3)
        node.revive()
        assert decoded(await sub.next("spBv1.0/sewer/NBIRTH/*", timeout=5)).find(spb.BD_SEQ).value == 1


async def test_clean_stop_publishes_ndeath_first(mqtt_broker: MosquittoBroker) -> None:
    node = edge_node(mqtt_broker, FakeClock(), values(), values())
    async with Subscriber(mqtt_broker, "spBv1.0/#") as sub:
        async with online(node):
            await sub.next("spBv1.0/sewer/DBIRTH/*")
        death = decoded(await sub.next("spBv1.0/sewer/NDEATH/rtu-7"))
        assert death.find(spb.BD_SEQ).value == 0 and death.seq is None
        await sub.quiet("spBv1.0/sewer/NDEATH/*", for_s=0.3)  # exactly one: the will was not sent as well


async def test_ncmd_rebirth_publishes_births_again_from_seq_zero(mqtt_broker: MosquittoBroker) -> None:
    clock = FakeClock()
    node_state = values()
    node = edge_node(mqtt_broker, clock, node_state, values(), interval_s=1.0)
    async with Subscriber(mqtt_broker, "spBv1.0/#") as sub, online(node):
        await sub.next("spBv1.0/sewer/NBIRTH/*")
        await sub.next("spBv1.0/sewer/DBIRTH/*")
        node_state["pump1_starts"] = 8
        clock.advance(1)
        assert decoded(await sub.next("spBv1.0/sewer/NDATA/*")).seq == 2

        ncmd = "spBv1.0/sewer/NCMD/rtu-7"
        await sub.publish(ncmd, b"\x00garbage")  # ignored, counted
        await sub.publish(ncmd, spb.encode(spb.rebirth_request(1)))
        birth = decoded(await sub.next("spBv1.0/sewer/NBIRTH/rtu-7"))
        assert birth.seq == 0 and birth.find(spb.BD_SEQ).value == 0  # same session, same bdSeq
        assert birth.find("pump1_starts").value == 8
        assert decoded(await sub.next("spBv1.0/sewer/DBIRTH/rtu-7/PS-02")).seq == 1
        node_state["pump1_starts"] = 9
        clock.advance(1)
        assert decoded(await sub.next("spBv1.0/sewer/NDATA/*")).seq == 2
        assert (node.births, node.rebirths, node.bad_commands) == (2, 1, 1)


async def test_aliases_and_datatypes_in_data_when_asked(mqtt_broker: MosquittoBroker) -> None:
    clock = FakeClock()
    node_state = values()
    node = edge_node(
        mqtt_broker, clock, node_state, values(), interval_s=1.0, aliases=True, data_datatypes=True
    )
    async with Subscriber(mqtt_broker, "spBv1.0/#") as sub, online(node):
        birth = decoded(await sub.next("spBv1.0/sewer/NBIRTH/*"))
        dbirth = decoded(await sub.next("spBv1.0/sewer/DBIRTH/*"))
        aliases = {x.name: x.alias for x in birth.metrics[2:]}
        assert all(a is not None for a in aliases.values())
        all_aliases = list(aliases.values()) + [x.alias for x in dbirth.metrics]
        assert len(set(all_aliases)) == len(all_aliases)  # unique across the node
        node_state["wet_well_level_m"] = 3.0
        clock.advance(1)
        (m,) = decoded(await sub.next("spBv1.0/sewer/NDATA/*")).metrics
        assert (m.name, m.alias, m.value, m.datatype) == (None, aliases["wet_well_level_m"], 3.0, spb.DOUBLE)


async def test_edge_node_comes_back_with_the_next_bdseq_after_a_broker_restart(
    mqtt_broker: MosquittoBroker,
) -> None:
    mqtt_broker.stop()  # down before the node starts: it keeps trying
    node = SparkplugEdgeNode(
        mqtt_broker.broker_config(reconnect_max_s=0.5),
        spb_ctrl(),
        {"PS-01": (values, MAP), "PS-02": (values, MAP)},
        FakeClock(),
    )
    async with node:
        await asyncio.sleep(0.3)
        assert node.sessions == 0
        mqtt_broker.start()
        async with asyncio.timeout(5):
            await node.wait_online()
        assert node.bd_seq == 0
        mqtt_broker.restart()
        async with asyncio.timeout(5):
            await node.wait_online(min_sessions=2)
        assert node.births == 2
        # The births went out before we could subscribe again: ask for them.
        async with Subscriber(mqtt_broker, "spBv1.0/#") as sub:
            await sub.publish("spBv1.0/sewer/NCMD/rtu-7", spb.encode(spb.rebirth_request(1)))
            birth = decoded(await sub.next("spBv1.0/sewer/NBIRTH/rtu-7", timeout=5))
            assert (birth.seq, birth.find(spb.BD_SEQ).value) == (0, 1)
            assert decoded(await sub.next("spBv1.0/sewer/DBIRTH/rtu-7/PS-02")).seq == 1
