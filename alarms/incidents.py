"""Mass events: many stations of one power area losing mains within minutes become one incident.

An incident follows report → first_response → restoration → cause → prevention → closed, with notes.
The system moves it to first_response at the first acknowledgement of one of its alarms, and records
`restored_at` when every station's alarm has cleared; operators move the rest, each step with a note.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, insert, select, update

from alarms.rules import IncidentRule
from alarms.store import AlarmActionError
from pumpwatch.audit import Audit, write_optional
from pumpwatch.config import Fleet
from pumpwatch.db.schema import alarm, incident, incident_note, incident_station
from pumpwatch.db.types import to_utc

log = logging.getLogger(__name__)

PHASES = ("report", "first_response", "restoration", "cause", "prevention", "closed")


class IncidentGrouper:
    """Runs in the alarm service's writer thread, after each raise or clear is stored."""

    def __init__(self, rules: list[IncidentRule], fleet: Fleet, engine: Engine) -> None:
        self.rules = {r.alarm: r for r in rules}
        self.fleet = fleet
        self.engine = engine
        self.open: dict[tuple[str, str, str], int] = {}  # (rule, tenant, area) -> incident id, until restored
        self.recent: dict[tuple[str, str, str], list[tuple[datetime, str, int]]] = defaultdict(list)

    def restore(self) -> None:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(incident.c.id, incident.c.kind, incident.c.tenant_id, incident.c.power_area).where(
                    incident.c.restored_at.is_(None), incident.c.phase != "closed"
                )
            ).all()
        for r in rows:
            self.open[(r.kind, r.tenant_id, r.power_area)] = r.id

    def _key(self, name: str, station_id: str) -> tuple[IncidentRule, tuple[str, str, str]] | None:
        rule = self.rules.get(name)
        st = self.fleet.stations.get(station_id)
        if rule is None or st is None or st.power_area is None:
            return None
        return rule, (rule.name, st.tenant, st.power_area)

    def on_raise(self, name: str, station_id: str, alarm_id: int, at: datetime) -> int | None:
        found = self._key(name, station_id)
        if found is None:
            return None
        rule, key = found
        if key in self.open:
            self._attach(self.open[key], [(at, station_id, alarm_id)])
            return self.open[key]
        recent = [r for r in self.recent[key] if (at - r[0]).total_seconds() <= rule.window_s]
        recent.append((at, station_id, alarm_id))
        self.recent[key] = recent
        if len({s for _, s, _ in recent}) < rule.min_stations:
            return None
        title = rule.title.format(count=len({s for _, s, _ in recent}), alarm=rule.alarm, area=key[2])
        with self.engine.begin() as conn:
            iid = conn.execute(
                insert(incident)
                .values(
                    tenant_id=key[1],
                    kind=rule.name,
                    power_area=key[2],
                    title=title,
                    phase="report",
                    opened_at=recent[0][0],
                )
                .returning(incident.c.id)
            ).scalar_one()
            conn.execute(
                insert(incident_note).values(incident_id=iid, at=at, phase="report", actor=None, text=title)
            )
        self.open[key] = iid
        self.recent.pop(key, None)
        self._attach(iid, recent)
        log.warning("incident %d opened: %s", iid, title)
        return iid

    def _attach(self, iid: int, members: list[tuple[datetime, str, int]]) -> None:
        with self.engine.begin() as conn:
            have = set(
                conn.execute(
                    select(incident_station.c.station_id).where(incident_station.c.incident_id == iid)
                ).scalars()
            )
            for at, sid, aid in members:
                conn.execute(update(alarm).where(alarm.c.id == aid).values(incident_id=iid))
                if sid not in have:
                    conn.execute(
                        insert(incident_station).values(incident_id=iid, station_id=sid, joined_at=at)
                    )
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
        iid = self.open.get(key)
        if iid is None:
            return
        with self.engine.begin() as conn:
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
        del self.open[key]
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
) -> dict:
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
    return get_incident(engine, iid)  # type: ignore[return-value]


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
