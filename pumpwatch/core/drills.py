"""Drills in the database: which drill runs for a tenant, its journal, its start and stop.

A drill belongs to one tenant. While it runs (`stopped_at` is null) every alarm and incident the tenant's
stations raise carries its id (`alarm.drill_id`, `incident.drill_id`; `active_drill_id` is asked in the
same transaction as the insert), so the journal, the API and the notifier can tell a drill from the real
thing whichever process stores them. At most one drill runs per tenant.

The engine that plays the scenario on a simulated fleet is the composition root's
(`pumpwatch.app.drills.DrillRunner`); the report is `pumpwatch.alarms.drill_report`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from pumpwatch.core.db.schema import drill, drill_event
from pumpwatch.core.db.types import to_utc

__all__ = [
    "DrillConflict",
    "active_drill_id",
    "active_drills",
    "get_drill",
    "journal",
    "list_drills",
    "note",
    "start",
    "stop",
]


class DrillConflict(Exception):
    """A drill already runs for the tenant."""


def active_drill_id(conn: Connection, tenant_id: str) -> int | None:
    """The id of the drill running for `tenant_id` (None: no drill), inside the caller's transaction."""
    return conn.execute(
        select(drill.c.id).where(drill.c.tenant_id == tenant_id, drill.c.stopped_at.is_(None)).limit(1)
    ).scalar_one_or_none()


def _public(r: Any) -> dict[str, Any]:
    d = dict(r._mapping)
    d["contacts"] = [c for c in d["contacts"].split(",") if c]
    d["running"] = d["stopped_at"] is None
    return d


def active_drills(engine: Engine, tenants: list[str] | None = None) -> list[dict[str, Any]]:
    """Running drills (of `tenants` when given), newest first."""
    q = select(drill).where(drill.c.stopped_at.is_(None)).order_by(drill.c.id.desc())
    if tenants is not None:
        q = q.where(drill.c.tenant_id.in_(tenants))
    with engine.connect() as conn:
        return [_public(r) for r in conn.execute(q)]


def list_drills(engine: Engine, tenants: list[str] | None = None, limit: int = 50) -> list[dict[str, Any]]:
    q = select(drill).order_by(drill.c.id.desc()).limit(limit)
    if tenants is not None:
        q = q.where(drill.c.tenant_id.in_(tenants))
    with engine.connect() as conn:
        return [_public(r) for r in conn.execute(q)]


def get_drill(engine: Engine, drill_id: int) -> dict[str, Any] | None:
    with engine.connect() as conn:
        r = conn.execute(select(drill).where(drill.c.id == drill_id)).first()
    return _public(r) if r else None


def start(
    engine: Engine,
    *,
    tenant_id: str,
    name: str,
    title: str,
    scenario: str,
    notify: str,
    contacts: list[str],
    at: datetime,
    ends_at: datetime,
    actor: str | None,
) -> int:
    """Record a drill as running from `at`; DrillConflict if one runs for the tenant already."""
    at = to_utc(at, "at")
    with engine.begin() as conn:
        other = active_drill_id(conn, tenant_id)
        if other is not None:
            raise DrillConflict(f"drill {other} is running for tenant {tenant_id}: stop it first")
        did = conn.execute(
            insert(drill)
            .values(
                tenant_id=tenant_id,
                name=name,
                title=title,
                scenario=scenario,
                notify=notify,
                contacts=",".join(contacts),
                started_at=at,
                started_by=actor,
                ends_at=to_utc(ends_at, "ends_at"),
            )
            .returning(drill.c.id)
        ).scalar_one()
        conn.execute(
            insert(drill_event).values(
                drill_id=did, at=at, kind="start", label=f"drill started: {title}", actor=actor
            )
        )
    return int(did)


def stop(engine: Engine, drill_id: int, *, at: datetime, actor: str | None, outcome: str) -> bool:
    """End a running drill (False: it had ended already)."""
    at = to_utc(at, "at")
    with engine.begin() as conn:
        n = conn.execute(
            update(drill)
            .where(drill.c.id == drill_id, drill.c.stopped_at.is_(None))
            .values(stopped_at=at, stopped_by=actor, outcome=outcome)
        ).rowcount
        if n:
            conn.execute(
                insert(drill_event).values(
                    drill_id=drill_id, at=at, kind="stop", label=f"drill {outcome}", actor=actor
                )
            )
    return bool(n)


def note(engine: Engine, drill_id: int, rows: list[tuple[datetime, str, str | None, str]]) -> None:
    """Journal `(at, kind, station_id, label)` rows of a drill (faults applied, simulated spills)."""
    if not rows:
        return
    with engine.begin() as conn:
        conn.execute(
            insert(drill_event),
            [
                {"drill_id": drill_id, "at": to_utc(at, "at"), "kind": k, "station_id": s, "label": label}
                for at, k, s, label in rows
            ],
        )


def journal(engine: Engine, drill_id: int) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(drill_event)
            .where(drill_event.c.drill_id == drill_id)
            .order_by(drill_event.c.at, drill_event.c.id)
        )
        return [dict(r._mapping) for r in rows]
