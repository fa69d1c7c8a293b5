"""The system monitor: degraded parts of pumpwatch itself become alarms of the monitoring centre.

Each part is a pseudo-station of the centre's tenant: `system:historian` (the database's set-up), the
collector process itself (`system:collector`, or `system:shard-I` when sharded: its writer, spool and
rejected input), every other shard (`system:shard-J`: its heartbeat) and `system:notifier`. Their "points"
are what the monitor reads every `interval_s` through `probe` (`alarms.rules.SYSTEM_POINTS`); the `system:`
rules turn them into alarms with the station rules' own evaluator (on-delays, deadbands, clears), and the
events take the station alarms' path through `sink` (AlarmService: store, journal, spool while the database
is away, on-call routing by the centre's tenant). A reading that cannot be taken (value None: the database
did not answer) holds each rule where it is, as a stale sample does for a station rule.

Without a centre in the fleet there is no tenant to own the alarms: they are evaluated, logged and shown in
`/readyz` and the system status from memory, and not journaled (the fleet's check says so).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pumpwatch.alarms.evaluator import AlarmEvent, StationEvaluator
from pumpwatch.alarms.rules import StationRule
from pumpwatch.core.clock import Clock
from pumpwatch.core.sample import Quality, Sample

log = logging.getLogger(__name__)

SYSTEM_PREFIX = "system:"
HISTORIAN = "system:historian"
NOTIFIER = "system:notifier"
SYSTEM_KIND = "system"  # the station kind on-call routes match for system alarms


def is_system(station_id: str) -> bool:
    return station_id.startswith(SYSTEM_PREFIX)


def process_station(shard_index: int | None) -> str:
    """The pseudo-station of a collector process: its writer, spool and rejected input."""
    return "system:collector" if shard_index is None else f"system:shard-{shard_index}"


@dataclass(frozen=True, slots=True)
class Reading:
    station: str  # a pseudo-station, system:…
    point: str  # one of alarms.rules.SYSTEM_POINTS
    value: float | None  # None: cannot be read now (rules hold)
    detail: str = ""  # said with the alarm when it is raised (which features, which shard, …)


Probe = Callable[[], Awaitable[list[Reading]]]


class SystemMonitor:
    def __init__(
        self,
        tenant: str | None,
        rules: Iterable[StationRule],
        clock: Clock,
        probe: Probe,
        sink: Callable[[list[AlarmEvent]], None] | None = None,
        *,
        interval_s: float = 1.0,
    ) -> None:
        self.tenant = tenant
        self.rules = list(rules)
        self.clock = clock
        self.probe = probe
        self.sink = sink if tenant is not None else None
        self.interval_s = interval_s
        self.evaluators: dict[str, StationEvaluator] = {}
        self._by_point: dict[str, list[str]] = {}
        for r in self.rules:
            self._by_point.setdefault(r.point or "", []).append(r.name)
        self._details: dict[tuple[str, str], str] = {}
        self._restored: dict[str, list[Mapping[str, Any]]] = {}  # station → open alarms found at start
        self.active_alarms: dict[tuple[str, str], dict[str, Any]] = {}  # (station, name) → what was raised
        self.checks = 0
        self.last_error: str | None = None
        self._round = asyncio.Lock()

    def restore(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Open system alarms from the store (active before a restart). Each is restored when its point is
        read the first time, so a monitor takes over only the alarms it measures (a shard does not hold
        another shard's spool alarm)."""
        for a in rows:
            if is_system(a["station_id"]) and a["active"]:
                self._restored.setdefault(a["station_id"], []).append(a)

    def _evaluator(self, station: str) -> StationEvaluator:
        ev = self.evaluators.get(station)
        if ev is None:
            ev = self.evaluators[station] = StationEvaluator(self.tenant or "", station, self.rules)
        return ev

    def _take_restored(self, ev: StationEvaluator, station: str, point: str) -> None:
        rows = self._restored.get(station)
        if not rows:
            return
        names = set(self._by_point.get(point, ()))
        for a in [a for a in rows if a["name"] in names]:
            ev.restore_active(a["name"], a.get("suppressed_by"))
            self.active_alarms[(station, a["name"])] = {
                "station": station,
                "name": a["name"],
                "priority": a["priority"],
                "message": a["message"],
                "since": a["raised_at"],
            }
            rows.remove(a)

    async def check(self) -> list[AlarmEvent]:
        """One round: read every part, evaluate, let delays run out; events go to the sink. Rounds never
        overlap, and each is evaluated at the time its readings were taken (a round that waited on the
        database must not judge old readings at a later instant)."""
        async with self._round:
            now = self.clock.now()
            readings = await self.probe()
            return self._evaluate(readings, now)

    def _evaluate(self, readings: list[Reading], now: datetime) -> list[AlarmEvent]:
        events: list[AlarmEvent] = []
        by_station: dict[str, list[Sample]] = {}
        for r in readings:
            ev = self._evaluator(r.station)
            self._take_restored(ev, r.station, r.point)
            if r.detail:
                self._details[(r.station, r.point)] = r.detail
            quality = Quality.GOOD if r.value is not None else Quality.STALE
            by_station.setdefault(r.station, []).append(Sample(r.station, r.point, r.value, now, quality))
        for sid, samples in by_station.items():
            events += self.evaluators[sid].evaluate(samples, now)
        for sid, ev in self.evaluators.items():
            if sid not in by_station:
                events += ev.tick(now)
        events = [self._told(e, now) for e in events]
        self.checks += 1
        if events and self.sink is not None:
            self.sink(events)
        return events

    def _told(self, e: AlarmEvent, now: datetime) -> AlarmEvent:
        key = (e.station, e.name)
        if e.kind == "raise":
            point = next((r.point for r in self.rules if r.name == e.name), None)
            detail = self._details.get((e.station, point or ""), "")
            if detail:
                e = dataclasses.replace(e, message=f"{e.message}: {detail}"[:1000])
            self.active_alarms[key] = {
                "station": e.station,
                "name": e.name,
                "priority": e.priority,
                "message": e.message,
                "since": now,
            }
            log.log(
                logging.CRITICAL if e.priority == "critical" else logging.ERROR,
                "SYSTEM ALARM %s %s: %s%s",
                e.station,
                e.name,
                e.message,
                "" if self.tenant else " (no centre tenant declared: not journaled, not notified)",
            )
        elif e.kind == "clear":
            self.active_alarms.pop(key, None)
            log.warning("system alarm cleared: %s %s", e.station, e.name)
        return e

    def active(self) -> list[dict[str, Any]]:
        """The system alarms active now, as this monitor holds them (for /readyz and the status)."""
        out = []
        for a in sorted(self.active_alarms.values(), key=lambda a: (a["station"], a["name"])):
            since = a["since"]
            out.append({**a, "since": since.isoformat() if isinstance(since, datetime) else since})
        return out

    async def run(self) -> None:
        while True:
            try:
                await self.check()
                self.last_error = None
            except Exception as exc:  # a probe that fails must not end the monitor: log once, go on
                if self.last_error is None:
                    log.exception("system monitor round failed; retrying")
                self.last_error = f"{type(exc).__name__}: {exc}"
            await self.clock.sleep(self.interval_s)
