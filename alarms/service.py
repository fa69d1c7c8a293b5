"""AlarmService: derives, evaluates and journals alarms for every station.

Per sample batch (inside the collector's emit, synchronous and in memory): the station's analyzers add
derived points (time to overflow, pump health, battery), then its rules are evaluated. Events go to a queue
that one worker thread drains in order into the store (ISA-18.2 states, journal) and the incident
grouper, so a slow database never stalls polling and no event is ever dropped: a failed write is retried
until it succeeds. With a disk spool (`pumpwatch.core.spool.Spool`), an event the database refuses is appended
to the spool (fsync'd) and every later event queues behind it there, so events survive a restart during an
outage and reach the journal in the order they happened. Active alarms found in the store at start are
restored into the evaluators.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, cast

import orjson
from sqlalchemy import Connection, Engine

from pumpwatch.alarms import store
from pumpwatch.alarms.analyzers import Analyzer
from pumpwatch.alarms.evaluator import AlarmEvent, StationEvaluator
from pumpwatch.alarms.incidents import IncidentGrouper
from pumpwatch.alarms.rules import RuleSet
from pumpwatch.core.backoff import Backoff
from pumpwatch.core.clock import Clock
from pumpwatch.core.config import Fleet
from pumpwatch.core.leases import Fence
from pumpwatch.core.metrics import ALARM_BUCKETS, Histogram
from pumpwatch.core.sample import Sample
from pumpwatch.core.spool import Forwarder, Spool

log = logging.getLogger(__name__)


class AlarmService:
    def __init__(
        self,
        fleet: Fleet,
        rules: RuleSet,
        engine: Engine,
        clock: Clock,
        analyzers: dict[str, list[Analyzer]] | None = None,
        spool: Spool | None = None,
        stations: Iterable[str] | None = None,
        fence: Fence | None = None,
    ) -> None:
        self.spool = spool
        # events the journal cannot take now wait in the spool, in order (pumpwatch/core/spool.py)
        self._forward: Forwarder[AlarmEvent] | None = (
            Forwarder(spool, _encode_one, decode_event, self._persist) if spool is not None else None
        )
        # On leased links (pumpwatch.core.leases) each station event carries its link's lease generation and
        # is journaled only if that lease covered its time; `adopt` / `release` follow the leases.
        self.fence = fence
        self.fenced = 0
        self.latency = Histogram(ALARM_BUCKETS)  # sample time → event stored, seconds
        self.db_down = False
        self.fleet = fleet
        self.rules = rules
        self.engine = engine
        self.clock = clock
        self.analyzers = analyzers or {}
        only = set(stations) if stations is not None else None  # a collector shard's stations
        self.evaluators = {
            sid: StationEvaluator(st.tenant, sid, rules.get(sid), stale_after_s=fleet.stale_after_s(sid))
            for sid, st in fleet.stations.items()
            if only is None or sid in only
        }
        self.incidents = IncidentGrouper(rules.incidents, fleet, engine)
        self._queue: asyncio.Queue[AlarmEvent] = asyncio.Queue()
        self.raised = 0
        self.cleared = 0
        self.events = 0

    def active_by_station(self) -> dict[str, list[dict[str, Any]]]:
        """The alarm conditions active now, by station, as this engine holds them, shaped like the
        store's rows (name, active, suppressed_by): what the API shows while the store is unreachable."""
        return {
            sid: [
                {"name": name, "active": True, "suppressed_by": st.suppressed_by}
                for name, st in sorted(ev.states.items())
                if st.active
            ]
            for sid, ev in self.evaluators.items()
        }

    async def restore(self, stations: Iterable[str] | None = None) -> None:
        """Mark the alarms active in the store active in the evaluators (of `stations`, or all)."""
        only = set(stations) if stations is not None else None
        active = await asyncio.to_thread(
            store.list_alarms, self.engine, open_=True, active=True, limit=1_000_000
        )
        for a in active:
            if only is not None and a["station_id"] not in only:
                continue
            ev = self.evaluators.get(a["station_id"])
            if ev is not None:
                ev.restore_active(a["name"], a["suppressed_by"])

    async def adopt(self, stations: Iterable[str]) -> list[str]:
        """Evaluate these stations' alarms from now on (a link taken over): fresh evaluators, with the
        alarms the store holds active restored, so nothing is raised twice and every clear is seen."""
        new = [s for s in stations if s not in self.evaluators and s in self.fleet.stations]
        for sid in new:
            self.evaluators[sid] = StationEvaluator(
                self.fleet.stations[sid].tenant,
                sid,
                self.rules.get(sid),
                stale_after_s=self.fleet.stale_after_s(sid),
            )
        if new:
            await self.restore(new)
        return new

    async def release(self, stations: Iterable[str]) -> None:
        """Stop evaluating these stations (their link goes to another collector), once every event already
        decided for them is stored or spooled."""
        for sid in stations:
            self.evaluators.pop(sid, None)
        await self._queue.join()

    def _tagged(self, event: AlarmEvent) -> AlarmEvent:
        if self.fence is None:
            return event
        return dataclasses.replace(event, gen=self.fence.tag(event.station))

    def derive(self, samples: Sequence[Sample]) -> list[Sample]:
        """Derived samples for the stations in this batch (one batch is usually one station)."""
        if not self.analyzers:
            return []
        by_station: dict[str, list[Sample]] = {}
        for s in samples:
            by_station.setdefault(s.station, []).append(s)
        out: list[Sample] = []
        for sid, batch in by_station.items():
            for a in self.analyzers.get(sid, ()):
                try:
                    out += a.observe(batch)
                except Exception:  # an analyzer bug must not stop alarms or polling
                    log.exception("analyzer %s failed on %s", type(a).__name__, sid)
        return out

    def accept(self, samples: Iterable[Sample], derived: Iterable[Sample] = ()) -> None:
        by_station: dict[str, tuple[list[Sample], list[Sample]]] = {}
        for s in samples:
            by_station.setdefault(s.station, ([], []))[0].append(s)
        for s in derived:
            by_station.setdefault(s.station, ([], []))[1].append(s)
        now = self.clock.now()
        for sid, (batch, extra) in by_station.items():
            ev = self.evaluators.get(sid)
            if ev is not None:
                for event in ev.evaluate(batch, now, extra):
                    self._queue.put_nowait(self._tagged(event))

    def submit(self, events: Iterable[AlarmEvent]) -> None:
        """Events decided elsewhere (the system monitor's), stored on the same path, in order."""
        for event in events:
            self._queue.put_nowait(event)

    def tick(self) -> None:
        now = self.clock.now()
        for ev in list(self.evaluators.values()):
            for event in ev.tick(now):
                self._queue.put_nowait(self._tagged(event))

    async def run(self, tick_s: float = 1.0) -> None:
        """Persist events as they come, let on/off delays run out, end expired shelves and maintenance
        windows; until cancelled."""

        async def ticker() -> None:
            n = 0
            while True:
                await self.clock.sleep(tick_s)
                self.tick()
                n += 1
                if n % 10 == 0:
                    try:
                        await asyncio.to_thread(store.expire_shelves, self.engine, self.clock.now())
                        back = await asyncio.to_thread(
                            store.expire_out_of_service, self.engine, self.clock.now()
                        )
                        for sid in back:
                            log.warning("station %s back in service: its out-of-service time is up", sid)
                    except Exception:
                        log.exception("cannot end expired shelves or maintenance windows; will retry")

        async with asyncio.TaskGroup() as tg:
            tg.create_task(ticker(), name="alarms.tick")
            tg.create_task(self._persist_forever(), name="alarms.persist")

    async def _persist_forever(self) -> None:
        if self.spool is None:
            while True:
                burst = await self._burst()
                if len(burst) == 1 or not await self._try_many(burst):
                    for event in burst:
                        await self._persist_retrying(event)
                for _ in burst:
                    self._queue.task_done()
        backoff = Backoff(0.5, 10.0)
        forward = self._forward
        assert forward is not None
        while True:
            if not forward.empty:
                await self._spool_queued()  # order: whatever came meanwhile queues behind the spool
                try:
                    delivered = await forward.forward_one()
                except Exception as exc:
                    self._down(exc)
                    await asyncio.sleep(backoff.failed())
                    continue
                if delivered is not None:
                    backoff.reset()
                    continue
            if self.db_down and forward.empty:
                log.warning("alarm journal writes again; spooled events stored")
                self.db_down = False
            burst = await self._burst()
            if len(burst) == 1 or not await self._try_many(burst):
                for event in burst:  # one by one: the one that fails, and all after it, go to the spool
                    if forward.empty:
                        try:
                            await asyncio.to_thread(self._persist, event)
                            continue
                        except Exception as exc:
                            self._down(exc)
                    await forward.park(event)
            for _ in burst:
                self._queue.task_done()

    async def _burst(self, limit: int = 500) -> list[AlarmEvent]:
        """The next event, and whatever else is already queued (up to `limit`), in order."""
        burst = [await self._queue.get()]
        while len(burst) < limit and not self._queue.empty():
            burst.append(self._queue.get_nowait())
        return burst

    async def _try_many(self, burst: list[AlarmEvent]) -> bool:
        try:
            await asyncio.to_thread(self._persist_many, burst)
            return True
        except Exception:
            log.warning("a burst of %d alarm events failed as a whole; storing them one by one", len(burst))
            return False

    def _down(self, exc: BaseException) -> None:
        if not self.db_down:
            log.error(
                "cannot store alarm events (%s: %s); they go to the disk spool", type(exc).__name__, exc
            )
        self.db_down = True

    async def _spool_queued(self) -> None:
        assert self._forward is not None
        while not self._queue.empty():
            event = self._queue.get_nowait()
            await self._forward.park(event)
            self._queue.task_done()

    async def _persist_retrying(self, event: AlarmEvent) -> None:
        backoff = Backoff(0.5, 30.0)
        while True:
            try:
                await asyncio.to_thread(self._persist, event)
                return
            except Exception:  # the database is down: keep the event, retry, never drop it
                log.exception("cannot store alarm %s %s/%s; retrying", event.kind, event.station, event.name)
                await asyncio.sleep(backoff.failed())

    def _persist(self, e: AlarmEvent) -> None:
        after: list[Callable[[], None]] = []
        if e.gen == 0:
            self._store(e, self.engine, after)
        else:
            with self.engine.begin() as conn:
                if self._may_store(conn, [e])[0]:
                    self._store(e, cast(Engine, _OneTransaction(conn)), after)
        for fn in after:
            fn()
        self._count(e)

    def _persist_many(self, events: Sequence[AlarmEvent]) -> None:
        """A burst (a flood of raises) in one transaction: one commit, not one per event. Incident grouping
        and counters run after the commit, in order; if anything fails nothing of the burst is stored."""
        after: list[Callable[[], None]] = []
        with self.engine.begin() as conn:
            tx = _OneTransaction(conn)
            ok = self._may_store(conn, events)
            for e, k in zip(events, ok, strict=True):
                if k:
                    self._store(e, cast(Engine, tx), after)  # (it stands in for the Engine: see the class)
        for fn in after:
            fn()
        for e in events:
            self._count(e)

    def _may_store(self, conn: Connection, events: Sequence[AlarmEvent]) -> list[bool]:
        """The fence: an event decided under a lease generation that did not cover its time (a collector
        that resumed after its links were taken over) is dropped, counted and logged."""
        if self.fence is None or not any(e.gen for e in events):
            return [True] * len(events)
        ok = [
            e.gen == 0 or k
            for e, k in zip(
                events, self.fence.keep(conn, [(e.station, e.gen, e.at) for e in events]), strict=True
            )
        ]
        for e, k in zip(events, ok, strict=True):
            if not k:
                self.fenced += 1
                log.error("alarm %s %s/%s not stored: its link's lease passed on", e.kind, e.station, e.name)
        return ok

    def _count(self, e: AlarmEvent) -> None:
        self.events += 1
        self.latency.observe(max(0.0, (self.clock.now() - e.at).total_seconds()))

    def _store(self, e: AlarmEvent, engine: Engine, after: list[Callable[[], None]]) -> None:
        if e.kind == "raise":
            done = store.raise_alarm(
                engine,
                tenant_id=e.tenant,
                station_id=e.station,
                name=e.name,
                priority=e.priority,
                message=e.message,
                value=e.value,
                at=e.at,
                suppressed_by=e.suppressed_by,
            )
            if done is not None:

                def raised(done: store.Raised = done) -> None:
                    self.raised += 1
                    log.warning(
                        "ALARM %s %s: %s%s",
                        e.station,
                        e.name,
                        e.message,
                        f" (suppressed by {e.suppressed_by})" if e.suppressed_by else "",
                    )
                    self.incidents.on_raise(e.name, e.station, done.id, e.at)

                after.append(raised)
        elif e.kind == "clear":
            did = store.clear_alarm(
                engine, station_id=e.station, name=e.name, at=e.at, value=e.value, latch=e.latch
            )

            def cleared() -> None:
                if did:
                    self.cleared += 1
                    log.info("cleared %s %s", e.station, e.name)
                self.incidents.on_clear(e.name, e.station, e.at)

            after.append(cleared)
        elif e.kind in ("input_not_good", "input_good"):  # the rule holds: its input is not good
            store.set_input_quality(
                engine,
                station_id=e.station,
                name=e.name,
                at=e.at,
                quality=e.quality if e.kind == "input_not_good" else None,
            )
        else:  # suppress / unsuppress
            store.set_suppressed(
                engine,
                station_id=e.station,
                names=[e.name],
                by=e.suppressed_by if e.kind == "suppress" else None,
                at=e.at,
            )

    @property
    def delayed(self) -> bool:
        return self.db_down or (self.spool is not None and not self.spool.empty)

    def status(self) -> dict[str, Any]:
        sp = self.spool.status() if self.spool is not None else None
        return {
            "state": "delayed" if self.delayed else "current",
            "queued_events": self._queue.qsize(),
            "spooled_events": sp.pending_records if sp else 0,
            "dropped_events": sp.dropped_records if sp else 0,
            "fenced_events": self.fenced,
        }

    async def drain(self, *, until_stored: bool = True) -> None:
        """Wait until every queued event is stored or spooled, and (`until_stored`) the spool is empty."""
        await self._queue.join()
        while until_stored and self.spool is not None and not self.spool.empty:
            await asyncio.sleep(0.05)
            await self._queue.join()


def encode_event(e: AlarmEvent) -> bytes:
    d = dataclasses.asdict(e)
    d["at"] = e.at.isoformat()
    return orjson.dumps(d)


def _encode_one(e: AlarmEvent) -> tuple[bytes, int]:
    return encode_event(e), 1


def decode_event(data: bytes) -> AlarmEvent:
    d = orjson.loads(data)
    d["at"] = datetime.fromisoformat(d["at"])
    return AlarmEvent(**d)


class _OneTransaction:
    """Stands in for the Engine given to the store's functions so that several of them share one open
    transaction (each `begin()` just hands out the same connection; the caller commits once)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.dialect = conn.dialect

    @contextlib.contextmanager
    def begin(self) -> Iterator[Connection]:
        yield self._conn
