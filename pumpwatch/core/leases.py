"""Leases on links, so a dead collector's links are polled again by a live one, and fencing of its writes.

A link is what one process must poll alone: a Modbus endpoint (one device, or a gateway with its units, one
request at a time). Its lease is a row in `link_lease`: the owner (a collector id: `shard-0`, `standby-a`),
a generation, an expiry. Every grant is kept in `lease_grant` (link, generation, owner, granted_at).

- A collector's *home* links are those the shard hash gives it (`pumpwatch.core.sharding`); a standby
  (`pumpwatch run --standby`) has none. Each beat (`interval_s`, the heartbeat) a `LeaseKeeper` renews what it
  holds (expiry = now + `ttl_s`, two beats), takes its home links when free, and asks for them back
  (`wanted_by`) when another holds them. A lease that lapses (its owner stopped renewing) is claimed by any
  live collector at its next beat, so polling resumes within `ttl_s + interval_s + poll interval` of the
  owner's last renewal: three heartbeats and one poll interval. A collector claims others' links only once it
  has itself been renewing for `ttl_s` without a break, so after a database outage the owners renew first.
- A borrowed link goes back when its home asks: the borrower stops polling it, stores its alarm events,
  then releases the lease; the home takes it at its next beat (a new generation).
- Every grant makes a new generation. A sample or alarm event is tagged with the generation of the lease it
  was read under, and is stored only if its time lies between that grant and the next grant of the link
  (`fence_windows`): a collector that was stopped (SIGSTOP, a long pause) and resumes cannot write what it
  read after someone else took over, while what it read and spooled before stands.
- A collector gates each poll on its lease (`may_poll`): held, and renewed within `ttl_s` by its own
  monotonic clock; a lease it could not renew because the database did not answer is kept (polling goes on,
  the spool keeps the data) — during a partition between one collector and the database a link may thus be
  polled twice, and only the lease holder's writes are stored.
- Times come from the collector's Clock (`now` for the rows, `monotonic` for its own view); collectors'
  clocks must agree within a second or two (`clock_skew_s` measures one against the database's; the
  `clock_skew` system alarm rises above 2 s).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Table, func, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite

from pumpwatch.core.clock import Clock
from pumpwatch.core.db.schema import lease_grant, link_lease

log = logging.getLogger(__name__)


def _insert(conn: Connection, table: Table) -> Any:
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)


# --- the table's operations (each one transaction) --------------------------------------------------------


def ensure_rows(engine: Engine, links: Collection[str], at: datetime) -> None:
    """A lapsed, ownerless row for each link not yet in `link_lease` (generation 0)."""
    if not links:
        return
    with engine.begin() as conn:
        ins = _insert(conn, link_lease)
        conn.execute(
            ins.on_conflict_do_nothing(index_elements=[link_lease.c.link_id]),
            [{"link_id": k, "owner": None, "generation": 0, "expires_at": at} for k in sorted(links)],
        )


def acquire(
    engine: Engine,
    owner: str,
    link: str,
    at: datetime,
    ttl_s: float,
    *,
    honour_wanted: bool = True,
    from_self: bool = True,
) -> int | None:
    """Take `link` if it is free, lapsed, or (`from_self`) held by an earlier life of `owner` (a restarted
    process does not know its old generation; a new one fences the old). A link another collector asked
    back is left to it (`honour_wanted`) unless its lease has been lapsed for `ttl_s` more (that one died
    too). Returns the new generation, or None when someone else holds it."""
    until = at + timedelta(seconds=ttl_s)
    with engine.begin() as conn:
        row = conn.execute(select(link_lease).where(link_lease.c.link_id == link).with_for_update()).first()
        if row is None:
            return None
        free = row.owner is None or row.expires_at < at or (from_self and row.owner == owner)
        if not free:
            return None
        asked = honour_wanted and row.wanted_by not in (None, owner)
        if asked and row.expires_at > at - timedelta(seconds=ttl_s):
            return None
        gen = int(row.generation) + 1
        conn.execute(
            update(link_lease)
            .where(link_lease.c.link_id == link)
            .values(
                owner=owner,
                generation=gen,
                expires_at=until,
                renewed_at=at,
                wanted_by=None if row.wanted_by == owner else row.wanted_by,
            )
        )
        conn.execute(
            lease_grant.insert().values(
                link_id=link,
                generation=gen,
                owner=owner,
                granted_at=at,
                previous_owner=row.owner,
                previous_expired_at=row.expires_at if row.generation else None,
            )
        )
        return gen


def renew(
    engine: Engine, owner: str, held: dict[str, int], at: datetime, ttl_s: float
) -> dict[str, str | None]:
    """Extend the leases `owner` still holds at the generation it knows; link → who wants it back (None)."""
    if not held:
        return {}
    with engine.begin() as conn:
        rows = conn.execute(
            update(link_lease)
            .where(
                link_lease.c.owner == owner,
                tuple_(link_lease.c.link_id, link_lease.c.generation).in_(list(held.items())),
            )
            .values(expires_at=at + timedelta(seconds=ttl_s), renewed_at=at)
            .returning(link_lease.c.link_id, link_lease.c.wanted_by)
        ).all()
    return {r.link_id: r.wanted_by for r in rows}


def release(engine: Engine, owner: str, link: str, generation: int, at: datetime) -> bool:
    with engine.begin() as conn:
        n = conn.execute(
            update(link_lease)
            .where(
                link_lease.c.link_id == link,
                link_lease.c.owner == owner,
                link_lease.c.generation == generation,
            )
            .values(owner=None, expires_at=at)
        ).rowcount
    return n == 1


def ask_back(engine: Engine, owner: str, links: Collection[str]) -> None:
    """Ask for `links` back (the home collector's request, honoured by the holder at its next beat)."""
    if not links:
        return
    with engine.begin() as conn:
        conn.execute(
            update(link_lease)
            .where(
                link_lease.c.link_id.in_(list(links)),
                or_(link_lease.c.wanted_by.is_(None), link_lease.c.wanted_by != owner),
            )
            .values(wanted_by=owner)
        )


def lapsed(engine: Engine, at: datetime, among: Collection[str] | None = None) -> list[str]:
    """Links nobody holds now (released, or not renewed in time)."""
    q = select(link_lease.c.link_id).where(or_(link_lease.c.owner.is_(None), link_lease.c.expires_at < at))
    if among is not None:
        q = q.where(link_lease.c.link_id.in_(list(among)))
    with engine.connect() as conn:
        return sorted(conn.execute(q).scalars())


def leases(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(link_lease).order_by(link_lease.c.link_id))]


def grants(engine: Engine, link: str | None = None) -> list[dict[str, Any]]:
    q = select(lease_grant).order_by(lease_grant.c.link_id, lease_grant.c.generation)
    if link is not None:
        q = q.where(lease_grant.c.link_id == link)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]


Window = tuple[datetime, datetime | None]  # [granted_at, next grant's granted_at or open)


def fence_windows(conn: Connection, pairs: Iterable[tuple[str, int]]) -> dict[tuple[str, int], Window]:
    """For each (link, generation): the time it was valid. A pair with no grant is absent (never valid)."""
    pairs = set(pairs)
    if not pairs:
        return {}
    wanted = pairs | {(k, g + 1) for k, g in pairs}
    rows = conn.execute(
        select(lease_grant.c.link_id, lease_grant.c.generation, lease_grant.c.granted_at).where(
            tuple_(lease_grant.c.link_id, lease_grant.c.generation).in_(sorted(wanted))
        )
    ).all()
    at = {(r.link_id, int(r.generation)): r.granted_at for r in rows}
    return {p: (at[p], at.get((p[0], p[1] + 1))) for p in pairs if p in at}


def within(window: Window | None, t: datetime) -> bool:
    if window is None:
        return False
    start, end = window
    return start <= t and (end is None or t < end)


def clock_skew_s(engine: Engine, clock: Clock) -> float | None:
    """How far `clock` is off the database server's clock, seconds (positive: ahead), the query's round
    trip halved; None where the database has no clock to compare with (SQLite)."""
    if engine.dialect.name != "postgresql":
        return None
    with engine.connect() as conn:
        t0 = clock.now()
        db_now = conn.execute(select(func.clock_timestamp())).scalar_one()
        t1 = clock.now()
    mid = t0 + (t1 - t0) / 2
    return float((mid - db_now).total_seconds())


# --- the keeper ----------------------------------------------------------------------------------------


@dataclass
class Held:
    generation: int
    renewed_mono: float  # when this collector last renewed it, on its own monotonic clock


Changes = Callable[[list[str]], Awaitable[None]]


async def _nothing(links: list[str]) -> None:
    return None


class LeaseKeeper:
    """Holds this collector's leases: renews them every beat, takes its home links, claims lapsed ones,
    gives borrowed ones back. `on_gain(links)` runs after links were granted (start polling them and their
    alarms); `on_lose(links)` when they were lost or before they are given back (stop polling, store their
    alarm events)."""

    def __init__(
        self,
        engine: Engine,
        owner: str,
        clock: Clock,
        *,
        home: Collection[str],
        links: Collection[str],
        interval_s: float = 5.0,
        ttl_s: float | None = None,
        on_gain: Changes = _nothing,
        on_lose: Changes = _nothing,
    ) -> None:
        self.engine = engine
        self.owner = owner
        self.clock = clock
        self.home = set(home)
        self.links = set(links) | self.home  # every link of the fleet this collector can poll
        self.interval_s = interval_s
        self.ttl_s = ttl_s if ttl_s is not None else 2 * interval_s
        self.on_gain = on_gain
        self.on_lose = on_lose
        self.held: dict[str, Held] = {}
        self.db_ok = False  # the last step reached the database
        self._ok_since: float | None = None  # renewing without a break since (monotonic)
        self._last_ok = 0.0
        self._ever_held: set[str] = set()
        self.takeovers: list[dict[str, Any]] = []  # links this collector took from another, newest last
        self.given_back = 0
        self.lost = 0

    # what the sources and the writers ask
    def generation(self, link: str) -> int:
        h = self.held.get(link)
        return h.generation if h is not None else -1

    def may_poll(self, link: str) -> bool:
        h = self.held.get(link)
        if h is None:
            return False
        if self.clock.monotonic() - h.renewed_mono <= self.ttl_s:
            return True
        return not self.db_ok  # not renewed in time because the database is away: keep polling

    async def run(self) -> None:
        while True:
            try:
                await self.step()
            except Exception:  # never let the keeper die: its leases would lapse
                log.exception("lease keeper step failed; next beat retries")
            await self.clock.sleep(self.interval_s)

    async def step(self) -> None:
        at, mono = self.clock.now(), self.clock.monotonic()
        try:
            if self._ok_since is None:
                await asyncio.to_thread(ensure_rows, self.engine, self.links, at)
            gens = {k: h.generation for k, h in self.held.items()}
            wanted = await asyncio.to_thread(renew, self.engine, self.owner, gens, at, self.ttl_s)
        except Exception as exc:
            if self.db_ok:
                log.error("cannot renew link leases (%s); polling goes on, the spool keeps the data", exc)
            self.db_ok = False
            self._ok_since = None
            return
        self.db_ok = True
        if self._ok_since is None or mono - self._last_ok > self.ttl_s:  # connected again, or was stopped
            self._ok_since = mono
        self._last_ok = mono
        lost = sorted(set(self.held) - set(wanted))
        for k in wanted:
            self.held[k].renewed_mono = mono
        if lost:
            log.error(
                "lost the lease of %s (taken over while this collector was away, or another process runs as "
                "%s); stop polling",
                lost,
                self.owner,
            )
            for k in lost:
                del self.held[k]
            self.lost += len(lost)
            await self.on_lose(lost)
        back = sorted(k for k, who in wanted.items() if who and who != self.owner and k not in self.home)
        if back:
            await self.on_lose(back)  # stop polling and store the alarm events first, then release
            for k in back:
                h = self.held.pop(k)
                await asyncio.to_thread(release, self.engine, self.owner, k, h.generation, self.clock.now())
                log.warning("link %s given back to %s", k, wanted[k])
            self.given_back += len(back)
        gained = await self._take(sorted(self.home - set(self.held)), home=True)
        if mono - self._ok_since >= self.ttl_s:
            free = await asyncio.to_thread(lapsed, self.engine, self.clock.now(), self.links - set(self.held))
            gained += await self._take([k for k in free if k not in self.home], home=False)
        if gained:
            await self.on_gain(gained)

    async def _take(self, links: list[str], *, home: bool) -> list[str]:
        got, refused = [], []
        for k in links:
            at = self.clock.now()
            # from an earlier life of this name only once: if this life held it before and lost it to its
            # own name, another process runs under this name (it must not be fought over)
            fresh = k not in self._ever_held
            gen = await asyncio.to_thread(
                acquire, self.engine, self.owner, k, at, self.ttl_s, from_self=fresh
            )
            if gen is None:
                refused.append(k)
                continue
            self._ever_held.add(k)
            self.held[k] = Held(gen, self.clock.monotonic())
            got.append(k)
            g = await asyncio.to_thread(grants, self.engine, k)
            last = g[-1] if g else {}
            prev, expired = last.get("previous_owner"), last.get("previous_expired_at")
            if prev and prev != self.owner:
                gap = (at - expired).total_seconds() if expired else None
                self.takeovers.append({"link": k, "from": prev, "generation": gen, "at": at, "lapsed_s": gap})
                log.warning(
                    "took over link %s from %s (generation %d; its lease had lapsed %.1f s before)",
                    k,
                    prev,
                    gen,
                    gap or 0.0,
                )
        if home and refused:
            await asyncio.to_thread(ask_back, self.engine, self.owner, refused)
        return got

    def status(self) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "held": {k: h.generation for k, h in sorted(self.held.items())},
            "home": sorted(self.home),
            "borrowed": sorted(set(self.held) - self.home),
            "database": "reachable" if self.db_ok else "unreachable",
            "takeovers": len(self.takeovers),
            "given_back": self.given_back,
            "lost": self.lost,
        }


class Fence:
    """Tags what a collector reads with the generation of its link's lease (0: not on a leased link, −1:
    the link is not held, dropped at once) and, at write time, keeps only what a grant covers."""

    def __init__(self, keeper: LeaseKeeper, link_of: dict[str, str]) -> None:
        self.keeper = keeper
        self.link_of = link_of  # station → link

    def tag(self, station: str) -> int:
        link = self.link_of.get(station)
        return 0 if link is None else self.keeper.generation(link)

    def keep(self, conn: Connection, items: list[tuple[str, int, datetime]]) -> list[bool]:
        """For each (station, generation, time): may it be stored?"""
        pairs = {(self.link_of[s], g) for s, g, _ in items if g > 0 and s in self.link_of}
        windows = fence_windows(conn, pairs)
        out = []
        for s, g, t in items:
            ok = g == 0 or (g > 0 and within(windows.get((self.link_of.get(s, ""), g)), t))
            out.append(ok)
        return out


__all__ = [
    "Fence",
    "Held",
    "LeaseKeeper",
    "acquire",
    "clock_skew_s",
    "ask_back",
    "ensure_rows",
    "fence_windows",
    "grants",
    "lapsed",
    "leases",
    "release",
    "renew",
    "within",
]
