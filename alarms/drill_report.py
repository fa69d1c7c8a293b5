"""The drill report: what was raised when, who acknowledged and how soon, the incidents, and each dispatch
decision against the simulated spill it was meant to prevent.

Everything comes from the database (the drill's journal, the alarms and incidents marked with its id, the
resource assignments made while it ran), so the report reads the same in any process and after a restart.
A station "spilled" in the drill when the simulator's wet well reached its spill level (the drill engine
journals it as `spill`); a resource is in time when it was on site (or, not there yet, due) before that,
or, where the station did not spill, before the spill its time to overflow promised when it was sent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, or_, select

from pumpwatch.core import drills
from pumpwatch.core.db.schema import alarm, incident, resource_assignment, resource_event
from pumpwatch.core.db.types import to_utc

__all__ = ["drill_report"]


def _s(a: datetime | None, b: datetime | None) -> float | None:
    return None if a is None or b is None else round((to_utc(b) - to_utc(a)).total_seconds(), 1)


def drill_report(engine: Engine, drill_id: int, now: datetime) -> dict[str, Any] | None:
    d = drills.get_drill(engine, drill_id)
    if d is None:
        return None
    timeline = drills.journal(engine, drill_id)
    end = d["stopped_at"] or now
    with engine.connect() as conn:
        alarms = [
            dict(r._mapping)
            for r in conn.execute(
                select(
                    alarm.c.id,
                    alarm.c.station_id,
                    alarm.c.name,
                    alarm.c.priority,
                    alarm.c.raised_at,
                    alarm.c.acked_at,
                    alarm.c.acked_by,
                    alarm.c.cleared_at,
                    alarm.c.suppressed_by,
                    alarm.c.incident_id,
                )
                .where(alarm.c.drill_id == drill_id)
                .order_by(alarm.c.raised_at, alarm.c.id)
            )
        ]
        incidents = [
            dict(r._mapping)
            for r in conn.execute(
                select(
                    incident.c.id,
                    incident.c.title,
                    incident.c.phase,
                    incident.c.opened_at,
                    incident.c.first_response_at,
                    incident.c.restored_at,
                ).where(incident.c.drill_id == drill_id)
            )
        ]
        assignments = [
            dict(r._mapping)
            for r in conn.execute(
                select(resource_assignment)
                .where(
                    resource_assignment.c.tenant_id == d["tenant_id"],
                    or_(
                        resource_assignment.c.drill_id == drill_id,
                        (resource_assignment.c.assigned_at >= d["started_at"])
                        & (resource_assignment.c.assigned_at <= end),
                    ),
                )
                .order_by(resource_assignment.c.assigned_at)
            )
        ]
        events: dict[int, dict[str, datetime]] = {}
        if assignments:
            for r in conn.execute(
                select(resource_event).where(
                    resource_event.c.assignment_id.in_([a["id"] for a in assignments])
                )
            ):
                events.setdefault(r.assignment_id, {}).setdefault(r.state, to_utc(r.at))
    spills: dict[str, datetime] = {}
    for e in timeline:
        if e["kind"] == "spill" and e["station_id"] not in spills:
            spills[e["station_id"]] = to_utc(e["at"])
    start = to_utc(d["started_at"])
    out_alarms = [
        {
            **a,
            "after_start_s": _s(start, a["raised_at"]),
            "ack_after_s": _s(a["raised_at"], a["acked_at"]),
        }
        for a in alarms
    ]
    dispatch = []
    for a in assignments:
        ev = events.get(a["id"], {})
        on_site = ev.get("on_site")
        arrival = on_site or to_utc(a["eta_at"])
        spill = spills.get(a["station_id"])  # the simulated truth, when it spilled
        expected = to_utc(a["spill_expected_at"]) if a["spill_expected_at"] else None
        against = spill or expected
        if against is None:
            verdict = "no_spill_expected"
        elif arrival <= against:
            verdict = "in_time"  # before the spill (or before the expected one, which then did not come)
        else:
            verdict = "too_late"
        dispatch.append(
            {
                "assignment_id": a["id"],
                "resource": a["resource_id"],
                "station": a["station_id"],
                "assigned_at": a["assigned_at"],
                "assigned_by": a["assigned_by"],
                "after_start_s": _s(start, a["assigned_at"]),
                "eta_at": a["eta_at"],
                "on_site_at": on_site,
                "running_at": ev.get("running"),
                "returned_at": ev.get("returned"),
                "state": a["state"],
                "spill_at": spill,
                "spill_expected_at": expected,
                "margin_s": _s(arrival, against) if against is not None else None,
                "verdict": verdict,
            }
        )
    served = {x["station"] for x in dispatch}
    out_spills = [
        {
            "station": sid,
            "at": at,
            "after_start_s": _s(start, at),
            "resource_in_time": any(x["station"] == sid and x["verdict"] == "in_time" for x in dispatch),
            "resource_assigned": sid in served,
        }
        for sid, at in sorted(spills.items(), key=lambda kv: kv[1])
    ]
    acked = [a for a in out_alarms if a["ack_after_s"] is not None]
    summary = {
        "alarms": len(out_alarms),
        "acknowledged": len(acked),
        "unacknowledged": len(out_alarms) - len(acked),
        "median_ack_s": sorted(a["ack_after_s"] for a in acked)[len(acked) // 2] if acked else None,
        "acked_by": sorted({a["acked_by"] for a in acked if a["acked_by"]}),
        "incidents": len(incidents),
        "assignments": len(dispatch),
        "in_time": sum(1 for x in dispatch if x["verdict"] == "in_time"),
        "too_late": sum(1 for x in dispatch if x["verdict"] == "too_late"),
        "spills": len(out_spills),
        "spills_without_resource": sum(1 for s in out_spills if not s["resource_assigned"]),
        "duration_s": _s(start, end),
    }
    return {
        "drill": d,
        "timeline": timeline,
        "alarms": out_alarms,
        "incidents": incidents,
        "dispatch": dispatch,
        "spills": out_spills,
        "summary": summary,
    }
