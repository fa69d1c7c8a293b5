"""Simulated devices that publish point values over MQTT: plain JSON, or as a Sparkplug B edge node.

Both take their values from callables (a simulated station's `point_values()`), never from collector code,
and both are `async with` resources owning named background tasks and their own `aiomqtt.Client`s.

- `JsonPublisher`: one MQTT session per station (a station is one telemetry unit, and MQTT allows one will per
  session). Every `interval_s` of clock time it publishes either the batch form `{prefix}/{station}`
  `{"ts": ISO-8601, "values": {point: v}}`, or per point `{prefix}/{station}/{point}` `{"v", "ts", "q"}`.
  After connecting it publishes `{prefix}/{station}/status` "online" (retained, QoS 1); its will is "offline"
  on that topic (retained, QoS 1), and a clean `stop()` publishes "offline" itself before disconnecting.
- `SparkplugEdgeNode`: one session for the node. CONNECT carries the will NDEATH(bdSeq); then NBIRTH (seq 0,
  bdSeq, Node Control/Rebirth, the node-level metrics) and one DBIRTH per device; then every `interval_s`
  NDATA/DDATA with only the metrics that changed (report by exception), seq counting 0..255 across all of the
  node's messages. `Node Control/Rebirth` = true on NCMD re-publishes the births (seq from 0, same bdSeq).
  bdSeq starts at 0 and increments per MQTT session, wrapping 255 → 0.

Wire names are `MetricSpec.wire_name`; values are converted per `MetricSpec.type` (bool, int rounded, float);
a missing, None or non-finite value is sent as null (JSON `null` with `"q": "bad"`; Sparkplug `is_null`).

Reconnecting is a visible loop with jittered backoff `random.uniform(0, 1.5 ** min(10, attempt))`, capped at
`broker.reconnect_max_s`, in real time (the broker lives in real time, even when the clock is fake).
Publishing intervals use the clock.

Fault injection: `kill()` drops the TCP connection without an MQTT DISCONNECT (the broker then sends the
will), `stop()` is the clean shutdown, `SparkplugEdgeNode.skip_seq(n)` makes the next seq jump,
`SparkplugEdgeNode.device_death(id)` publishes DDEATH and keeps that device quiet until the next births,
`publish_raw()` sends arbitrary bytes. Counters: `published` (data messages), `births` (NBIRTH count),
`sessions` (MQTT sessions).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
import socket
from collections.abc import Callable, Coroutine, Iterable, Mapping
from datetime import datetime
from typing import Any

import aiomqtt

from pumpwatch import sparkplug as spb
from pumpwatch.clock import Clock
from pumpwatch.config.models import MetricMap, MetricSpec, MqttBroker, MqttJsonController, SparkplugController

__all__ = ["JsonPublisher", "SampleLog", "SparkplugEdgeNode", "Values", "backoff_delay"]

log = logging.getLogger(__name__)

Scalar = float | int | bool
Values = Callable[[], Mapping[str, Scalar | None]]
Source = tuple[Values, MetricMap]
# Called once per value put on the wire: (station, point name, value, timestamp) — a checker's log.
SampleLog = Callable[[str, str, Scalar | None, datetime], None]

_SPB_TYPE = {"bool": spb.BOOLEAN, "int": spb.INT64, "float": spb.DOUBLE}


def backoff_delay(attempt: int, cap: float) -> float:
    return min(cap, random.uniform(0, 1.5 ** min(10, attempt)))


def typed_value(spec: MetricSpec, value: object) -> Scalar | None:
    """`value` as the metric's type; None when missing or not a finite number."""
    if value is None:
        return None
    if spec.type == "bool":
        return bool(value)
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if not math.isfinite(f):
        return None
    return round(f) if spec.type == "int" else f


def _ms(t: datetime) -> int:
    return round(t.timestamp() * 1000)


class _Link:
    """One MQTT session kept alive: connect, run the session, reconnect with backoff until closed.

    `will()` is called before every connection attempt (the will may change per session: bdSeq). `session`
    runs while connected; it returns or raises MqttError when the connection is gone. `kill()` shuts the
    socket down under paho (no DISCONNECT leaves), so the broker publishes the will."""

    def __init__(
        self,
        name: str,
        broker: MqttBroker,
        identifier: str,
        will: Callable[[], aiomqtt.Will],
        session: Callable[[aiomqtt.Client], Coroutine[Any, Any, None]],
    ) -> None:
        self.name = name
        self.broker = broker
        self.identifier = identifier
        self._will = will
        self._session = session
        self.client: aiomqtt.Client | None = None  # set while a session is up
        self.online = False  # True once the session's opening messages are out, until it ends
        self._changed = asyncio.Condition()
        self.sessions = 0
        self._task: asyncio.Task[None] | None = None
        self._dead = False  # kill(): do not reconnect

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self.running:
            return
        self._dead = False
        self._task = asyncio.create_task(self._run(), name=self.name)
        self._task.add_done_callback(self._crashed)

    def _crashed(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: crashed", self.name, exc_info=task.exception())

    async def _run(self) -> None:
        attempt = 0
        while not self._dead:
            client = aiomqtt.Client(
                self.broker.host,
                self.broker.port,
                identifier=self.identifier,
                username=self.broker.username,
                password=self.broker.password,
                will=self._will(),
                keepalive=self.broker.keepalive_s,
                clean_session=True,
                timeout=10,
            )
            lost: BaseException | None = None
            try:
                async with client:
                    attempt = 0
                    self.client = client
                    self.sessions += 1
                    log.debug("%s: connected to %s:%d", self.name, self.broker.host, self.broker.port)
                    await self._session(client)
            except* aiomqtt.MqttError as eg:
                lost = eg.exceptions[0]
            finally:
                self.client = None
                self.online = False
            if self._dead:
                break
            delay = backoff_delay(attempt, self.broker.reconnect_max_s)
            attempt += 1
            log.info("%s: connection lost (%s); reconnecting in %.2f s", self.name, lost, delay)
            await asyncio.sleep(delay)

    async def set_online(self) -> None:
        self.online = True
        async with self._changed:
            self._changed.notify_all()

    async def wait_online(self, min_sessions: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.online and self.sessions >= min_sessions)

    def drop(self) -> bool:
        """Shut the TCP connection down without DISCONNECT; False if there was none."""
        client = self.client
        sock = client._client.socket() if client is not None else None  # noqa: SLF001 - paho's socket
        if sock is None:
            return False
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)  # FIN to the broker; paho sees EOF and reports the loss
        return True

    async def kill(self, *, reconnect: bool) -> None:
        self._dead = not reconnect
        dropped = self.drop()
        if reconnect or self._task is None:
            return
        if not dropped:  # between sessions: nothing to drop, just stop trying
            self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 5.0)
            except TimeoutError:
                await _cancel_until_done(self._task)

    async def stop(self, goodbye: Callable[[aiomqtt.Client], Coroutine[Any, Any, None]] | None) -> None:
        """Clean shutdown: `goodbye(client)` while still connected, then cancel: aiomqtt's `__aexit__` sends
        DISCONNECT, so the broker drops the will."""
        self._dead = True
        client = self.client
        if goodbye is not None and client is not None:
            try:
                await goodbye(client)
            except aiomqtt.MqttError as exc:
                log.warning("%s: goodbye message not sent: %s", self.name, exc)
        if self._task is not None:
            await _cancel_until_done(self._task)
            self._task = None

    async def publish_raw(self, topic: str, payload: bytes | str, *, qos: int, retain: bool) -> None:
        if self.client is None:
            raise RuntimeError(f"{self.name}: not connected")
        await self.client.publish(topic, payload, qos=qos, retain=retain)


async def _cancel_until_done(task: asyncio.Task[None]) -> None:
    """Cancel, and cancel again while it still runs: Python 3.11's `wait_for` (inside aiomqtt) can swallow a
    cancellation that races with the awaited operation finishing, and the task then waits forever."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.5)
    if not task.cancelled() and task.exception() is not None:
        log.debug("%s ended with %r", task.get_name(), task.exception())


async def _watch(client: aiomqtt.Client) -> None:
    """Returns never; raises MqttError when the connection is lost (aiomqtt's message iterator does)."""
    async for message in client.messages:
        log.debug("unexpected message on %s", message.topic)


def _checked_interval(
    ctrl: MqttJsonController | SparkplugController, sources: Mapping[str, object], interval_s: float | None
) -> float:
    """Every configured station has a value source; the publish interval (default: half the expected)."""
    missing = [s.station for s in ctrl.stations if s.station not in sources]
    if missing:
        raise ValueError(f"no value source for station(s) {', '.join(missing)}")
    interval = interval_s if interval_s is not None else ctrl.expected_interval_s / 2
    if interval <= 0:
        raise ValueError("interval_s must be > 0")
    return interval


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
        self.interval_s = _checked_interval(ctrl, sources, interval_s)
        self.batch = batch
        self.qos = qos
        self.on_sample = on_sample
        self.published = 0  # data messages
        self.births = 0  # JSON has no births; kept for a uniform interface
        base = client_id or f"sim-json-{ctrl.id}"
        self._sources = {s.station: sources[s.station] for s in ctrl.stations}
        self._links = {
            station: _Link(
                f"simulators.mqtt_json[{station}]",
                broker,
                f"{base}-{station}",
                will=lambda station=station: aiomqtt.Will(self.status_topic(station), b"offline", 1, True),
                session=lambda client, station=station: self._session(station, client),
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

    def _pick(self, station: str | None) -> list[_Link]:
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
                link.stop(lambda c, s=name: goodbye(c, s))
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
            body = {"ts": ts, "values": {spec.wire_name: v for spec, v in values}}
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


class _Group:
    """The metrics of one birth: the node's own (device None) or one device's."""

    def __init__(self, station: str, device_id: str | None, values: Values, mmap: MetricMap) -> None:
        self.station = station
        self.device_id = device_id
        self.values = values
        self.specs = list(mmap.metrics)
        self.aliases: dict[str, int] = {}
        self.last: dict[str, Scalar | None] = {}

    def current(self) -> dict[str, Scalar | None]:
        raw = self.values()
        return {spec.wire_name: typed_value(spec, raw.get(spec.name)) for spec in self.specs}


class SparkplugEdgeNode:
    """A Sparkplug B edge node for the stations of a `SparkplugController`. See the module docstring.

    `aliases=True` gives every metric an alias: births carry name and alias, data messages the alias only.
    `data_datatypes=True` repeats each metric's datatype in NDATA/DDATA (the spec says SHOULD NOT; many
    implementations do it anyway)."""

    def __init__(
        self,
        broker: MqttBroker,
        ctrl: SparkplugController,
        sources: Mapping[str, tuple[Values, MetricMap]],
        clock: Clock,
        *,
        interval_s: float | None = None,
        client_id: str | None = None,
        aliases: bool = False,
        data_datatypes: bool = False,
        on_sample: SampleLog | None = None,
    ) -> None:
        self.broker = broker
        self.ctrl = ctrl
        self.clock = clock
        self.interval_s = _checked_interval(ctrl, sources, interval_s)
        self.aliases = aliases
        self.data_datatypes = data_datatypes
        self.on_sample = on_sample
        self._node: _Group | None = None
        self._devices: dict[str, _Group] = {}
        for s in ctrl.stations:
            values, mmap = sources[s.station]
            group = _Group(s.station, s.device_id, values, mmap)
            if s.device_id is None:
                self._node = group
            else:
                self._devices[s.device_id] = group
        next_alias = 2  # 0 and 1: bdSeq and Node Control/Rebirth (they carry none; kept free for clarity)
        for group in self._groups():
            for spec in group.specs:
                group.aliases[spec.wire_name] = next_alias
                next_alias += 1
        self.published = 0  # NDATA + DDATA messages
        self.births = 0  # NBIRTH messages (one per session, plus one per rebirth)
        self.rebirths = 0  # rebirth requests honoured
        self.bad_commands = 0  # NCMD payloads that did not decode
        self.bd_seq = -1  # bdSeq of the current (or last) session; the first session uses 0
        self._pending_bd_seq = 0  # the bdSeq in the will of the connection being attempted
        self.seq = 0  # seq of the last message sent
        self._skip = 0
        self._dead_devices: set[str] = set()  # device_death(): no data until the next births
        self._lock = asyncio.Lock()  # one message at a time, so seq order is wire order
        self._entered = False
        self._link = _Link(
            f"simulators.sparkplug[{ctrl.group_id}/{ctrl.edge_node_id}]",
            broker,
            client_id or f"sim-spb-{ctrl.group_id}-{ctrl.edge_node_id}",
            will=self._will,
            session=self._session,
        )

    # --- topics --------------------------------------------------------------------------------------

    def topic(self, message_type: str, device_id: str | None = None) -> str:
        return str(spb.Topic(self.ctrl.group_id, message_type, self.ctrl.edge_node_id, device_id))

    @property
    def sessions(self) -> int:
        return self._link.sessions

    def _groups(self) -> Iterable[_Group]:
        if self._node is not None:
            yield self._node
        yield from self._devices.values()

    # --- lifecycle -----------------------------------------------------------------------------------

    async def __aenter__(self) -> SparkplugEdgeNode:
        if self._entered:
            raise RuntimeError("SparkplugEdgeNode is reusable but not re-entrant")
        self._entered = True
        self._link.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.stop()
        finally:
            self._entered = False

    async def wait_online(self, min_sessions: int = 1) -> None:
        """Until connected and the births are out, in the `min_sessions`-th session or a later one (wrap in
        `asyncio.timeout`)."""
        await self._link.wait_online(min_sessions)

    async def kill(self, *, reconnect: bool = False) -> None:
        """Drop the connection without DISCONNECT: the broker publishes NDEATH (the will) with this session's
        bdSeq. With reconnect=True a new session (bdSeq + 1) follows after the backoff; otherwise the node
        stays dead until `revive()`."""
        await self._link.kill(reconnect=reconnect)

    def revive(self) -> None:
        self._link.start()

    async def stop(self) -> None:
        """Clean stop: publish NDEATH (QoS 1), then DISCONNECT."""

        async def goodbye(client: aiomqtt.Client) -> None:
            death = spb.node_death(self.bd_seq, _ms(self.clock.now()))
            await client.publish(self.topic("NDEATH"), spb.encode(death), qos=1, timeout=2)

        await self._link.stop(goodbye)

    def skip_seq(self, n: int = 1) -> None:
        """The next NDATA/DDATA/DBIRTH's seq jumps by `n` more than it should, as if n messages were lost."""
        if n < 0:
            raise ValueError("n must be >= 0")
        self._skip += n

    async def publish_raw(
        self, topic: str, payload: bytes | str, *, qos: int = 0, retain: bool = False
    ) -> None:
        await self._link.publish_raw(topic, payload, qos=qos, retain=retain)

    async def device_death(self, device_id: str) -> None:
        """The device behind the node is gone (its PLC stopped answering the node): DDEATH, then nothing
        from it until the next births (`rebirth()`, a rebirth request or a new session)."""
        if device_id not in self._devices:
            raise KeyError(f"unknown device {device_id!r}")
        client = self._link.client
        if client is None:
            raise RuntimeError("not connected")
        async with self._lock:
            self._dead_devices.add(device_id)
            payload = spb.Payload(_ms(self.clock.now()), self._take_seq(), ())
            await client.publish(self.topic("DDEATH", device_id), spb.encode(payload))

    async def rebirth(self) -> None:
        """Publish NBIRTH + DBIRTHs again now, as on a rebirth request."""
        if self._link.client is None:
            raise RuntimeError("not connected")
        async with self._lock:
            await self._births(self._link.client)

    # --- session -------------------------------------------------------------------------------------

    def _will(self) -> aiomqtt.Will:
        # The session this CONNECT opens gets bdSeq + 1 (wrapping 255 → 0); it counts once the broker accepts.
        self._pending_bd_seq = spb.next_seq(self.bd_seq)
        payload = spb.encode(spb.node_death(self._pending_bd_seq))
        return aiomqtt.Will(self.topic("NDEATH"), payload, 1, False)

    async def _session(self, client: aiomqtt.Client) -> None:
        self.bd_seq = self._pending_bd_seq
        start = self.clock.monotonic()
        await client.subscribe(self.topic("NCMD"), qos=1)
        async with self._lock:
            await self._births(client)
        await self._link.set_online()
        name = self._link.name
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._commands(client), name=f"{name}.commands")
            tg.create_task(self._publish_loop(client, start), name=f"{name}.publish")

    def _take_seq(self) -> int:
        self.seq = (self.seq + 1 + self._skip) % 256
        self._skip = 0
        return self.seq

    def _metric(
        self, group: _Group, spec: MetricSpec, value: Scalar | None, ts: int, *, birth: bool
    ) -> spb.Metric:
        alias = group.aliases[spec.wire_name] if self.aliases else None
        name = spec.wire_name if birth or not self.aliases else None
        datatype = _SPB_TYPE[spec.type] if birth or self.data_datatypes else spb.UNKNOWN
        return spb.Metric(name, value, datatype, alias=alias, timestamp_ms=ts, is_null=value is None)

    async def _births(self, client: aiomqtt.Client) -> None:
        """NBIRTH (seq 0) then a DBIRTH per device; every metric with its current value. Lock held."""
        now = self.clock.now()
        ts = _ms(now)
        node_metrics: list[spb.Metric] = []
        if self._node is not None:
            values = self._node.current()
            node_metrics = [
                self._metric(self._node, s, values[s.wire_name], ts, birth=True) for s in self._node.specs
            ]
            self._node.last = values
            self._log(self._node, values, now)
        self._skip = 0  # NBIRTH is always 0
        self.seq = 0
        self._dead_devices.clear()
        await client.publish(self.topic("NBIRTH"), spb.encode(spb.node_birth(self.bd_seq, node_metrics, ts)))
        self.births += 1
        for device_id, group in self._devices.items():
            values = group.current()
            metrics = tuple(self._metric(group, s, values[s.wire_name], ts, birth=True) for s in group.specs)
            payload = spb.Payload(ts, self._take_seq(), metrics)
            await client.publish(self.topic("DBIRTH", device_id), spb.encode(payload))
            group.last = values
            self._log(group, values, now)

    async def _publish_loop(self, client: aiomqtt.Client, start: float) -> None:
        next_at = start + self.interval_s  # absolute deadlines: see JsonPublisher._publish_loop
        while True:
            await self.clock.sleep(max(0.0, next_at - self.clock.monotonic()))
            async with self._lock:
                await self._publish_changes(client)
            next_at = max(next_at + self.interval_s, self.clock.monotonic())

    async def _publish_changes(self, client: aiomqtt.Client) -> None:
        now = self.clock.now()
        ts = _ms(now)
        for group in self._groups():
            if group.device_id in self._dead_devices:
                continue
            values = group.current()
            changed = {k: v for k, v in values.items() if k not in group.last or group.last[k] != v}
            if not changed:
                continue
            metrics = tuple(
                self._metric(group, s, changed[s.wire_name], ts, birth=False)
                for s in group.specs
                if s.wire_name in changed
            )
            payload = spb.Payload(ts, self._take_seq(), metrics)
            mtype = "NDATA" if group.device_id is None else "DDATA"
            await client.publish(self.topic(mtype, group.device_id), spb.encode(payload))
            self.published += 1
            group.last = values
            self._log(group, changed, now)

    async def _commands(self, client: aiomqtt.Client) -> None:
        ncmd = self.topic("NCMD")
        async for message in client.messages:
            if message.topic.value != ncmd or not isinstance(message.payload, bytes | bytearray):
                continue
            try:
                payload = spb.decode(bytes(message.payload))
            except spb.SparkplugError as exc:
                self.bad_commands += 1
                log.warning("%s: bad NCMD ignored: %s", self._link.name, exc)
                continue
            cmd = payload.find(spb.REBIRTH)
            if cmd is not None and cmd.value is True:
                self.rebirths += 1
                log.info("%s: rebirth requested", self._link.name)
                async with self._lock:
                    await self._births(client)

    def _log(self, group: _Group, values: Mapping[str, Scalar | None], now: datetime) -> None:
        if self.on_sample is None:
            return
        for spec in group.specs:
            if spec.wire_name in values:
                self.on_sample(group.station, spec.name, values[spec.wire_name], now)
