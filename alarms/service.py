"""AlarmService: evaluates every sample batch per station and journals raises and clears.

Evaluation is in memory and synchronous (it runs inside the collector's emit); persistence happens in a
worker thread from a queue, so a slow database never stalls polling. Active alarms found in the store at
start are restored into the evaluators, so an alarm raised before a restart still clears.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from sqlalchemy import Engine

from alarms.evaluator import AlarmEvent, StationEvaluator
from alarms.rules import StationRule
from collector.model import Sample
from pumpwatch import historian
from pumpwatch.clock import Clock
from pumpwatch.config import Fleet

log = logging.getLogger(__name__)


class AlarmService:
    def __init__(
        self, fleet: Fleet, rules: dict[str, list[StationRule]], engine: Engine, clock: Clock
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.evaluators = {
            sid: StationEvaluator(st.tenant, sid, rules.get(sid, [])) for sid, st in fleet.stations.items()
        }
        self._queue: asyncio.Queue[AlarmEvent] = asyncio.Queue()
        self.raised = 0
        self.cleared = 0

    async def restore(self) -> None:
        active = await asyncio.to_thread(historian.list_alarms, self.engine, active=True, limit=100_000)
        for a in active:
            ev = self.evaluators.get(a["station_id"])
            if ev is not None:
                ev.restore_active(a["name"])

    def accept(self, samples: Iterable[Sample]) -> None:
        by_station: dict[str, list[Sample]] = {}
        for s in samples:
            by_station.setdefault(s.station, []).append(s)
        now = self.clock.now()
        for sid, batch in by_station.items():
            ev = self.evaluators.get(sid)
            if ev is not None:
                for event in ev.evaluate(batch, now):
                    self._queue.put_nowait(event)

    def tick(self) -> None:
        now = self.clock.now()
        for ev in self.evaluators.values():
            for event in ev.tick(now):
                self._queue.put_nowait(event)

    async def run(self, tick_s: float = 1.0) -> None:
        """Persist events as they come and let on/off delays run out, until cancelled."""

        async def ticker() -> None:
            while True:
                await self.clock.sleep(tick_s)
                self.tick()

        async with asyncio.TaskGroup() as tg:
            tg.create_task(ticker(), name="alarms.tick")
            tg.create_task(self._persist_forever(), name="alarms.persist")

    async def _persist_forever(self) -> None:
        while True:
            event = await self._queue.get()
            delay = 0.5
            while True:
                try:
                    await asyncio.to_thread(self._persist, event)
                    break
                except Exception:  # the database is down: keep the event, retry, never drop it
                    log.exception(
                        "cannot store alarm %s %s/%s; retrying", event.kind, event.station, event.name
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 30)
            self._queue.task_done()

    def _persist(self, e: AlarmEvent) -> None:
        if e.kind == "raise":
            if historian.raise_alarm(
                self.engine,
                tenant_id=e.tenant,
                station_id=e.station,
                name=e.name,
                priority=e.priority,
                message=e.message,
                value=e.value,
                at=e.at,
            ):
                self.raised += 1
                log.warning("ALARM %s %s: %s (value %s)", e.station, e.name, e.message, e.value)
        elif historian.clear_alarm(self.engine, station_id=e.station, name=e.name, at=e.at):
            self.cleared += 1
            log.info("cleared %s %s", e.station, e.name)

    async def drain(self) -> None:
        """Wait until every queued event is stored (tests, shutdown)."""
        await self._queue.join()
