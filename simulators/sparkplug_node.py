"""A simulated Sparkplug B edge node: `SparkplugEdgeNode`, one MQTT session for the node and its devices.

CONNECT carries the will NDEATH(bdSeq); then NBIRTH (seq 0, bdSeq, Node Control/Rebirth, the node-level
metrics) and one DBIRTH per device; then every `interval_s` NDATA/DDATA with only the metrics that changed
(report by exception), seq counting 0..255 across all of the node's messages. `Node Control/Rebirth` = true
on NCMD re-publishes the births (seq from 0, same bdSeq). bdSeq starts at 0 and increments per MQTT session,
wrapping 255 → 0. An `async with` resource owning named background tasks and its own `aiomqtt.Client`
(`simulators.mqtt_link`); values as in `simulators.mqtt_values`.

Fault injection: `kill()` drops the TCP connection without an MQTT DISCONNECT (the broker then sends the
will), `stop()` is the clean shutdown, `skip_seq(n)` makes the next seq jump, `device_death(id)` publishes
DDEATH and keeps that device quiet until the next births, `publish_raw()` sends arbitrary bytes. Counters:
`published` (data messages), `births` (NBIRTH count), `sessions` (MQTT sessions).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from datetime import datetime

import aiomqtt

from pumpwatch.core.clock import Clock
from pumpwatch.core.config.models import MetricMap, MetricSpec, MqttBroker, SparkplugController
from pumpwatch.protocols import sparkplug as spb
from pumpwatch.simulators.mqtt_link import MqttLink
from pumpwatch.simulators.mqtt_values import SampleLog, Scalar, Values, checked_interval, typed_value

__all__ = ["SparkplugEdgeNode"]

log = logging.getLogger(__name__)

_SPB_TYPE = {"bool": spb.BOOLEAN, "int": spb.INT64, "float": spb.DOUBLE}


def _ms(t: datetime) -> int:
    return round(t.timestamp() * 1000)


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
        self.interval_s = checked_interval(ctrl, sources, interval_s)
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
        self._link = MqttLink(
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
