"""Sparkplug B host application: births, data, deaths, sequence numbers, rebirth.

Per edge node:
- NBIRTH (seq 0, bdSeq) makes the node live; DBIRTH each device. Aliases from births map later metrics.
- NDATA/DDATA must follow seq + 1 (mod 256). A message ahead of the expected seq waits up to
  `reorder_timeout_s` for the missing ones; if they never come, the node's values turn STALE, a rebirth
  is requested (NCMD Node Control/Rebirth) and data is ignored until the new NBIRTH restores them.
- NDEATH (the node's MQTT will) turns every value of the node STALE at once and is a definitive loss: the
  feeds report COMM_LOSS within a second (the comm-loss alarm). A death whose bdSeq is behind the birth's
  belongs to an older session (a will delivered late) and is ignored; one with the birth's bdSeq or ahead
  of it is taken (some nodes, e.g. pysparkplug 0.6's clean disconnect, send the next session's bdSeq).
  DDEATH does the same per device. A seq gap turns values STALE too, but is no death: COMM_LOSS follows only
  if no rebirth comes within the station's silence bound.
- Data carries only changed metrics (report by exception); each message also confirms the others live.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pumpwatch.collector.sources.mqtt_common import Ignored, PartReject, Rejected, StationFeed
from pumpwatch.collector.sources.mqtt_json import coerce, quality_of
from pumpwatch.core.clock import Clock
from pumpwatch.core.config.models import MetricMap, MetricSpec, SparkplugController
from pumpwatch.core.sample import Quality, Sample
from pumpwatch.protocols import sparkplug as spb

log = logging.getLogger(__name__)

SEQ_WINDOW = 128  # a seq up to this far ahead is "later", further is "old or duplicate"


@dataclass
class _Device:
    station: str
    feed: StationFeed
    by_wire: dict[str, MetricSpec]
    aliases: dict[int, str] = field(default_factory=dict)
    datatypes: dict[str, int] = field(default_factory=dict)  # from the birth: data may omit them
    born: bool = False


class SparkplugHandler:
    def __init__(
        self,
        ctrl: SparkplugController,
        maps: dict[str, MetricMap],
        feeds: dict[str, StationFeed],
        clock: Clock,
    ) -> None:
        self.ctrl = ctrl
        self.clock = clock
        self.devices: dict[str | None, _Device] = {
            ms.device_id: _Device(
                ms.station, feeds[ms.station], {m.wire_name: m for m in maps[ms.map].metrics}
            )
            for ms in ctrl.stations
        }
        self.born = False
        self.bd_seq: int | None = None
        self.expected_seq = 0  # the next data message's seq (meaningful once born: the NBIRTH sets it)
        self.pending: dict[int, tuple[spb.Topic, spb.Payload, datetime]] = {}
        self.gap_since: float | None = None
        self.outbox: list[tuple[str, bytes]] = []  # commands to publish (rebirth requests)
        self._rebirth_asked_at: float | None = None
        self.seq_gaps = 0
        self.rebirths_requested = 0

    # -- subscription ----------------------------------------------------------------------------------
    def filters(self) -> list[str]:
        g, e = self.ctrl.group_id, self.ctrl.edge_node_id
        return [f"{spb.NAMESPACE}/{g}/+/{e}", f"{spb.NAMESPACE}/{g}/+/{e}/+"]

    # -- messages --------------------------------------------------------------------------------------
    def handle(self, topic: spb.Topic, data: bytes, now: datetime, reject: PartReject) -> list[Sample]:
        kind = topic.message_type
        if kind in ("NCMD", "DCMD", "STATE"):
            return []  # our own commands echo back to us; not data
        if not data and kind not in ("NDEATH", "DDEATH"):  # a death needs no payload to mean death
            raise Rejected("empty", f"{topic}: {kind} with no payload")
        try:
            payload = spb.decode(data)
        except spb.SparkplugError as exc:
            raise Rejected("malformed Sparkplug payload", str(exc)) from None
        if kind == "NDEATH":
            return self._node_death(payload, now)
        if kind == "NBIRTH":
            return self._node_birth(payload, now, reject)
        if not self.born:
            self._ask_rebirth("data before birth")
            raise Ignored("data before birth", f"{topic}: no NBIRTH in this session yet; rebirth requested")
        if payload.seq is None:
            raise Rejected("malformed Sparkplug payload", f"{topic}: {kind} without seq")
        if payload.seq != self.expected_seq:
            ahead = (payload.seq - self.expected_seq) % 256
            if 0 < ahead < SEQ_WINDOW:
                self.pending[payload.seq] = (topic, payload, now)
                if self.gap_since is None:
                    self.gap_since = self.clock.monotonic()
                return self._gap_if_due(now) if self.ctrl.reorder_timeout_s == 0 else []
            raise Rejected(
                "old or duplicate seq", f"{topic}: seq {payload.seq}, expected {self.expected_seq}"
            )
        out = self._apply(topic, payload, now, reject)
        while self.born and self.expected_seq in self.pending:
            t, p, at = self.pending.pop(self.expected_seq)
            out += self._apply(t, p, at, reject)
        if not self.pending:
            self.gap_since = None
        return out

    def _apply(
        self, topic: spb.Topic, payload: spb.Payload, now: datetime, reject: PartReject
    ) -> list[Sample]:
        assert payload.seq is not None  # `handle` rejects data without a seq before this
        self.expected_seq = spb.next_seq(payload.seq)
        dev = self.devices.get(topic.device_id)
        if dev is None:
            if topic.device_id is None:  # node-level metrics with no station mapped: liveness only
                return []
            raise Rejected("unknown device", f"{topic}: device {topic.device_id!r} is not configured")
        kind = topic.message_type
        if kind == "DBIRTH":
            dev.aliases.clear()
            dev.datatypes.clear()
            dev.born = True
            dev.feed.heard()
            return self._metrics(dev, payload, now, reject, birth=True)
        if kind == "DDEATH":
            dev.born = False
            return dev.feed.died(now, "DDEATH")
        if kind in ("NDATA", "DDATA"):
            if kind == "DDATA" and not dev.born:
                self._ask_rebirth(f"DDATA before DBIRTH of {topic.device_id}")
                raise Ignored("data before birth", f"{topic}: device not born; rebirth requested")
            dev.feed.heard()
            return self._metrics(dev, payload, now, reject, birth=False)
        raise Rejected("unexpected message", f"{topic}: {kind}")

    def _metrics(
        self, dev: _Device, payload: spb.Payload, now: datetime, reject: PartReject, *, birth: bool
    ) -> list[Sample]:
        base_ts = payload.timestamp_ms
        changes: dict[str, tuple[float | None, Quality]] = {}
        historical: list[Sample] = []
        at = _ms(base_ts) if base_ts else now
        for m in payload.metrics:
            name = m.name
            if birth and m.alias is not None and name:
                dev.aliases[m.alias] = name
            if not name and m.alias is not None:
                name = dev.aliases.get(m.alias)
            if not name:
                reject("unknown point", f"{dev.station}: alias {m.alias} was not in the birth")
                continue
            if birth:
                dev.datatypes[name] = m.datatype
            elif name in dev.datatypes:
                try:  # data messages may leave the datatype out (the spec says they should): sign ints etc.
                    m = m.resolve(dev.datatypes[name])
                except spb.SparkplugError as exc:
                    reject("wrong type", str(exc))
                    continue
            if name == spb.BD_SEQ or name.startswith(("Node Control/", "Properties/", "Device Control/")):
                continue
            spec = dev.by_wire.get(name)
            if spec is None:
                reject("unknown point", f"{dev.station}: metric {name!r:.80} is not in its map")
                continue
            try:
                value = None if m.is_null else coerce(spec, m.value)
            except Rejected as exc:
                reject(exc.reason, exc.detail)
                continue
            q = quality_of(spec, value, Quality.GOOD)
            if m.is_historical:  # store-and-forward backfill: history, never the live value
                ts = _ms(m.timestamp_ms) if m.timestamp_ms else at
                historical.append(Sample(dev.station, spec.name, value, ts, q))
            else:
                changes[spec.name] = (value, q)
        return historical + dev.feed.update(changes, at, hold=not birth)

    def _node_birth(self, payload: spb.Payload, now: datetime, reject: PartReject) -> list[Sample]:
        bd = next((m.value for m in payload.metrics if m.name == spb.BD_SEQ), None)
        if not isinstance(bd, int):
            raise Rejected("malformed Sparkplug payload", "NBIRTH without an integer bdSeq")
        if payload.seq not in (0, None):
            log.warning("%s: NBIRTH with seq %s (should be 0)", self.ctrl.id, payload.seq)
        self.born, self.bd_seq = True, bd
        self.expected_seq = spb.next_seq(payload.seq or 0)
        self.pending.clear()
        self.gap_since = None
        self._rebirth_asked_at = None
        for d in self.devices.values():
            d.born = False
        node = self.devices.get(None)
        if node is None:
            return []
        node.aliases.clear()
        node.datatypes.clear()
        node.born = True
        node.feed.heard()
        return self._metrics(node, payload, now, reject, birth=True)

    def _node_death(self, payload: spb.Payload, now: datetime) -> list[Sample]:
        bd = next((m.value for m in payload.metrics if m.name == spb.BD_SEQ), None)
        if self.bd_seq is not None and isinstance(bd, int) and 0 < (self.bd_seq - bd) % 256 < SEQ_WINDOW:
            log.info(
                "%s: NDEATH bdSeq %s of an older session (current %s) ignored", self.ctrl.id, bd, self.bd_seq
            )
            return []
        if self.bd_seq is not None and bd is not None and bd != self.bd_seq:
            log.warning(
                "%s: NDEATH with bdSeq %s, not the birth's %s: taken as this session's death",
                self.ctrl.id,
                bd,
                self.bd_seq,
            )
        return self._go_stale(now, death="NDEATH")

    def _go_stale(self, now: datetime, death: str | None = None) -> list[Sample]:
        """Every value of the node STALE; with `death`, a definitive loss (comm loss follows at once)."""
        self.born = False
        self.pending.clear()
        self.gap_since = None
        out: list[Sample] = []
        for d in self.devices.values():
            d.born = False
            out += d.feed.died(now, death) if death else d.feed.went_stale(now)
        return out

    # -- gaps and rebirth ------------------------------------------------------------------------------
    def _gap_if_due(self, now: datetime) -> list[Sample]:
        if self.gap_since is None or self.clock.monotonic() - self.gap_since < self.ctrl.reorder_timeout_s:
            return []
        self.seq_gaps += 1
        log.warning(
            "%s: seq gap (expected %s, holding %s): values STALE until a rebirth",
            self.ctrl.id,
            self.expected_seq,
            sorted(self.pending)[:5],
        )
        out = self._go_stale(now)
        self._ask_rebirth("seq gap")
        return out

    def _ask_rebirth(self, why: str) -> None:
        t = self.clock.monotonic()
        if self._rebirth_asked_at is not None and t - self._rebirth_asked_at < max(
            2.0, self.ctrl.reorder_timeout_s
        ):
            return  # one request per few seconds is enough
        self._rebirth_asked_at = t
        if not self.ctrl.rebirth_requests:
            log.info("%s: would request a rebirth (%s), but rebirth_requests is off", self.ctrl.id, why)
            return
        self.rebirths_requested += 1
        topic = f"{spb.NAMESPACE}/{self.ctrl.group_id}/NCMD/{self.ctrl.edge_node_id}"
        ts = int(self.clock.now().timestamp() * 1000)
        self.outbox.append((topic, spb.encode(spb.rebirth_request(ts))))
        log.info("%s: rebirth requested (%s)", self.ctrl.id, why)

    def tick(self, now: datetime) -> list[Sample]:
        """Timers: the reorder timeout."""
        return self._gap_if_due(now) if self.pending else []


def _ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000.0, tz=UTC)
