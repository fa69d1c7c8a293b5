"""A simulated plain-JSON MQTT device: `JsonPublisher`, one MQTT session per station.

A station is one telemetry unit, and MQTT allows one will per session. Every `interval_s` of clock time it
publishes either the batch form `{prefix}/{station}` `{"ts": ISO-8601, "values": {point: v}}`, or per point
`{prefix}/{station}/{point}` `{"v", "ts", "q"}`. After connecting it publishes `{prefix}/{station}/status`
"online" (retained, QoS 1); its will is "offline" on that topic (retained, QoS 1), and a clean `stop()`
publishes "offline" itself before disconnecting. An `async with` resource owning named background tasks and
its own `aiomqtt.Client`s (`simulators.mqtt_link`); values as in `simulators.mqtt_values`.

Fault injection: `kill()` drops the TCP connection without an MQTT DISCONNECT (the broker then sends the
will), `stop()` is the clean shutdown, `publish_raw()` sends arbitrary bytes. Counters: `published` (data
messages), `sessions` (MQTT sessions).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Mapping

import aiomqtt

from pumpwatch.core.clock import Clock
from pumpwatch.core.config.models import MetricMap, MetricSpec, MqttBroker, MqttJsonController
from pumpwatch.simulators.mqtt_link import MqttLink
from pumpwatch.simulators.mqtt_values import SampleLog, Scalar, Values, checked_interval, typed_value

__all__ = ["JsonPublisher"]

log = logging.getLogger(__name__)


async def _watch(client: aiomqtt.Client) -> None:
    """Returns never; raises MqttError when the connection is lost (aiomqtt's message iterator does)."""
    async for message in client.messages:
        log.debug("unexpected message on %s", message.topic)


class JsonPublisher:
    """Plain-JSON MQTT device(s) for the stations of an `MqttJsonController`. See the module docstring."""

    def __init__(
        self,
        broker: MqttBroker,
        ctrl: MqttJsonController,
        sources: Mapping[str, tuple[Values, MetricMap]],
        clock: Clock,
        *,
        interval_s: float | None = None,
        batch: bool = True,
        client_id: str | None = None,
        qos: int = 1,
        on_sample: SampleLog | None = None,
    ) -> None:
        self.broker = broker
        self.ctrl = ctrl
        self.clock = clock
        self.interval_s = checked_interval(ctrl, sources, interval_s)
        self.batch = batch
        self.qos = qos
        self.on_sample = on_sample
        self.published = 0  # data messages
        self.births = 0  # JSON has no births; kept for a uniform interface
        base = client_id or f"sim-json-{ctrl.id}"
        self._sources = {s.station: sources[s.station] for s in ctrl.stations}
        self._links = {
            station: MqttLink(
                f"simulators.mqtt_json[{station}]",
                broker,
                f"{base}-{station}",
                will=functools.partial(self._will, station),
                session=functools.partial(self._session, station),
            )
            for station in self._sources
        }
        self._entered = False

    @property
    def stations(self) -> list[str]:
        return list(self._links)

    @property
    def sessions(self) -> int:
        return sum(link.sessions for link in self._links.values())

    def _will(self, station: str) -> aiomqtt.Will:
        return aiomqtt.Will(self.status_topic(station), b"offline", 1, True)

    def status_topic(self, station: str) -> str:
        return f"{self.ctrl.topic_prefix}/{station}/status"

    async def __aenter__(self) -> JsonPublisher:
        if self._entered:
            raise RuntimeError("JsonPublisher is reusable but not re-entrant")
        self._entered = True
        for link in self._links.values():
            link.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.stop()
        finally:
            self._entered = False

    async def wait_online(self, min_sessions: int = 1) -> None:
        """Until every station is connected and has published "online", in its `min_sessions`-th session or
        a later one (wrap in `asyncio.timeout`)."""
        await asyncio.gather(*(link.wait_online(min_sessions) for link in self._links.values()))

    def _pick(self, station: str | None) -> list[MqttLink]:
        if station is None:
            return list(self._links.values())
        if station not in self._links:
            raise KeyError(f"unknown station {station!r}")
        return [self._links[station]]

    async def kill(self, station: str | None = None, *, reconnect: bool = False) -> None:
        """Drop the connection(s) without DISCONNECT, so the broker publishes "offline" (the will).
        With reconnect=False the station stays dead until `revive()`."""
        await asyncio.gather(*(link.kill(reconnect=reconnect) for link in self._pick(station)))

    def revive(self, station: str | None = None) -> None:
        """Start again after `kill()` (a new session)."""
        for link in self._pick(station):
            link.start()

    async def stop(self, station: str | None = None) -> None:
        """Clean stop: publish "offline" (retained) and disconnect."""

        async def goodbye(client: aiomqtt.Client, station: str) -> None:
            await client.publish(self.status_topic(station), b"offline", qos=1, retain=True, timeout=2)

        await asyncio.gather(
            *(
                link.stop(functools.partial(goodbye, station=name))
                for name, link in self._links.items()
                if station is None or name == station
            )
        )

    async def publish_raw(
        self,
        topic: str,
        payload: bytes | str,
        *,
        station: str | None = None,
        qos: int = 0,
        retain: bool = False,
    ) -> None:
        """Publish anything on the session of `station` (default: the first)."""
        link = self._pick(station or next(iter(self._links)))[0]
        await link.publish_raw(topic, payload, qos=qos, retain=retain)

    async def _session(self, station: str, client: aiomqtt.Client) -> None:
        start = self.clock.monotonic()
        await client.publish(self.status_topic(station), b"online", qos=1, retain=True)
        await self._links[station].set_online()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(_watch(client), name=f"simulators.mqtt_json[{station}].watch")
            tg.create_task(
                self._publish_loop(station, client, start), name=f"simulators.mqtt_json[{station}].publish"
            )

    async def _publish_loop(self, station: str, client: aiomqtt.Client, start: float) -> None:
        # Deadlines are absolute from the session's start, so a clock that moved before this task got to
        # sleep (a FakeClock advanced by a test) is not lost; after a long stall it publishes once, no burst.
        next_at = start
        while True:
            await self.clock.sleep(max(0.0, next_at - self.clock.monotonic()))
            await self.publish_once(station, client)
            next_at = max(next_at + self.interval_s, self.clock.monotonic())

    def _values(self, station: str) -> list[tuple[MetricSpec, Scalar | None]]:
        values_fn, mmap = self._sources[station]
        raw = values_fn()
        return [(spec, typed_value(spec, raw.get(spec.name))) for spec in mmap.metrics]

    async def publish_once(self, station: str, client: aiomqtt.Client | None = None) -> None:
        """Publish the station's current values now (the loop calls this every interval)."""
        client = client or self._links[station].client
        if client is None:
            raise RuntimeError(f"station {station}: not connected")
        now = self.clock.now()
        ts = now.isoformat(timespec="milliseconds")
        values = self._values(station)
        prefix = f"{self.ctrl.topic_prefix}/{station}"
        if self.batch:
            body: dict[str, object] = {"ts": ts, "values": {spec.wire_name: v for spec, v in values}}
            await client.publish(prefix, _json(body), qos=self.qos)
            self.published += 1
        else:
            for spec, v in values:
                body = {"v": v, "ts": ts, "q": "good" if v is not None else "bad"}
                await client.publish(f"{prefix}/{spec.wire_name}", _json(body), qos=self.qos)
                self.published += 1
        if self.on_sample is not None:
            for spec, v in values:
                self.on_sample(station, spec.name, v, now)


def _json(body: object) -> bytes:
    return json.dumps(body, allow_nan=False, separators=(",", ":")).encode()
