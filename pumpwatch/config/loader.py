"""Load a fleet: `fleet.yaml` and the files it names, validated together.

Every problem found is collected and reported as `file:line key.path: why`, then start-up stops.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from pumpwatch.config.models import (
    ControllerConfig,
    ControllersFile,
    FleetFile,
    PointSpec,
    RegisterMap,
    StationConfig,
    StationsFile,
    TenantConfig,
    TenantsFile,
)
from pumpwatch.config.yamlsrc import ConfigError, KeyPath, Located, load_yaml

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class StationPoint:
    """A point as a station has it: which controller and unit serve it, and its register spec."""

    station: str
    name: str
    spec: PointSpec
    register_map: RegisterMap
    controller: str
    unit_id: int


@dataclass
class Fleet:
    name: str
    root: Path
    tenants: dict[str, TenantConfig]
    stations: dict[str, StationConfig]
    controllers: dict[str, ControllerConfig]
    register_maps: dict[str, RegisterMap]
    alarm_rules: Path | None
    stale_factor: float
    points: dict[str, dict[str, StationPoint]] = field(default_factory=dict)  # station -> name -> point

    def poll_interval_of(self, station: str) -> float | None:
        """The slowest poll interval among the controllers serving a station (None: no source)."""
        intervals = [
            self.controllers[p.controller].poll_interval_s for p in self.points.get(station, {}).values()
        ]
        return max(intervals) if intervals else None

    def stale_after_s(self, station: str) -> float | None:
        """Age beyond which a value of this station is shown as stale, never as live."""
        interval = self.poll_interval_of(station)
        if interval is None:
            return None
        ctrl = max(
            (self.controllers[p.controller] for p in self.points[station].values()),
            key=lambda c: c.poll_interval_s,
        )
        return self.stale_factor * interval + ctrl.timeout_s * len(ctrl.units)


def describe(err: ErrorDetails) -> str:
    """Pydantic's message, plus what was given when that helps ("got 'uint24'")."""
    msg = err["msg"].removeprefix("Value error, ")
    given = err.get("input")
    if isinstance(given, str | int | float | bool) and err["type"] != "value_error":
        msg += f" (got {given!r})"
    return msg


def _validate(model: type[M], located: Located, base: KeyPath, problems: list[str]) -> M | None:
    data = located.data
    for part in base:
        data = data[part]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            problems.append(f"{located.where((*base, *err['loc']))}: {describe(err)}")
        return None


def _files(
    root: Path, entries: list[str], what: str, problems: list[str], fleet_file: Path
) -> Iterator[Path]:
    for entry in entries:
        path = (root / entry).resolve()
        if path.is_dir():
            yield from sorted(path.glob("*.yaml"))
        elif path.is_file():
            yield path
        else:
            problems.append(f"{fleet_file}: {what} entry {entry!r}: no such file or folder ({path})")


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_fleet(fleet_path: str | Path) -> Fleet:
    fleet_path = Path(fleet_path)
    if fleet_path.is_dir():
        fleet_path = fleet_path / "fleet.yaml"
    problems: list[str] = []
    top = load_yaml(fleet_path)
    if not isinstance(top.data, dict):
        raise ConfigError([f"{fleet_path}: expected a mapping with name, tenants, stations, ..."])
    ff = _validate(FleetFile, top, (), problems)
    if ff is None:
        raise ConfigError(problems)
    root = fleet_path.parent

    tenants: dict[str, TenantConfig] = {}
    for path in _files(root, ff.tenants, "tenants", problems, fleet_path):
        loc = load_yaml(path)
        tf = _validate(TenantsFile, loc, (), problems)
        for i, t in enumerate(tf.tenants if tf else []):
            if t.id in tenants:
                problems.append(f"{loc.where(('tenants', i, 'id'))}: tenant {t.id!r} is defined twice")
            tenants[t.id] = t

    # Names of maps and stations whose own definition is invalid: references to them are not reported
    # again, so the first error is the one an engineer reads.
    broken: set[str] = set()
    maps: dict[str, RegisterMap] = {}
    for path in _files(root, ff.register_maps, "register_maps", problems, fleet_path):
        loc = load_yaml(path)
        rm = _validate(RegisterMap, loc, (), problems)
        if rm is None and isinstance(loc.data, dict):
            broken.add(str(loc.data.get("name")))
        if rm is not None:
            if rm.name in maps:
                problems.append(f"{loc.where(('name',))}: register map {rm.name!r} is defined twice")
            maps[rm.name] = rm

    stations: dict[str, StationConfig] = {}
    station_where: dict[str, str] = {}
    for path in _files(root, ff.stations, "stations", problems, fleet_path):
        loc = load_yaml(path)
        sf = _validate(StationsFile, loc, (), problems)
        if sf is None:
            continue
        for i, raw in enumerate(sf.stations):
            base: KeyPath = ("stations", i)
            type_name = raw.get("type")
            if type_name is not None:
                template = sf.station_types.get(type_name)
                if template is None:
                    problems.append(
                        f"{loc.where((*base, 'type'))}: unknown station type {type_name!r} "
                        f"(known in this file: {', '.join(sorted(sf.station_types)) or 'none'})"
                    )
                    continue
                raw = _deep_merge(template, raw)
            try:
                st = StationConfig.model_validate(raw)
            except ValidationError as exc:
                broken.add(str(raw.get("id")))
                for err in exc.errors():
                    suffix = f" (station type {type_name!r})" if type_name else ""
                    problems.append(f"{loc.where((*base, *err['loc']))}: {describe(err)}{suffix}")
                continue
            if st.id in stations:
                problems.append(
                    f"{loc.where((*base, 'id'))}: station {st.id!r} is defined twice "
                    f"(first at {station_where[st.id]})"
                )
            stations[st.id] = st
            station_where[st.id] = loc.where(base)
            if st.tenant not in tenants:
                problems.append(f"{loc.where((*base, 'tenant'))}: unknown tenant {st.tenant!r}")

    controllers: dict[str, ControllerConfig] = {}
    endpoints: dict[tuple[str, int], str] = {}
    points: dict[str, dict[str, StationPoint]] = {}
    for path in _files(root, ff.controllers, "controllers", problems, fleet_path):
        loc = load_yaml(path)
        cf = _validate(ControllersFile, loc, (), problems)
        for ci, c in enumerate(cf.controllers if cf else []):
            base = ("controllers", ci)
            if c.id in controllers:
                problems.append(f"{loc.where((*base, 'id'))}: controller {c.id!r} is defined twice")
            controllers[c.id] = c
            ep = (c.host, c.port)
            if ep in endpoints:
                problems.append(
                    f"{loc.where((*base, 'port'))}: {c.host}:{c.port} is already controller "
                    f"{endpoints[ep]!r}; units behind one address belong to one controller (a gateway)"
                )
            endpoints[ep] = c.id
            for ui, u in enumerate(c.units):
                ubase = (*base, "units", ui)
                if u.station in broken or u.map in broken:
                    continue
                if u.station not in stations:
                    problems.append(f"{loc.where((*ubase, 'station'))}: unknown station {u.station!r}")
                    continue
                rm = maps.get(u.map)
                if rm is None:
                    problems.append(
                        f"{loc.where((*ubase, 'map'))}: unknown register map {u.map!r} "
                        f"(known: {', '.join(sorted(maps)) or 'none'})"
                    )
                    continue
                sp = points.setdefault(u.station, {})
                for p in rm.points:
                    if p.name in sp:
                        problems.append(
                            f"{loc.where(ubase)}: point {p.name!r} of station {u.station} is already "
                            f"served by controller {sp[p.name].controller!r} unit {sp[p.name].unit_id}"
                        )
                        continue
                    sp[p.name] = StationPoint(u.station, p.name, p, rm, c.id, u.unit_id)

    rules = None
    if ff.alarm_rules:
        rules = (root / ff.alarm_rules).resolve()
        if not rules.is_file():
            problems.append(f"{fleet_path}: alarm_rules {ff.alarm_rules!r}: no such file ({rules})")
    if not tenants and not problems:
        problems.append(f"{fleet_path}: no tenants defined")
    if problems:
        raise ConfigError(problems)
    return Fleet(
        name=ff.name,
        root=root,
        tenants=tenants,
        stations=stations,
        controllers=controllers,
        register_maps=maps,
        alarm_rules=rules,
        stale_factor=ff.stale_factor,
        points=points,
    )
