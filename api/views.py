"""The API's read models: one alarm, one station and the dispatch board as every view shows them.

The routes (api/routes/) answer requests with them and the live stream's hub (api/streamhub.py) sends
them as events, so both sit above this module and neither imports the other.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from pumpwatch.alarms import status
from pumpwatch.alarms.dispatch import dispatch_order, worst_priority
from pumpwatch.alarms.hidden import is_hidden, is_shelved
from pumpwatch.api.context import ApiContext, station_samples
from pumpwatch.api.schemas import (
    AlarmPublic,
    AssignedResource,
    DispatchEntry,
    LocationPublic,
    PointValue,
    QualityLabel,
    StationPublic,
)
from pumpwatch.core.db.types import to_utc
from pumpwatch.core.live import LiveSnapshot
from pumpwatch.core.sample import Quality, Sample

# --- one alarm --------------------------------------------------------------------------------------------


def alarm_public(r: Mapping[str, Any], now: datetime) -> AlarmPublic:
    shelved = is_shelved(r, now)
    return AlarmPublic(
        id=r["id"],
        tenant=r["tenant_id"],
        station=r["station_id"],
        name=r["name"],
        priority=r["priority"],
        message=r["message"],
        state=r["state"],
        active=r["active"],
        latched=r["latched"],
        hidden=is_hidden(r, now),
        raised_at=r["raised_at"],
        last_raised_at=r["last_raised_at"],
        raise_count=r["raise_count"],
        cleared_at=r["cleared_at"],
        value=r["value"],
        acked_at=r["acked_at"],
        acked_by=r["acked_by"],
        shelve_kind=r["shelve_kind"] if shelved else None,
        shelved_until=r["shelved_until"] if shelved else None,
        shelved_by=r["shelved_by"] if shelved else None,
        shelve_reason=r["shelve_reason"] if shelved else None,
        suppressed_by=r["suppressed_by"],
        out_of_service=r["out_of_service"],
        incident_id=r["incident_id"],
        input_not_good_since=r.get("input_not_good_since"),
        input_quality=r.get("input_quality"),
        drill_id=r.get("drill_id"),
    )


# --- one station ------------------------------------------------------------------------------------------


def _point_value(
    s: Sample | None, shown: tuple[QualityLabel, float | None], unit: str | None, is_state: bool
) -> PointValue:
    quality, age = shown
    if s is None:
        return PointValue(value=None, unit=unit, quality="no_data", observed_at=None, age_s=None)
    value: float | bool | None = s.value
    if is_state and s.value is not None:
        value = s.value >= 0.5
    age_s = round(age, 3) if age is not None else None
    return PointValue(value=value, unit=unit, quality=quality, observed_at=s.observed_at, age_s=age_s)


def assess_station(
    ctx: ApiContext,
    sid: str,
    samples: Mapping[str, Sample],
    alarms: Sequence[Mapping[str, Any]],
    now: datetime,
    mode: Mapping[str, Any] | None,
    *,
    with_shown: bool = True,
) -> tuple[status.StationState, bool]:
    """alarms/status.py's decision for one station as the views feed it (its measured points, open alarms,
    out of service, stale limit, alarm roles), and whether it is out of service."""
    oos = bool(mode and mode.get("out_of_service"))
    state = status.assess(
        measured=ctx.fleet.points.get(sid, {}).keys(),
        samples=samples,
        alarms=[status.OpenAlarm.of(a) for a in alarms],
        out_of_service=oos,
        now=now,
        stale_after_s=ctx.fleet.stale_after_s(sid),
        roles=ctx.alarm_roles(sid),
        with_shown=with_shown,
    )
    return state, oos


def build_station(
    ctx: ApiContext,
    sid: str,
    samples: dict[str, Sample],
    alarms: Sequence[Mapping[str, Any]],
    now: datetime,
    mode: dict | None = None,
) -> StationPublic:
    """One station as every view shows it: status and shown qualities from alarms/status.py."""
    fleet = ctx.fleet
    st = fleet.stations[sid]
    stale_after = fleet.stale_after_s(sid)
    points = fleet.points.get(sid, {})
    state, oos = assess_station(ctx, sid, samples, alarms, now, mode)
    values = {
        name: _point_value(samples.get(name), state.shown[name], sp.spec.unit, sp.spec.is_state)
        for name, sp in points.items()
    }
    for dp in ctx.derived.get(sid, ()):  # derived values: the same age rule, no say in the status
        s = samples.get(dp.name)
        shown = status.shown_quality(s, now, stale_after, None)
        values[dp.name] = _point_value(s, shown, dp.unit, dp.kind == "state")
    return StationPublic(
        id=sid,
        tenant=st.tenant,
        name=st.name,
        kind=st.kind,
        power_area=st.power_area,
        location=LocationPublic(lat=st.location.lat, lon=st.location.lon) if st.location else None,
        discharges_to=st.discharges_to,
        status=state.status,
        active_alarms=state.active_alarms,
        suppressed_alarms=state.suppressed_alarms,
        live=state.live,
        out_of_service=oos,
        heard_at=state.heard_at,
        data_age_s=state.data_age_s,
        stale_after_s=stale_after,
        values=values,
        levels=st.levels.model_dump(exclude_none=True) if st.levels else None,
    )


def _point_dict(
    s: Sample | None, shown: tuple[str, float | None], unit: str | None, is_state: bool, iso: dict
) -> dict[str, Any]:
    if s is None:
        return {"value": None, "unit": unit, "quality": "no_data", "observed_at": None, "age_s": None}
    quality, age = shown
    value: float | bool | None = s.value
    if is_state and value is not None:
        value = value >= 0.5
    elif value is not None and not isinstance(value, bool):
        value = float(value)
    return {
        "value": value,
        "unit": unit,
        "quality": quality,
        "observed_at": iso.get(s.observed_at) or iso.setdefault(s.observed_at, s.observed_at.isoformat()),
        "age_s": round(age, 3) if age is not None else None,
    }


def station_view(
    ctx: ApiContext,
    sid: str,
    samples: dict[str, Sample],
    alarms: Sequence[Mapping[str, Any]],
    now: datetime,
    mode: dict | None = None,
) -> dict[str, Any]:
    """`build_station(...).model_dump(mode="json")` without pydantic (a quarter of its cost; the station
    list builds thousands): the same decisions (alarms/status.py), the same JSON.
    tests/scale/test_lists.py holds the two equal."""
    fleet = ctx.fleet
    st = fleet.stations[sid]
    stale_after = fleet.stale_after_s(sid)
    points = fleet.points.get(sid, {})
    state, oos = assess_station(ctx, sid, samples, alarms, now, mode)
    shown = state.shown
    iso: dict[datetime, str] = {}  # a poll's values share their instant
    values = {
        name: _point_dict(samples.get(name), shown[name], sp.spec.unit, sp.spec.is_state, iso)
        for name, sp in points.items()
    }
    for dp in ctx.derived.get(sid, ()):
        s = samples.get(dp.name)
        values[dp.name] = _point_dict(
            s, status.shown_quality(s, now, stale_after, None), dp.unit, dp.kind == "state", iso
        )
    loc = st.location
    return {
        "id": sid,
        "tenant": st.tenant,
        "name": st.name,
        "kind": st.kind,
        "power_area": st.power_area,
        "location": {"lat": float(loc.lat), "lon": float(loc.lon)} if loc else None,
        "discharges_to": st.discharges_to,
        "status": state.status,
        "active_alarms": state.active_alarms,
        "suppressed_alarms": state.suppressed_alarms,
        "live": state.live,
        "out_of_service": oos,
        "heard_at": state.heard_at.isoformat() if state.heard_at is not None else None,
        "data_age_s": state.data_age_s,
        "stale_after_s": float(stale_after) if stale_after is not None else None,
        "values": values,
        "levels": (
            {k: float(v) for k, v in st.levels.model_dump(exclude_none=True).items()} if st.levels else None
        ),
        "coverage": None,  # GET /stations/{id}'s
    }


# --- the dispatch board: where the portable generators and vacuum trucks go first -------------------------

# An active alarm of one of these puts a station on the board: it cannot pump, or its water is high.
REASONS = (
    "power_failure",
    "pumps_unavailable",
    "pumps_not_restarted",
    "time_to_overflow",
    "time_to_overflow_critical",
    "high_water",
    "hwl_float",
)


def good(samples: dict, name: str) -> float | None:
    s = samples.get(name)
    return s.value if s is not None and s.quality is Quality.GOOD else None


def pumps_running(samples: dict) -> bool:
    return any(
        k.startswith("pump") and k.endswith("_running") and v.quality is Quality.GOOD and v.value
        for k, v in samples.items()
    )


def assigned_resource(ctx: ApiContext, a: dict, now: datetime, spill_at: datetime | None) -> AssignedResource:
    res = ctx.resources.resources.get(a["resource_id"]) if ctx.resources is not None else None
    eta = to_utc(a["eta_at"])
    arrived = a["state"] != "dispatched"
    arrival = now if arrived else max(now, eta)
    return AssignedResource(
        assignment_id=a["id"],
        resource=a["resource_id"],
        kind=res.kind if res else "unknown",
        name=res.name if res else a["resource_id"],
        capacity=capacity(res),
        state=a["state"],
        assigned_at=a["assigned_at"],
        assigned_by=a["assigned_by"],
        eta_at=eta,
        arrives_in_min=0.0 if arrived else round(max(0.0, (eta - now).total_seconds() / 60), 1),
        late=not arrived and spill_at is not None and arrival > spill_at,
    )


def capacity(res: Any) -> str:
    if res is None:
        return ""
    return f"{res.kva:g} kVA" if res.kind == "generator" else f"{res.m3:g} m³"


def build_board(
    ctx: ApiContext,
    latest: dict[str, dict[str, Sample]] | LiveSnapshot,
    active_alarms: Sequence[Mapping[str, Any]],
    now: datetime,
    tenants: Collection[str] | None,
    assignments: Collection[dict] = (),
) -> list[DispatchEntry]:
    """The ranked board from the latest values, the active alarms and the open resource assignments
    (None: every tenant). A station whose portable generator runs leaves the board once a pump runs."""
    active: dict[str, list[Mapping[str, Any]]] = {}
    for a in active_alarms:
        active.setdefault(a["station_id"], []).append(a)
    sent: dict[str, list[dict]] = {}
    for a in assignments:
        sent.setdefault(a["station_id"], []).append(a)
    entries = []
    for sid, st in ctx.fleet.stations.items():
        if tenants is not None and st.tenant not in tenants:
            continue
        samples = station_samples(latest, sid)
        reasons = sorted({a["name"] for a in active.get(sid, []) if a["name"] in REASONS})
        tto = good(samples, "tto_spill_min")
        if not reasons:
            continue
        if tto is not None and not math.isfinite(tto):
            tto = None  # no estimate (never a spill time computed from infinity)
        alarms = active.get(sid, [])
        generator_runs = any(
            a["state"] == "running"
            and ctx.resources is not None
            and getattr(ctx.resources.resources.get(a["resource_id"]), "kind", None) == "generator"
            for a in sent.get(sid, [])
        )
        if generator_runs and pumps_running(samples):
            continue  # it pumps on the portable generator: no longer a station that cannot pump
        entries.append(
            (dispatch_order(tto, [a["priority"] for a in alarms]), sid, tto, st, reasons, samples, alarms)
        )
    entries.sort(key=lambda e: (*e[0], e[1]))  # the one ranking (alarms/dispatch.py), station id last
    data = []
    for rank, (_, sid, tto, st, reasons, samples, alarms) in enumerate(entries, start=1):
        spill_at = now + timedelta(minutes=tto) if tto is not None else None
        here = [assigned_resource(ctx, a, now, spill_at) for a in sent.get(sid, [])]
        data.append(
            DispatchEntry(
                rank=rank,
                station=sid,
                tenant=st.tenant,
                name=st.name,
                power_area=st.power_area,
                location=LocationPublic(lat=st.location.lat, lon=st.location.lon) if st.location else None,
                reasons=reasons,
                priority=worst_priority(a["priority"] for a in alarms),
                level_m=good(samples, "wet_well_level_m"),
                tto_spill_min=None if tto is None else round(tto, 1),
                tto_spill_conservative_min=good(samples, "tto_spill_conservative_min"),
                spill_at=spill_at,
                inflow_m3_min=good(samples, "inflow_m3_min"),
                incident_id=next((a["incident_id"] for a in alarms if a["incident_id"]), None),
                resources=here,
                late=bool(here) and all(r.late for r in here),
            )
        )
    return data
