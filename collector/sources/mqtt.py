"""MQTT ingest with aiomqtt: one connection for all MQTT controllers of a fleet (or shard).

Subscribes with QoS 1 on a persistent session (clean_session false, fixed client id), so messages
published while we reconnect wait at the broker. Reconnects with a jittered backoff capped at
`reconnect_max_s`. Every message is routed to its controller's handler (plain JSON or Sparkplug B);
a message that does not fit is counted by controller and reason, handed to `reject` (which stores it as a
dead letter, `pumpwatch.core.rejections`), kept in a bounded in-memory list and logged once per reason and
controller; the messages around it are stored. Input under no configured controller counts as source
`unconfigured` (a bounded label set: the topic is in the dead letter). Sparkplug data that arrives before
its birth (a host that joined late) is ignored and counted apart, not rejected: a rebirth brings it. A 1 s
watchdog (on the clock, running also while the broker is unreachable) turns dead stations (will, NDEATH,
DDEATH) and silent ones (nothing usable for 2 × `expected_interval_s`, e.g. because this host lost its
broker) to COMM_LOSS, and runs the Sparkplug reorder timeout.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import aiomqtt
import orjson

from pumpwatch.collector.sources import Emit, Reject
from pumpwatch.collector.sources.mqtt_common import Ignored, Rejected, StationFeed
from pumpwatch.collector.sources.mqtt_json import JsonHandler
from pumpwatch.collector.sources.sparkplug import SparkplugHandler
from pumpwatch.core.backoff import jittered
from pumpwatch.core.clock import Clock
from pumpwatch.core.config.models import MetricMap, MqttBroker, MqttJsonController, SparkplugController
from pumpwatch.core.sample import Sample
from pumpwatch.protocols import sparkplug as spb

log = logging.getLogger(__name__)

SILENCE_FACTOR = 2.0  # silent for this many expected intervals → comm loss (a heartbeat timeout)
UNCONFIGURED = "unconfigured"  # the source of a message no configured controller owns


@dataclass(frozen=True, slots=True)
class DeadLetter:
    at: datetime
    topic: str
    reason: str
    detail: str
    payload_head: bytes


class MqttIngest:
    def __init__(
        self,
        broker: MqttBroker,
        controllers: Sequence[MqttJsonController | SparkplugController],
        maps: dict[str, MetricMap],
        clock: Clock,
        emit: Emit,
        *,
        client_id: str | None = None,
        rng: random.Random | None = None,
        reject: Reject | None = None,
    ) -> None:
        self.broker = broker
        self.clock = clock
        self.emit = emit
        self.reject = reject
        self.name = "collector.mqtt"
        self.client_id = client_id or broker.client_id
        self._rng = rng or random.Random()
        self.feeds: dict[str, StationFeed] = {}
        for c in controllers:
            silence = SILENCE_FACTOR * c.expected_interval_s
            for ms in c.stations:
                names = [m.name for m in maps[ms.map].metrics]
                self.feeds[ms.station] = StationFeed(ms.station, names, clock, silence)
        self.json = {
            c.topic_prefix: JsonHandler(c, maps, self.feeds)
            for c in controllers
            if isinstance(c, MqttJsonController)
        }
        self.spb = {
            (c.group_id, c.edge_node_id): SparkplugHandler(c, maps, self.feeds, clock)
            for c in controllers
            if isinstance(c, SparkplugController)
        }
        self.received = 0
        self.accepted = 0
        self.rejected: Counter[str] = Counter()  # by reason
        self.rejected_by: Counter[tuple[str, str]] = Counter()  # by (controller id, reason)
        self.ignored: Counter[str] = Counter()  # usable later, by protocol (data before birth): not faults
        self.dead_letters: deque[DeadLetter] = deque(maxlen=1000)
        self.connects = 0
        self.connected = asyncio.Event()
        self.broker_lost_at: datetime | None = None  # None while connected (and before the first try)
        self._logged: set[tuple[str, str]] = set()
        self._client: aiomqtt.Client | None = None

    # -- the connection loop ---------------------------------------------------------------------------
    def _filters(self) -> list[str]:
        out = [f for h in self.json.values() for f in h.filters()]
        return out + [f for h in self.spb.values() for f in h.filters()]

    async def run(self) -> None:
        attempt = 0
        state_topic = f"{spb.NAMESPACE}/STATE/{self.broker.sparkplug_host_id}"
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._watchdog(), name="collector.mqtt.watchdog")
            while True:
                will = aiomqtt.Will(state_topic, self._state(False), qos=1, retain=True)
                try:
                    async with aiomqtt.Client(
                        self.broker.host,
                        self.broker.port,
                        identifier=self.client_id,
                        username=self.broker.username,
                        password=self.broker.password,
                        keepalive=self.broker.keepalive_s,
                        clean_session=False,
                        will=will,
                        timeout=10,
                        tls_context=tls_context(self.broker),
                    ) as client:
                        self._client = client
                        self.connects += 1
                        self.broker_lost_at = None
                        attempt = 0
                        for f in self._filters():
                            await client.subscribe(f, qos=1)
                        await client.publish(state_topic, self._state(True), qos=1, retain=True)
                        self.connected.set()
                        log.info(
                            "%s: connected to %s:%d, %d topic filters",
                            self.name,
                            self.broker.host,
                            self.broker.port,
                            len(self._filters()),
                        )
                        for h in self.spb.values():  # ask every node for a fresh birth: we may have missed it
                            h._ask_rebirth("host (re)connected")
                        await self._flush_outbox()
                        async for message in client.messages:
                            self._on_message(str(message.topic), message.payload)
                            await self._flush_outbox()
                except aiomqtt.MqttError as exc:
                    self.connected.clear()
                    self._client = None
                    # no alarm here: each station's silence bound runs on from its last message
                    if self.broker_lost_at is None:
                        self.broker_lost_at = self.clock.now()
                    attempt += 1
                    delay = jittered(attempt, self.broker.reconnect_max_s, self._rng)
                    log.warning(
                        "%s: broker connection lost (%s); reconnecting in %.1f s", self.name, exc, delay
                    )
                    await asyncio.sleep(delay)

    def _state(self, online: bool) -> bytes:
        return orjson.dumps({"online": online, "timestamp": int(self.clock.now().timestamp() * 1000)})

    async def _flush_outbox(self) -> None:
        client = self._client
        if client is None:
            return
        for h in self.spb.values():
            while h.outbox:
                topic, payload = h.outbox.pop(0)
                await client.publish(topic, payload, qos=0)

    async def _watchdog(self) -> None:
        while True:
            await self.clock.sleep(1.0)
            now = self.clock.now()
            out: list[Sample] = []
            for feed in self.feeds.values():
                lost = feed.check_silence(now)
                if lost:
                    broker = (
                        f"; no broker connection since {self.broker_lost_at:%H:%M:%S}Z"
                        if (self.broker_lost_at is not None and not feed.dead)
                        else ""
                    )
                    log.warning("%s: %s communication lost (%s%s)", self.name, feed.station, feed.why, broker)
                out += lost
            for h in self.spb.values():
                out += h.tick(now)
            if out:
                self.emit(out)
            await self._flush_outbox()

    # -- one message -----------------------------------------------------------------------------------
    def _on_message(self, topic: str, payload: object) -> None:
        self.received += 1
        now = self.clock.now()
        data = payload if isinstance(payload, bytes | bytearray) else str(payload or "").encode()
        source = UNCONFIGURED

        def reject(reason: str, detail: str) -> None:
            self._reject(source, topic, reason, detail, bytes(data), now)

        try:
            if topic.startswith(spb.NAMESPACE + "/"):
                t = spb.Topic.parse(topic)
                h = self.spb.get((t.group_id, t.edge_node_id))
                if h is None:
                    raise Rejected(
                        "unknown source", f"edge node {t.group_id}/{t.edge_node_id} is not configured"
                    )
                source = h.ctrl.id
                samples = h.handle(t, bytes(data), now, reject)
            else:
                prefix, rest = self._route(topic)
                source = self.json[prefix].ctrl.id
                samples = self.json[prefix].handle(rest, bytes(data), now, reject)
        except spb.SparkplugError as exc:
            reject("malformed topic", str(exc))
            return
        except Ignored as exc:
            self.ignored[exc.reason] += 1
            self._log_once(source, exc.reason, f"{topic}: {exc.detail}", "ignored")
            return
        except Rejected as exc:
            reject(exc.reason, exc.detail)
            return
        except Exception as exc:  # a bug must not kill ingest: count it like a bad message
            log.exception("%s: error handling %s", self.name, topic)
            reject("internal error", f"{type(exc).__name__}: {exc}")
            return
        self.accepted += 1
        if samples:
            self.emit(samples)

    def _route(self, topic: str) -> tuple[str, str]:
        for prefix in self.json:
            if topic.startswith(prefix + "/"):
                return prefix, topic[len(prefix) + 1 :]
        raise Rejected("unknown source", f"no controller publishes under {topic!r}")

    def _reject(self, source: str, topic: str, reason: str, detail: str, data: bytes, now: datetime) -> None:
        self.rejected[reason] += 1
        self.rejected_by[(source, reason)] += 1
        self.dead_letters.append(DeadLetter(now, topic, reason, detail, data[:512]))
        self._log_once(source, reason, f"{topic}: {detail}", "rejected")
        if self.reject is not None:
            try:
                self.reject(source, topic, reason, detail, data)
            except Exception:  # keeping it must never cost the messages around it
                log.exception("%s: cannot keep a rejected message of %s", self.name, source)

    def _log_once(self, source: str, reason: str, what: str, verb: str) -> None:
        key = (source, reason)
        if key not in self._logged:  # once per source and reason; the counters keep the rest
            self._logged.add(key)
            log.log(
                logging.WARNING if verb == "rejected" else logging.INFO,
                "%s: %s %s on %s (further ones of this kind are only counted)",
                self.name,
                verb,
                reason,
                what,
            )


def tls_context(broker: MqttBroker) -> ssl.SSLContext | None:
    """TLS 1.2 or newer to the broker, verifying its certificate; our own certificate if configured."""
    if broker.tls is None:
        return None
    ctx = ssl.create_default_context(cafile=str(broker.tls.ca) if broker.tls.ca else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if broker.tls.cert:
        ctx.load_cert_chain(str(broker.tls.cert), str(broker.tls.key) if broker.tls.key else None)
    return ctx
