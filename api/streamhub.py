"""The live stream's publisher: one task turns changes into events and fans them out to every client.

What changes and how we learn of it:
- station values: the in-process `LiveSnapshot` tells which stations got samples (a set add, nothing more
  inside the collector's emit); without one (API process apart from the collector) every station is
  compared with the latest-value table each second;
- alarms: the append-only journal is the change feed (every transition and operator action writes one
  entry, whichever process made it): entries newer than the last seen are read every `poll_s`;
- the dispatch board: recomputed when a station or an alarm changed, published when its ranking, reasons
  or times changed.

Every `full_sweep_s` every station is rebuilt anyway, so a station that stops reporting turns `stale`
on the screen although no sample says so.

Fan-out never waits for a client: each client has a bounded queue; one that falls `queue_limit` events
behind is dropped (its connection ends, the browser reconnects and catches up by replay or snapshot), so
a slow phone never slows the collector or the other clients. Events carry ids `<epoch>-<n>`; the last
`buffer` events are kept, so a client reconnecting with Last-Event-ID gets what it missed, and one whose
id is unknown or too old gets a full snapshot first. The snapshot is built by the publisher task between
rounds, so it is consistent with the events that follow it.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Engine, func, select

from pumpwatch.alarms import store
from pumpwatch.alarms.status import LADDER
from pumpwatch.api.context import ApiContext, station_samples
from pumpwatch.api.schemas import DispatchEntry, StationPublic
from pumpwatch.api.views import alarm_public, build_board, build_station, station_view
from pumpwatch.core import resources, tasks
from pumpwatch.core.db import rls
from pumpwatch.core.db.schema import alarm, alarm_event

log = logging.getLogger(__name__)

Tenants = frozenset[str] | None  # None: every tenant


@dataclass(eq=False)
class Event:
    n: int
    kind: str  # station | alarm | dispatch
    tenant: str | None  # None: the payload is filtered per client (dispatch)
    data: str | None = None
    board: list[DispatchEntry] | None = None
    at: str = ""
    _rendered: dict[Tenants, str] = field(default_factory=dict)

    def render(self, tenants: Tenants) -> str | None:
        """The payload this client may see, or None when it is none of its business."""
        if self.board is None:
            return self.data if tenants is None or self.tenant in tenants else None
        if tenants not in self._rendered:
            self._rendered[tenants] = board_json(self.board, tenants, self.at)
        return self._rendered[tenants]


def board_json(board: list[DispatchEntry], tenants: Tenants, at: str) -> str:
    """The board as one tenant set sees it: others' stations removed and the ranks renumbered."""
    mine = [e for e in board if tenants is None or e.tenant in tenants]
    data = [e.model_dump(mode="json") | {"rank": i} for i, e in enumerate(mine, start=1)]
    return orjson.dumps({"at": at, "data": data, "count": len(data)}).decode()


@dataclass(eq=False)
class Subscriber:
    tenants: Tenants
    limit: int
    queue: deque[tuple[str, str, str]] = field(default_factory=deque)  # (id, kind, data)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    needs_snapshot: bool = False
    dropped: bool = False

    def put(self, item: tuple[str, str, str]) -> None:
        if self.dropped:
            return
        if len(self.queue) >= self.limit:
            self.dropped = True  # too slow: end its stream rather than hold anything up
            self.queue.clear()
        else:
            self.queue.append(item)
        self.ready.set()


class StreamHub:
    def __init__(
        self,
        ctx: ApiContext,
        *,
        buffer: int = 5000,
        queue_limit: int = 2000,
        coalesce_s: float = 0.15,
        poll_s: float = 0.5,
        full_sweep_s: float = 5.0,
        db_poll_s: float = 1.0,
    ) -> None:
        self.ctx = ctx
        self.epoch = secrets.token_hex(4)
        self.queue_limit = queue_limit
        self.coalesce_s = coalesce_s
        self.poll_s = poll_s
        self.full_sweep_s = full_sweep_s
        self.db_poll_s = db_poll_s
        self.subscribers: set[Subscriber] = set()
        self.dropped = 0  # clients ended for being too slow
        self._n = 0
        self._recent: deque[Event] = deque(maxlen=buffer)
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._closed = False
        self._journal_floor = 0  # entries at or below it are done with
        self._journal_seen: set[int] = set()  # ids above the floor already published
        self._open: dict[str, list[store.AlarmRow]] = {}  # station -> open alarms
        self._modes: dict[str, dict] = {}
        self._station_sig: dict[str, Any] = {}
        self._raw: dict[str, tuple] = {}
        self._board_sig: Any = None
        self._board: list[DispatchEntry] = []
        self._last_sweep = 0.0
        self._last_db_poll = 0.0
        if ctx.live is not None:
            ctx.live.listeners.append(self.mark)

    # --- inputs (cheap, synchronous) -------------------------------------------------------------------

    def mark(self, stations: Iterable[str]) -> None:
        """Stations with new samples (called inside the collector's emit: only a set update)."""
        self._dirty.update(stations)
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    @property
    def closed(self) -> bool:
        return self._closed

    # --- clients ---------------------------------------------------------------------------------------

    def ensure_running(self) -> None:
        if (self._task is None or self._task.done()) and not self._closed:  # a publisher that died restarts
            self._task = asyncio.create_task(self._run(), name="api.stream.publisher")
            self._task.add_done_callback(tasks.log_failure(log, "live stream publisher"))

    def subscribe(self, tenants: Collection[str] | None, last_event_id: str | None) -> Subscriber:
        """A new client: queued replay of what it missed, or a snapshot first (made by the publisher)."""
        self.ensure_running()
        sub = Subscriber(frozenset(tenants) if tenants is not None else None, self.queue_limit)
        missed = self._since(last_event_id)
        if missed is None:
            sub.needs_snapshot = True
            self._wake.set()
        else:
            for ev in missed:
                self._deliver(sub, ev)
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    def event_id(self, n: int | None = None) -> str:
        return f"{self.epoch}-{self._n if n is None else n}"

    def _since(self, last_event_id: str | None) -> list[Event] | None:
        if not last_event_id:
            return None
        epoch, _, num = last_event_id.partition("-")
        if epoch != self.epoch or not num.isdigit():
            return None  # another server process: its numbers mean nothing here
        n = int(num)
        if n > self._n:
            return None
        if n < self._n and (not self._recent or self._recent[0].n > n + 1):
            return None  # what it missed is no longer kept
        return [e for e in self._recent if e.n > n]

    def _deliver(self, sub: Subscriber, ev: Event) -> None:
        data = ev.render(sub.tenants)
        if data is not None:
            sub.put((self.event_id(ev.n), ev.kind, data))

    def _publish(self, kind: str, tenant: str | None, data: str | None = None, **kw: Any) -> None:
        self._n += 1
        ev = Event(self._n, kind, tenant, data, **kw)
        self._recent.append(ev)
        for sub in self.subscribers:
            if not sub.needs_snapshot and not sub.dropped:
                self._deliver(sub, ev)
                if sub.dropped:
                    self.dropped += 1
                    log.warning("live stream client dropped: %d events behind", sub.limit)

    def close(self) -> None:
        """End every stream (shutdown) and stop publishing."""
        self._closed = True
        if self.ctx.live is not None and self.mark in self.ctx.live.listeners:
            self.ctx.live.listeners.remove(self.mark)
        for sub in self.subscribers:
            sub.dropped = True
            sub.ready.set()
        if self._task is not None:
            self._task.cancel()

    # --- the publisher ---------------------------------------------------------------------------------

    async def _run(self) -> None:
        # This task reads for every client: it sees every tenant (row-level security included: the task's
        # own context, not the first client's) and each client gets only its tenants' events.
        rls.set_scope(self.ctx.fleet.tenants)
        # The first client may come while the database is unreachable (a session this process remembers):
        # keep trying, or the stream would stay dead after the database is back.
        while not self._closed:
            try:
                self._journal_floor = await asyncio.to_thread(_journal_max, self.ctx.engine)
                await self._refresh_alarms()
                break
            except Exception as exc:
                if _process_exiting(exc):
                    return
                log.warning("live stream cannot start yet (%s); retrying", type(exc).__name__)
                await asyncio.sleep(1)
        while not self._closed:
            try:
                await asyncio.wait_for(self._wake.wait(), self.poll_s)
                await asyncio.sleep(self.coalesce_s)  # let a burst of batches arrive together
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self._round()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a database hiccup must not end the stream for everyone
                if _process_exiting(exc):
                    return
                log.exception("live stream round failed; retrying")
                await asyncio.sleep(1)

    async def _round(self) -> None:
        ctx = self.ctx
        entries = await asyncio.to_thread(_journal_since, ctx.engine, self._journal_floor)
        changed_alarms = {a for e, a in entries if e not in self._journal_seen}
        if entries:
            self._journal_seen.update(e for e, _ in entries)
            self._journal_floor = max(self._journal_floor, max(e for e, _ in entries) - LATE_WINDOW)
            self._journal_seen = {e for e in self._journal_seen if e > self._journal_floor}
        alarm_stations: set[str] = set()
        if changed_alarms:
            rows = await asyncio.to_thread(_alarms_by_id, ctx.engine, sorted(changed_alarms))
            now = ctx.clock.now()
            for r in rows:
                payload = alarm_public(r, now).model_dump_json()
                self._publish("alarm", r["tenant_id"], payload)
                alarm_stations.add(r["station_id"])
            await self._refresh_alarms()
        mono = time.monotonic()
        if ctx.live is None and mono - self._last_db_poll >= self.db_poll_s:
            self._last_db_poll = mono
            self._dirty.update(ctx.fleet.stations)
        sweep = mono - self._last_sweep >= self.full_sweep_s
        if sweep:
            self._last_sweep = mono
            todo = set(ctx.fleet.stations)
        else:
            todo = self._dirty | alarm_stations
        self._dirty = set()
        latest = await ctx.latest()
        now = ctx.clock.now()
        stations_changed = False
        built = 0
        for i, sid in enumerate(sorted(todo)):
            if i % 200 == 199:
                await asyncio.sleep(0)  # a sweep of 10,000 unchanged stations is 200 ms of comparing
            if sid not in ctx.fleet.stations:
                continue
            # Building a station's view costs ~1.5 ms; comparing what it is built from costs ~20 µs.
            raw = self._raw_sig(latest, sid, now)
            if raw == self._raw.get(sid):
                continue
            self._raw[sid] = raw
            view = self._station(latest, sid, now)
            sig = _station_sig(view)
            if sig != self._station_sig.get(sid):
                self._station_sig[sid] = sig
                self._publish("station", view.tenant, view.model_dump_json())
                stations_changed = True
            built += 1
            if built % 10 == 0:
                await asyncio.sleep(0)  # a city's worth of stations never holds the loop for long
        if stations_changed or changed_alarms or sweep:
            await self._update_board(latest, now)
        pending = [s for s in self.subscribers if s.needs_snapshot]
        if pending:
            await self._snapshots(pending, latest, now)

    def _raw_sig(self, latest: Any, sid: str, now: datetime) -> tuple:
        """What a station's view is made of: its samples, which of them are past their age limit, its
        active alarms and mode. Equal: the view cannot have changed."""
        samples = station_samples(latest, sid)
        after = self.ctx.fleet.stale_after_s(sid)
        limit = now - timedelta(seconds=after) if after is not None else None
        vals = tuple(
            (k, v.observed_at, v.value, v.quality, limit is None or v.observed_at < limit)
            for k, v in samples.items()
        )
        alarms = tuple((a["name"], a["active"], a["suppressed_by"]) for a in self._open.get(sid, ()))
        mode = self._modes.get(sid)
        return (vals, alarms, bool(mode and mode.get("out_of_service")))

    def _station(self, latest: Any, sid: str, now: Any) -> StationPublic:
        return build_station(
            self.ctx, sid, station_samples(latest, sid), self._open.get(sid, []), now, self._modes.get(sid)
        )

    async def _refresh_alarms(self) -> None:
        engine = self.ctx.engine
        rows = await asyncio.to_thread(store.list_alarms, engine, open_=True, limit=1_000_000)
        by_station: dict[str, list[store.AlarmRow]] = {}
        for a in rows:
            by_station.setdefault(a["station_id"], []).append(a)
        self._open = by_station
        self._modes = await asyncio.to_thread(store.station_modes, engine)

    async def _update_board(self, latest: Any, now: Any) -> None:
        active = [a for rows in self._open.values() for a in rows if a["active"]]
        sent = []
        if self.ctx.resources is not None:
            sent = await asyncio.to_thread(
                resources.open_assignments, self.ctx.engine, self.ctx.fleet.tenants
            )
        board = build_board(self.ctx, latest, active, now, None, sent)
        sig = [
            (
                e.station,
                tuple(e.reasons),
                e.priority,
                e.tto_spill_min,
                e.level_m,
                tuple(r.state for r in e.resources),
            )
            for e in board
        ]
        if sig != self._board_sig:
            self._board_sig = sig
            self._board = board
            self._publish("dispatch", None, board=board, at=now.isoformat())

    async def _snapshots(self, subs: list[Subscriber], latest: Any, now: Any) -> None:
        """Whole state for clients that start from nothing, consistent with the events that follow: this
        task publishes nothing while it builds them. Built in a worker thread (10,000 stations are seconds
        of pydantic): the event loop, the other streams and an in-process collector go on meanwhile; what
        changes during the build reaches the clients as events of the next round."""
        wanted = {sub.tenants for sub in subs}
        board, open_ = self._board, self._open

        def build() -> dict[Tenants, str]:
            ctx, modes = self.ctx, self._modes
            st_json = [  # GET /stations's JSON (station_view: build_station's, without pydantic)
                (
                    st.tenant,
                    station_view(
                        ctx, sid, station_samples(latest, sid), open_.get(sid, []), now, modes.get(sid)
                    ),
                )
                for sid, st in ctx.fleet.stations.items()
            ]
            alarms = [alarm_public(a, now) for rows in open_.values() for a in rows]
            al_json = [(a.tenant, a.model_dump(mode="json")) for a in alarms]
            made: dict[Tenants, str] = {}
            for t in wanted:
                body = {
                    "at": now.isoformat(),
                    "status_ladder": LADDER,  # the console orders its counts by it, keeps no copy
                    "stations": [s for tn, s in st_json if t is None or tn in t],
                    "alarms": [a for tn, a in al_json if t is None or tn in t],
                    "dispatch": orjson.loads(board_json(board, t, now.isoformat())),
                }
                made[t] = orjson.dumps(body).decode()
            return made

        made = await asyncio.to_thread(build)
        for sub in subs:
            sub.needs_snapshot = False
            sub.put((self.event_id(), "snapshot", made[sub.tenants]))


def _station_sig(s: StationPublic) -> tuple:
    """What makes a station worth sending again (ages grow by themselves: the client counts them)."""
    vals = tuple((k, v.value, v.quality, v.observed_at) for k, v in s.values.items())
    return (s.status, tuple(s.active_alarms), tuple(s.suppressed_alarms), s.live, s.out_of_service, vals)


def _journal_max(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.coalesce(func.max(alarm_event.c.id), 0))).scalar_one()


# Journal ids are given at insert and seen at commit: a concurrent writer may commit a lower id after a
# higher one. Re-reading a window below the newest id seen (and skipping ids already seen) catches them.
LATE_WINDOW = 200


def _journal_since(engine: Engine, floor: int) -> list[tuple[int, int]]:
    """(entry id, alarm id) of the journal entries after `floor`."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(alarm_event.c.id, alarm_event.c.alarm_id).where(alarm_event.c.id > floor)
        ).all()
    return [(int(e), int(a)) for e, a in rows]


def _alarms_by_id(engine: Engine, ids: list[int]) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(alarm).where(alarm.c.id.in_(ids)))]


def _process_exiting(exc: Exception) -> bool:
    """The process is exiting: its thread pool is gone, and nobody is left to stream to."""
    return isinstance(exc, RuntimeError) and "after shutdown" in str(exc)
