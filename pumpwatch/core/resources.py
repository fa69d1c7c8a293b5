"""Mobile resources (issue 18 part 5): portable generators and vacuum trucks per tenant, sent to stations.

The register is configuration (`resources:` in fleet.yaml, a YAML file validated like the rest):

    speed_kmh: 30                       # road speed when no travel time is configured (est.)
    bases:
      - id: kita-depot
        tenant: kita
        name: 北市 資材置場
        location: {lat: 35.7050, lon: 139.7250}
        travel_min: {KITA-MP-01: 12, KITA-MP-07: 25}   # measured drives, preferred over distance / speed
    resources:
      - {id: kita-gen-1, tenant: kita, kind: generator, name: 可搬発電機 1号, kva: 25, base: kita-depot}
      - {id: kita-vac-1, tenant: kita, kind: vacuum_truck, name: 吸引車 1号, m3: 4, base: kita-depot}
      - {id: kita-gen-2, ..., base: kita-depot, position: {lat: 35.71, lon: 139.73}}  # last known, if away

Sending one is journaled in the database (`resource_assignment`, `resource_event`: who, when, each state):
dispatched → on_site → running → returned, in that order (a vacuum truck "runs" while it pumps out the
wet well). One open assignment per resource. The travel time estimate is fixed when it is sent: the
configured drive from its base, else the great-circle distance from where it is over `speed_kmh`.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from pumpwatch.core import drills
from pumpwatch.core.config.loader import located_problems
from pumpwatch.core.config.models import Ident, Location
from pumpwatch.core.config.yamlsrc import ConfigError, load_yaml
from pumpwatch.core.db.schema import resource_assignment, resource_event
from pumpwatch.core.db.types import to_utc

__all__ = [
    "STATES",
    "AssignError",
    "Register",
    "advance",
    "assign",
    "load_register",
    "open_assignments",
    "travel_s",
]

STATES = ("dispatched", "on_site", "running", "returned")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Base(Strict):
    id: Ident
    tenant: Ident
    name: str
    location: Location | None = None
    travel_min: dict[str, Annotated[float, Field(gt=0, le=24 * 60)]] = Field(default_factory=dict)


class Resource(Strict):
    id: Ident
    tenant: Ident
    kind: Literal["generator", "vacuum_truck"]
    name: str
    base: Ident
    kva: Annotated[float, Field(gt=0, le=5000)] | None = None  # generators
    m3: Annotated[float, Field(gt=0, le=100)] | None = None  # vacuum trucks: tank volume
    position: Location | None = None  # last known position when away from its base

    @model_validator(mode="after")
    def _capacity(self) -> Resource:
        if self.kind == "generator" and (self.kva is None or self.m3 is not None):
            raise ValueError("a generator gives its kva (and no m3)")
        if self.kind == "vacuum_truck" and (self.m3 is None or self.kva is not None):
            raise ValueError("a vacuum truck gives its tank m3 (and no kva)")
        return self


class RegisterFile(Strict):
    speed_kmh: Annotated[float, Field(gt=0, le=200)] = 30.0
    bases: list[Base] = Field(default_factory=list)
    resources: list[Resource] = Field(default_factory=list)


class Register:
    """The validated register: resources and bases by id, the road speed."""

    def __init__(self, f: RegisterFile) -> None:
        self.speed_kmh = f.speed_kmh
        self.bases = {b.id: b for b in f.bases}
        self.resources = {r.id: r for r in f.resources}

    def of_tenants(self, tenants: Any) -> list[Resource]:
        return [r for r in self.resources.values() if r.tenant in tenants]


def load_register(path: Path, fleet: Any) -> Register:
    """The register in `path`, checked against `fleet` (tenants, stations, bases); ConfigError lists all."""
    located = load_yaml(path)
    try:
        f = RegisterFile.model_validate(located.data or {})
    except ValidationError as exc:
        raise ConfigError(
            [p for err in exc.errors() for p in located_problems(located, tuple(err["loc"]), err)]
        ) from None
    problems = []
    seen: set[str] = set()
    for i, b in enumerate(f.bases):
        if b.id in seen:
            problems.append(f"{located.where(('bases', i, 'id'))}: base {b.id!r} is defined twice")
        seen.add(b.id)
        if b.tenant not in fleet.tenants:
            problems.append(f"{located.where(('bases', i, 'tenant'))}: unknown tenant {b.tenant!r}")
        for sid in b.travel_min:
            st = fleet.stations.get(sid)
            if st is None:
                problems.append(f"{located.where(('bases', i, 'travel_min', sid))}: unknown station {sid!r}")
            elif st.tenant != b.tenant:
                problems.append(
                    f"{located.where(('bases', i, 'travel_min', sid))}: station {sid} is tenant "
                    f"{st.tenant!r}'s, the base {b.tenant!r}'s"
                )
    bases = {b.id: b for b in f.bases}
    ids: set[str] = set()
    for i, r in enumerate(f.resources):
        if r.id in ids:
            problems.append(f"{located.where(('resources', i, 'id'))}: resource {r.id!r} is defined twice")
        ids.add(r.id)
        if r.tenant not in fleet.tenants:
            problems.append(f"{located.where(('resources', i, 'tenant'))}: unknown tenant {r.tenant!r}")
        found = bases.get(r.base)
        if found is None:
            problems.append(
                f"{located.where(('resources', i, 'base'))}: unknown base {r.base!r} "
                f"(known: {', '.join(sorted(bases)) or 'none'})"
            )
        elif found.tenant != r.tenant:
            problems.append(
                f"{located.where(('resources', i, 'base'))}: base {r.base} is tenant {found.tenant!r}'s"
            )
    if problems:
        raise ConfigError(problems)
    return Register(f)


def _km(a: Location, b: Location) -> float:
    """Great-circle distance (haversine, km)."""
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    dp, dl = p2 - p1, math.radians(b.lon - a.lon)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(h))


def travel_s(reg: Register, res: Resource, station: Any) -> tuple[float | None, str]:
    """Seconds from where the resource is to `station`, and how that was estimated (None: cannot say:
    no configured drive and no location at one end)."""
    base = reg.bases[res.base]
    if res.position is None and station.id in base.travel_min:
        return base.travel_min[station.id] * 60.0, f"configured drive from {base.id}"
    here = res.position or base.location
    if here is None or station.location is None:
        return None, "no location to measure from"
    km = _km(here, station.location)
    where = "last known position" if res.position is not None else base.id
    return km / reg.speed_kmh * 3600.0, f"{km:.1f} km from {where} at {reg.speed_kmh:g} km/h"


class AssignError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def open_assignments(engine: Engine, tenants: Any) -> list[dict[str, Any]]:
    """Open (not returned) assignments of `tenants`, with the time of each state reached."""
    with engine.connect() as conn:
        rows = [
            dict(r._mapping)
            for r in conn.execute(
                select(resource_assignment)
                .where(resource_assignment.c.open, resource_assignment.c.tenant_id.in_(list(tenants)))
                .order_by(resource_assignment.c.assigned_at)
            )
        ]
        if rows:
            for e in conn.execute(
                select(resource_event).where(resource_event.c.assignment_id.in_([r["id"] for r in rows]))
            ):
                for r in rows:
                    if r["id"] == e.assignment_id:
                        r.setdefault("states", {})[e.state] = {"at": to_utc(e.at), "by": e.actor}
    return rows


def assign(
    engine: Engine,
    reg: Register,
    fleet: Any,
    resource_id: str,
    station_id: str,
    *,
    actor: str,
    now: datetime,
    spill_expected_at: datetime | None = None,
) -> dict[str, Any]:
    """Send a resource to a station now (journaled); AssignError 404/409/422 saying why not."""
    res = reg.resources.get(resource_id)
    st = fleet.stations.get(station_id)
    if res is None or st is None or st.tenant != res.tenant:
        raise AssignError(404, "no such resource or station of that tenant")
    seconds, how = travel_s(reg, res, st)
    if seconds is None:
        raise AssignError(
            422, f"no travel time for {resource_id} to {station_id}: configure travel_min or both locations"
        )
    now = to_utc(now, "now")
    try:
        with engine.begin() as conn:
            aid = conn.execute(
                insert(resource_assignment)
                .values(
                    tenant_id=res.tenant,
                    resource_id=res.id,
                    station_id=station_id,
                    state="dispatched",
                    assigned_at=now,
                    assigned_by=actor,
                    eta_at=now + timedelta(seconds=seconds),
                    travel_s=seconds,
                    spill_expected_at=spill_expected_at,
                    updated_at=now,
                    open=True,
                    drill_id=drills.active_drill_id(conn, res.tenant),
                )
                .returning(resource_assignment.c.id)
            ).scalar_one()
            conn.execute(
                insert(resource_event).values(assignment_id=aid, at=now, state="dispatched", actor=actor)
            )
    except IntegrityError:
        raise AssignError(409, f"{resource_id} is already assigned: return it first") from None
    return {"id": aid, "travel_s": seconds, "estimate": how, "eta_at": now + timedelta(seconds=seconds)}


def advance(
    engine: Engine, assignment_id: int, state: str, *, actor: str, now: datetime, tenants: Any
) -> dict[str, Any]:
    """Move an assignment to its next state (the order is fixed; returned may come from any state)."""
    if state not in STATES[1:]:
        raise AssignError(422, f"state is one of {', '.join(STATES[1:])}")
    now = to_utc(now, "now")
    with engine.begin() as conn:
        row = conn.execute(
            select(resource_assignment).where(resource_assignment.c.id == assignment_id)
        ).first()
        if row is None or row.tenant_id not in tenants:
            raise AssignError(404, "not found")
        if not row.open:
            raise AssignError(409, f"assignment {assignment_id} has returned already")
        here, there = STATES.index(row.state), STATES.index(state)
        if state != "returned" and there != here + 1:
            raise AssignError(409, f"{row.state} → {state}: the next state is {STATES[here + 1]}")
        conn.execute(
            update(resource_assignment)
            .where(resource_assignment.c.id == assignment_id)
            .values(state=state, updated_at=now, open=state != "returned")
        )
        conn.execute(
            insert(resource_event).values(assignment_id=assignment_id, at=now, state=state, actor=actor)
        )
    return {"id": assignment_id, "state": state, "station_id": row.station_id, "resource_id": row.resource_id}
