"""MQTT ingest end to end: simulated devices → real Mosquitto → MqttIngest, JSON and Sparkplug B."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from pumpwatch.collector.sources.mqtt import MqttIngest
from pumpwatch.core.clock import SystemClock
from pumpwatch.core.config.models import MetricMap, MqttJsonController, SparkplugController
from pumpwatch.core.sample import Quality, Sample
from pumpwatch.protocols import sparkplug as spb
from pumpwatch.simulators.mqtt_json_publisher import JsonPublisher
from pumpwatch.simulators.sparkplug_node import SparkplugEdgeNode
from tests.mqtt_broker import MosquittoBroker

pytestmark = pytest.mark.integration

MAP = MetricMap.model_validate(
    {
        "name": "mini",
        "metrics": [
            {"name": "wet_well_level_m", "unit": "m", "valid_min": -0.5, "valid_max": 10},
            {"name": "pump1_running", "type": "bool", "metric": "Pumps/Pump1/Running"},
            {"name": "pump1_starts", "type": "int", "kind": "counter"},
            {"name": "temperature_c", "type": "int", "unit": "C"},
        ],
    }
)


class Recorder:
    def __init__(self) -> None:
        self.samples: list[Sample] = []

    def __call__(self, batch: list[Sample]) -> None:
        self.samples.extend(batch)

    def latest(self, station: str) -> dict[str, Sample]:
        return {s.point: s for s in self.samples if s.station == station}


async def eventually(pred: Callable[[], bool], limit_s: float, what: str) -> float:
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > limit_s:
            raise AssertionError(f"not within {limit_s} s: {what}")
        await asyncio.sleep(0.02)
    return time.monotonic() - t0


class Values:
    """A simulated device's current values, changeable by the test."""

    def __init__(self, **v) -> None:
        self.v = {
            "wet_well_level_m": 1.25,
            "pump1_running": False,
            "pump1_starts": 7,
            "temperature_c": -5,
            **v,
        }

    def __call__(self) -> dict:
        return dict(self.v)


async def start_ingest(broker: MosquittoBroker, ctrls, rec: Recorder) -> tuple[MqttIngest, asyncio.Task]:
    ingest = MqttIngest(broker.broker_config(), ctrls, {"mini": MAP}, SystemClock(), rec)
    task = asyncio.create_task(ingest.run(), name=ingest.name)
    await asyncio.wait_for(ingest.connected.wait(), 5)
    return ingest, task


async def stop(task: asyncio.Task) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def json_ctrl(*stations: str, interval: float = 5) -> MqttJsonController:
    return MqttJsonController.model_validate(
        {
            "id": "lte",
            "protocol": "mqtt_json",
            "expected_interval_s": interval,
            "stations": [{"station": s, "map": "mini"} for s in stations],
        }
    )


async def test_json_values_death_and_bad_payloads(mqtt_broker: MosquittoBroker) -> None:
    ctrl = json_ctrl("PS-1", "PS-2")
    rec = Recorder()
    ingest, task = await start_ingest(mqtt_broker, [ctrl], rec)
    v1, v2 = Values(), Values(wet_well_level_m=2.5)
    sources = {"PS-1": (v1, MAP), "PS-2": (v2, MAP)}
    pub = JsonPublisher(mqtt_broker.broker_config(), ctrl, sources, SystemClock(), interval_s=0.1)
    async with pub:
        await pub.wait_online()
        await eventually(lambda: len(rec.latest("PS-1")) == len(rec.latest("PS-2")) == 4, 5, "both stations")
        got = rec.latest("PS-1")
        assert {k: (s.value, s.quality) for k, s in got.items()} == {
            "wet_well_level_m": (1.25, Quality.GOOD),
            "pump1_running": (0.0, Quality.GOOD),
            "pump1_starts": (7.0, Quality.GOOD),
            "temperature_c": (-5.0, Quality.GOOD),
        }
        assert rec.latest("PS-2")["wet_well_level_m"].value == 2.5
        # Hostile payloads between valid ones: each counted with its reason, the valid ones all stored.
        bad = [
            ("scada/v1/PS-1", b"{oops"),
            ("scada/v1/PS-1", b'{"values": {"wet_well_level_m": NaN}}'),
            ("scada/v1/PS-1", b'{"values": {"wet_well_level_m": "high"}}'),
            ("scada/v1/PS-1/ghost_point", b'{"v": 1}'),
            ("scada/v1/PS-1", b"{" + b" " * 300_000 + b"}"),
        ]
        before = len(rec.samples)
        for topic, payload in bad:
            await pub.publish_raw(topic, payload, station="PS-1")
            await pub.publish_raw("scada/v1/PS-2/wet_well_level_m", b'{"v": 3.0}', station="PS-2")
        await eventually(lambda: sum(ingest.rejected.values()) >= 5, 5, "five rejections")
        assert ingest.rejected["malformed JSON"] == 1
        assert ingest.rejected["not finite"] == 1  # NaN: not JSON, yet told apart from a broken payload
        assert ingest.rejected["wrong type"] == 1
        assert ingest.rejected["unknown point"] == 1
        assert ingest.rejected["too large"] == 1
        assert {src for src, _ in ingest.rejected_by} == {"lte"}  # counted by the controller it came from
        assert len(ingest.dead_letters) == 5
        await eventually(
            lambda: len([s for s in rec.samples[before:] if s.station == "PS-2" and s.value == 3.0]) == 5,
            3,
            "every valid message around the bad ones",
        )
        # Death: the MQTT will says offline; every value of PS-1 is STALE at once, PS-2 stays live.
        await pub.kill("PS-1")
        took = await eventually(
            lambda: rec.latest("PS-1")["wet_well_level_m"].quality is Quality.STALE, 2, "PS-1 stale"
        )
        assert took < 2
        assert {s.quality for s in rec.latest("PS-1").values()} == {Quality.STALE}
        assert rec.latest("PS-1")["wet_well_level_m"].value == 1.25  # stale keeps its last value
        assert rec.latest("PS-2")["wet_well_level_m"].quality is Quality.GOOD
    await stop(task)


async def test_json_silence_turns_comm_loss(mqtt_broker: MosquittoBroker) -> None:
    ctrl = json_ctrl("PS-1", interval=0.5)
    rec = Recorder()
    ingest, task = await start_ingest(mqtt_broker, [ctrl], rec)
    # A device that publishes once and then falls silent without a will (e.g. its modem hangs).
    pub = JsonPublisher(
        mqtt_broker.broker_config(), ctrl, {"PS-1": (Values(), MAP)}, SystemClock(), interval_s=60
    )
    async with pub:
        await pub.wait_online()
        await pub.publish_once("PS-1")
        await eventually(lambda: "wet_well_level_m" in rec.latest("PS-1"), 5, "first values")
        took = await eventually(
            lambda: rec.latest("PS-1")["wet_well_level_m"].quality is Quality.COMM_LOSS, 4, "comm loss"
        )
        assert 0.5 < took < 4
    await stop(task)


async def test_sparkplug_birth_data_death_gap_and_rebirth(mqtt_broker: MosquittoBroker) -> None:
    ctrl = SparkplugController.model_validate(
        {
            "id": "edge",
            "protocol": "sparkplug_b",
            "group_id": "village",
            "edge_node_id": "e1",
            "expected_interval_s": 5,
            "reorder_timeout_s": 0.3,
            "stations": [
                {"station": "MP-1", "map": "mini", "device_id": "MP-1"},
                {"station": "MP-2", "map": "mini", "device_id": "MP-2"},
            ],
        }
    )
    rec = Recorder()
    ingest, task = await start_ingest(mqtt_broker, [ctrl], rec)
    v1, v2 = Values(), Values(pump1_running=True)
    sources = {"MP-1": (v1, MAP), "MP-2": (v2, MAP)}
    node = SparkplugEdgeNode(mqtt_broker.broker_config(), ctrl, sources, SystemClock(), interval_s=0.1)
    host = ingest.spb[("village", "e1")]
    async with node:
        await node.wait_online()
        await eventually(lambda: len(rec.latest("MP-2")) == 4, 5, "births of both devices")
        assert rec.latest("MP-2")["pump1_running"].value == 1.0  # hierarchical wire name mapped
        v1.v["wet_well_level_m"] = 1.5
        v1.v["temperature_c"] = -7
        await eventually(lambda: rec.latest("MP-1")["wet_well_level_m"].value == 1.5, 3, "DDATA change")
        assert rec.latest("MP-1")["temperature_c"].value == -7.0  # signed, although data omits datatypes
        # report by exception: unchanged metrics are confirmed live by the same message
        latest = rec.latest("MP-1")
        assert latest["pump1_starts"].observed_at == latest["wet_well_level_m"].observed_at
        # A seq gap: values STALE after the reorder timeout, a rebirth is requested, the birth restores them.
        births = node.births
        node.skip_seq(3)
        v1.v["wet_well_level_m"] = 1.6
        await eventually(lambda: host.seq_gaps == 1, 3, "gap detected")
        assert any(s.quality is Quality.STALE for s in rec.samples if s.station == "MP-1")
        await eventually(lambda: node.births > births, 3, "rebirth published")
        await eventually(
            lambda: (
                rec.latest("MP-1")["wet_well_level_m"].quality is Quality.GOOD
                and rec.latest("MP-1")["wet_well_level_m"].value == 1.6
            ),
            3,
            "values restored",
        )
        # Death: the MQTT will is NDEATH with the birth's bdSeq → every value STALE within 2 s.
        await node.kill()
        took = await eventually(
            lambda: all(
                s.quality is Quality.STALE for st in ("MP-1", "MP-2") for s in rec.latest(st).values()
            ),
            2,
            "all stale after NDEATH",
        )
        assert took < 2
    await stop(task)


async def test_a_host_that_joins_late_ignores_data_before_birth_and_asks_for_one(
    mqtt_broker: MosquittoBroker,
) -> None:
    """The node was born before we subscribed: its data is ignored (counted, not a rejection) until the
    rebirth we ask for arrives; then its values are live."""
    spec = {
        "id": "edge",
        "protocol": "sparkplug_b",
        "group_id": "late",
        "edge_node_id": "e",
        "stations": [{"station": "P", "map": "mini", "device_id": "P"}],
    }
    ctrl = SparkplugController.model_validate(spec)
    v = Values()
    node = SparkplugEdgeNode(
        mqtt_broker.broker_config(), ctrl, {"P": (v, MAP)}, SystemClock(), interval_s=0.05
    )

    async def keep_changing() -> None:
        while True:
            v.v["wet_well_level_m"] = round(v.v["wet_well_level_m"] + 0.01, 3)
            await asyncio.sleep(0.05)

    async with node:
        await node.wait_online()
        changer = asyncio.create_task(keep_changing())
        try:
            # First a host that may not ask (rebirth_requests off): it sees only data, never a birth.
            deaf = SparkplugController.model_validate({**spec, "rebirth_requests": False})
            rec = Recorder()
            ingest, task = await start_ingest(mqtt_broker, [deaf], rec)
            await eventually(lambda: ingest.ignored["data before birth"] >= 3, 5, "data before birth seen")
            assert not ingest.rejected and not ingest.dead_letters and rec.latest("P") == {}
            assert ingest.spb[("late", "e")].rebirths_requested == 0
            await stop(task)
            # A normal host asks on connecting; the rebirth makes the station live.
            births = node.births
            rec = Recorder()
            ingest, task = await start_ingest(mqtt_broker, [ctrl], rec)
            await eventually(lambda: node.births > births, 5, "rebirth published")
            await eventually(lambda: len(rec.latest("P")) == 4, 5, "values live after the rebirth")
            level = v.v["wet_well_level_m"]
            await eventually(
                lambda: (rec.latest("P")["wet_well_level_m"].value or 0) >= level, 3, "data flows"
            )
            assert not ingest.rejected, dict(ingest.rejected)
            await stop(task)
        finally:
            changer.cancel()


async def test_garbage_sparkplug_payloads_are_counted(mqtt_broker: MosquittoBroker) -> None:
    ctrl = SparkplugController.model_validate(
        {
            "id": "edge",
            "protocol": "sparkplug_b",
            "group_id": "g",
            "edge_node_id": "e",
            "stations": [{"station": "P", "map": "mini"}],
        }
    )
    rec = Recorder()
    ingest, task = await start_ingest(mqtt_broker, [ctrl], rec)
    v = Values()
    node = SparkplugEdgeNode(
        mqtt_broker.broker_config(), ctrl, {"P": (v, MAP)}, SystemClock(), interval_s=0.1
    )
    async with node:
        await eventually(lambda: len(rec.latest("P")) == 4, 5, "birth")
        await node.publish_raw("spBv1.0/g/NDATA/e", b"\x08\xff\xff garbage \x00")
        bad_nan = spb.encode(spb.Payload(1, 200, (spb.metric("wet_well_level_m", float("nan")),)))
        await node.publish_raw("spBv1.0/g/NDATA/e", bad_nan)
        await eventually(lambda: sum(ingest.rejected.values()) >= 2, 3, f"two rejections {ingest.rejected}")
        assert ingest.rejected["malformed Sparkplug payload"] == 2
        v.v["wet_well_level_m"] = 0.9
        await eventually(
            lambda: rec.latest("P")["wet_well_level_m"].value == 0.9, 3, "valid data still flows"
        )
    await stop(task)


async def test_ingest_survives_a_broker_restart(mqtt_broker: MosquittoBroker) -> None:
    ctrl = json_ctrl("PS-1")
    rec = Recorder()
    ingest, task = await start_ingest(mqtt_broker, [ctrl], rec)
    v = Values()
    pub = JsonPublisher(mqtt_broker.broker_config(), ctrl, {"PS-1": (v, MAP)}, SystemClock(), interval_s=0.1)
    async with pub:
        await eventually(lambda: "wet_well_level_m" in rec.latest("PS-1"), 5, "first values")
        mqtt_broker.restart()
        v.v["wet_well_level_m"] = 2.0
        took = await eventually(
            lambda: rec.latest("PS-1")["wet_well_level_m"].value == 2.0, 10, "values again"
        )
        assert ingest.connects >= 2
        assert took < 2 + mqtt_broker.broker_config().reconnect_max_s + 3
    await stop(task)


async def test_messages_published_while_the_collector_is_away_are_not_lost(
    mqtt_broker: MosquittoBroker,
) -> None:
    """QoS 1 on a persistent session: the broker keeps what arrives while the collector restarts."""
    ctrl = json_ctrl("PS-1")
    rec = Recorder()
    ingest, task = await start_ingest(mqtt_broker, [ctrl], rec)
    await stop(task)  # the collector goes away (its session stays at the broker)
    pub = JsonPublisher(
        mqtt_broker.broker_config(), ctrl, {"PS-1": (Values(), MAP)}, SystemClock(), interval_s=3600
    )
    async with pub:
        await pub.wait_online()
        for i in range(20):
            body = f'{{"v": {i}, "ts": "2026-07-01T00:00:{i:02d}+00:00"}}'.encode()
            await pub.publish_raw("scada/v1/PS-1/pump1_starts", body, station="PS-1", qos=1)
    ingest2, task2 = await start_ingest(mqtt_broker, [ctrl], rec)  # same client id: the same session

    def backlog() -> list[float | None]:
        return [s.value for s in rec.samples if s.point == "pump1_starts" and s.observed_at.month == 7]

    await eventually(lambda: len(backlog()) >= 20, 5, "backlog")
    assert backlog() == [float(i) for i in range(20)]  # all of them, in order
    await stop(task2)
