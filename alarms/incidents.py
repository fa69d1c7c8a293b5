"""Mass events: many stations of one power area losing mains within minutes become one incident.

An incident follows report → first_response → restoration → cause → prevention → closed, with notes.
The system moves it to first_response at the first acknowledgement of one of its alarms, and records
`restored_at` when every station's alarm has cleared; operators move the rest, each step with a note.

The grouping reads its state from the database (the open incident of an area, the raises within the
window), not from memory: collector shards each evaluate only their own stations' alarms, and an outage of
one area spanning shards must still be one incident. "Is one open? else count the recent raises and open
one" and "was that the last station to return?" each run in one transaction under a lock per
(rule, tenant, area): a PostgreSQL transaction-scoped advisory lock; SQLite serialises writers already
(`BEGIN IMMEDIATE`).
"""

from __future__ import annotations

import logging
import zlib
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, or_, select, text, update

from pumpwatch.alarms.rules import IncidentRule
from pumpwatch.alarms.store import AlarmActionError
from pumpwatch.core import drills
from pumpwatch.core.audit import Audit, write_optional
from pumpwatch.core.config import Fleet
from pumpwatch.core.db.schema import alarm, incident, incident_note, incident_station
from pumpwatch.core.db.types import to_utc

log = logging.getLogger(__name__)

PHASES = ("report", "first_response", "restoration", "cause", "prevention", "closed")
_LOCK_SPACE = 0x7077_696E  # "pwin": the first key of pg_advisory_xact_lock(int4, int4) for incident grouping

Key = tuple[str, str, str]  # (rule name, tenant, power area)


class IncidentGrouper:
    """Runs in the alarm service's writer thread, after each raise or clear is stored."""

    def __init__(self, rules: list[IncidentRule], fleet: Fleet, engine: Engine) -> None:
        self.rules = {r.alarm: r for r in rules}
        self.fleet = fleet
        self.engine = engine
        self.area_stations: dict[tuple[str, str], list[str]] = defaultdict(list)
        for sid, st in fleet.stations.items():
            if st.power_area is not None:
                self.area_stations[(st.tenant, st.power_area)].append(sid)

    def _key(self, name: str, station_id: str) -> tuple[IncidentRule, Key] | None:
        rule = self.rules.get(name)
        st = self.fleet.stations.get(station_id)
        if rule is None or st is None or st.power_area is None:
            return None
        return rule, (rule.name, st.tenant, st.power_area)

    @staticmethod
    def _lock(conn: Connection, key: Key) -> None:
        if conn.dialect.name != "postgresql":
            return  # SQLite: this transaction began IMMEDIATE, so it is the only writer
        k = zlib.crc32("\x1f".join(key).encode())
        conn.execute(
            text("SELECT pg_advisory_xact_lock(:space, :key)"),
            {"space": _LOCK_SPACE, "key": k - 2**32 if k >= 2**31 else k},
        )

    @staticmethod
    def _open_incident(conn: Connection, key: Key) -> int | None:
        return conn.execute(
            select(incident.c.id)
            .where(
                incident.c.kind == key[0],
                incident.c.tenant_id == key[1],
                incident.c.power_area == key[2],
                incident.c.restored_at.is_(None),
                incident.c.phase != "closed",
            )
            .order_by(incident.c.id)
            .limit(1)
        ).scalar()

    def on_raise(self, name: str, station_id: str, alarm_id: int, at: datetime) -> int | None:
        found = self._key(name, station_id)
        if found is None:
            return None
        rule, key = found
        with self.engine.begin() as conn:
            self._lock(conn, key)
            open_id = self._open_incident(conn, key)
            if open_id is not None:
                self._attach(conn, open_id, [(at, station_id, alarm_id)])
                return open_id
            # Raises of this alarm in the area within the window, whichever process stored them, that
            # belong to no incident still open (one restored before may have held an earlier raise).
            raised_at = func.coalesce(alarm.c.last_raised_at, alarm.c.raised_at)
            rows = conn.execute(
                select(alarm.c.id, alarm.c.station_id, raised_at.label("at"))
                .select_from(alarm.outerjoin(incident, incident.c.id == alarm.c.incident_id))
                .where(
                    alarm.c.name == rule.alarm,
                    alarm.c.tenant_id == key[1],
                    alarm.c.station_id.in_(self.area_stations[(key[1], key[2])]),
                    raised_at >= at - timedelta(seconds=rule.window_s),
                    or_(
                        alarm.c.incident_id.is_(None),
                        incident.c.restored_at.is_not(None),
                        incident.c.phase == "closed",
                    ),
                )
            ).all()
            members = sorted((to_utc(r.at), r.station_id, r.id) for r in rows)  # this raise among them
            count = len({sid for _, sid, _ in members})
            if count < rule.min_stations:
                return None
            title = rule.title.format(count=count, alarm=rule.alarm, area=key[2])
            drill_id = drills.active_drill_id(conn, key[1])
            if drill_id is not None:  # said in its title and journal, whoever reads them
                title = f"[DRILL {drill_id}] {title}"
            iid: int = conn.execute(
                insert(incident)
                .values(
                    tenant_id=key[1],
                    kind=rule.name,
                    power_area=key[2],
                    title=title,
                    phase="report",
                    opened_at=min(m[0] for m in members),
                    drill_id=drill_id,
                )
                .returning(incident.c.id)
            ).scalar_one()
            conn.execute(
                insert(incident_note).values(incident_id=iid, at=at, phase="report", actor=None, text=title)
            )
            self._attach(conn, iid, members)
        log.warning("incident %d opened: %s", iid, title)
        return iid

    @staticmethod
    def _attach(conn: Connection, iid: int, members: list[tuple[datetime, str, int]]) -> None:
        have = set(
            conn.execute(
                select(incident_station.c.station_id).where(incident_station.c.incident_id == iid)
            ).scalars()
        )
        for at, sid, aid in members:
            conn.execute(update(alarm).where(alarm.c.id == aid).values(incident_id=iid))
            if sid not in have:
                conn.execute(insert(incident_station).values(incident_id=iid, station_id=sid, joined_at=at))
                have.add(sid)
            else:
                conn.execute(
                    update(incident_station)
                    .where(incident_station.c.incident_id == iid, incident_station.c.station_id == sid)
                    .values(restored_at=None)
                )

    def on_clear(self, name: str, station_id: str, at: datetime) -> None:
        found = self._key(name, station_id)
        if found is None:
            return
        _, key = found
        with self.engine.begin() as conn:
            self._lock(conn, key)
            iid = self._open_incident(conn, key)
            if iid is None:
                return
            conn.execute(
                update(incident_station)
                .where(incident_station.c.incident_id == iid, incident_station.c.station_id == station_id)
                .values(restored_at=at)
            )
            waiting = conn.execute(
                select(func.count()).where(
                    incident_station.c.incident_id == iid, incident_station.c.restored_at.is_(None)
                )
            ).scalar_one()
            if waiting:
                return
            phase = conn.execute(select(incident.c.phase).where(incident.c.id == iid)).scalar_one()
            new_phase = "cause" if PHASES.index(phase) < PHASES.index("cause") else phase
            conn.execute(update(incident).where(incident.c.id == iid).values(restored_at=at, phase=new_phase))
            conn.execute(
                insert(incident_note).values(
                    incident_id=iid, at=at, phase=new_phase, actor=None, text="every station restored"
                )
            )
        log.warning("incident %d: every station restored", iid)


def note_first_response(engine: Engine, alarm_id: int, at: datetime, actor: str) -> None:
    """An alarm of an incident was acknowledged: the incident has its first response."""
    with engine.begin() as conn:
        iid = conn.execute(select(alarm.c.incident_id).where(alarm.c.id == alarm_id)).scalar()
        if iid is None:
            return
        done = conn.execute(
            update(incident)
            .where(incident.c.id == iid, incident.c.first_response_at.is_(None))
            .values(first_response_at=at, phase="first_response")
            .returning(incident.c.id)
        ).scalar_one_or_none()
        if done is not None:
            conn.execute(
                insert(incident_note).values(
                    incident_id=iid, at=at, phase="first_response", actor=actor, text="first acknowledgement"
                )
            )


def add_note(
    engine: Engine,
    iid: int,
    *,
    actor: str,
    at: datetime,
    text: str,
    phase: str | None,
    audit: Audit | None = None,
) -> dict[str, Any]:
    """A note, and optionally the move to a later phase (phases never go back)."""
    at = to_utc(at, "at")
    if not text.strip():
        raise AlarmActionError(422, "a note needs text")
    with engine.begin() as conn:
        cur = conn.execute(select(incident.c.phase).where(incident.c.id == iid)).scalar()
        if cur is None:
            raise AlarmActionError(404, f"no incident {iid}")
        new = phase or cur
        if new not in PHASES:
            raise AlarmActionError(422, f"phase must be one of {', '.join(PHASES)}")
        if PHASES.index(new) < PHASES.index(cur):
            raise AlarmActionError(409, f"incident {iid} is at {cur}: phases do not go back")
        if new != cur:
            conn.execute(
                update(incident)
                .where(incident.c.id == iid)
                .values(phase=new, closed_at=at if new == "closed" else None)
            )
        conn.execute(insert(incident_note).values(incident_id=iid, at=at, phase=new, actor=actor, text=text))
        write_optional(audit, conn, old_value=cur, new_value=new, detail=text[:500])
    return get_incident(engine, iid)  # type: ignore[return-value]  # (it was read above: there)


def list_incidents(
    engine: Engine, *, tenant_ids: list[str] | None = None, open_only: bool = True, limit: int = 200
) -> list[dict[str, Any]]:
    if tenant_ids is not None and not tenant_ids:
        return []
    n = select(func.count()).where(incident_station.c.incident_id == incident.c.id).scalar_subquery()
    out = (
        select(func.count())
        .where(incident_station.c.incident_id == incident.c.id, incident_station.c.restored_at.is_(None))
        .scalar_subquery()
    )
    stmt = select(incident, n.label("station_count"), out.label("stations_out"))
    if tenant_ids is not None:
        stmt = stmt.where(incident.c.tenant_id.in_(tenant_ids))
    if open_only:
        stmt = stmt.where(incident.c.phase != "closed")
    stmt = stmt.order_by(incident.c.opened_at.desc()).limit(limit)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt)]


def get_incident(engine: Engine, iid: int) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(select(incident).where(incident.c.id == iid)).first()
        if row is None:
            return None
        out = dict(row._mapping)
        out["stations"] = [
            dict(r._mapping)
            for r in conn.execute(
                select(incident_station)
                .where(incident_station.c.incident_id == iid)
                .order_by(incident_station.c.joined_at)
            )
        ]
        out["notes"] = [
            dict(r._mapping)
            for r in conn.execute(
                select(incident_note)
                .where(incident_note.c.incident_id == iid)
                .order_by(incident_note.c.at, incident_note.c.id)
            )
        ]
        out["alarm_ids"] = list(conn.execute(select(alarm.c.id).where(alarm.c.incident_id == iid)).scalars())
    return out
