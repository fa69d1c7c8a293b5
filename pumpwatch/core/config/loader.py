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

from pumpwatch.core.config.models import (
    PROTOCOLS,
    ControllerConfig,
    ControllersFile,
    FleetFile,
    LocatedError,
    MetricMap,
    MetricSpec,
    MqttBroker,
    MqttJsonController,
    PointSpec,
    RegisterMap,
    SparkplugController,
    StationConfig,
    StationsFile,
    TenantConfig,
    TenantsFile,
)
from pumpwatch.core.config.yamlsrc import ConfigError, KeyPath, Located, load_yaml

M = TypeVar("M", bound=BaseModel)


AnyController = ControllerConfig | MqttJsonController | SparkplugController


@dataclass(frozen=True)
class StationPoint:
    """A point as a station has it: which controller (and Modbus unit) serves it, and its spec."""

    station: str
    name: str
    spec: PointSpec | MetricSpec
    controller: str
    unit_id: int | None = None  # Modbus only
    register_map: RegisterMap | None = None  # Modbus only


@dataclass
class Fleet:
    name: str
    root: Path
    tenants: dict[str, TenantConfig]
    stations: dict[str, StationConfig]
    controllers: dict[str, AnyController]
    register_maps: dict[str, RegisterMap]
    alarm_rules: Path | None
    stale_factor: float
    oncall: Path | None = None
    resources: Path | None = None  # the mobile resources register (pumpwatch.core.resources)
    metric_maps: dict[str, MetricMap] = field(default_factory=dict)
    mqtt: MqttBroker | None = None
    points: dict[str, dict[str, StationPoint]] = field(default_factory=dict)  # station -> name -> point
    safety_functions: Path | None = None  # the catalogue of safety functions per station kind
    where: dict[str, str] = field(default_factory=dict)  # station -> `file:line stations[i]`
    waiver_where: dict[str, list[str]] = field(default_factory=dict)  # station -> where each waiver is

    @property
    def centre(self) -> str | None:
        """The monitoring centre's tenant id (`centre: true` in tenants.yaml), None if none is declared."""
        return next((t.id for t in self.tenants.values() if t.centre), None)

    def controllers_of(self, station: str) -> list[AnyController]:
        ids = dict.fromkeys(p.controller for p in self.points.get(station, {}).values())
        return [self.controllers[c] for c in ids]

    def stale_after_s(self, station: str) -> float | None:
        """Age beyond which a value of this station is shown as stale, never as live (None: no source)."""
        worst = None
        for c in self.controllers_of(station):
            after = self.stale_factor * c.expected_interval_s
            if isinstance(c, ControllerConfig):  # a gateway cycle may be stretched by its units' timeouts
                after += sum(u.timeout_s or c.timeout_s for u in c.units)
            worst = after if worst is None else max(worst, after)
        return worst

    def modbus_controllers(self) -> list[ControllerConfig]:
        return [c for c in self.controllers.values() if isinstance(c, ControllerConfig)]

    def mqtt_controllers(self) -> list[MqttJsonController | SparkplugController]:
        return [c for c in self.controllers.values() if not isinstance(c, ControllerConfig)]


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
            loc = tuple(part for part in err["loc"] if part not in PROTOCOLS)  # union tags are not keys
            problems.extend(located_problems(located, (*base, *loc), err))
        return None


def located_problems(located: Located, loc: KeyPath, err: ErrorDetails) -> list[str]:
    """`file:line key: why` for one pydantic error; a `LocatedError` names the keys below `loc` itself."""
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, LocatedError):
        return [f"{located.where((*loc, *sub))}: {msg}" for sub, msg in cause.items]
    return [f"{located.where(loc)}: {describe(err)}"]


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


def _discharge_problems(
    stations: dict[str, StationConfig], where: dict[str, str], broken: set[str]
) -> list[str]:
    """`discharges_to` names a station of the fleet, never itself, and following it never comes back
    (water runs downhill to a plant or a river): one problem per unknown target and per cycle."""
    problems: list[str] = []
    for sid, w in where.items():
        target = stations[sid].discharges_to
        if target == sid:
            problems.append(f"{w}: station {sid} discharges to itself")
        elif target not in stations and target not in broken:
            problems.append(f"{w}: station {sid} discharges to unknown station {target!r}")
    seen: set[str] = set()
    for start in sorted(where):
        path: list[str] = []
        at: str | None = start
        while at is not None and at in stations and at not in seen and at not in path:
            path.append(at)
            at = stations[at].discharges_to
        if at is not None and at in path and at != path[-1]:  # a loop (itself is reported above)
            loop = path[path.index(at) :]
            problems.append(
                f"{where[loop[0]]}: `discharges_to` makes a cycle: {' → '.join([*loop, loop[0]])}"
            )
        seen.update(path)
    return problems


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
            centre = next((o.id for o in tenants.values() if o.centre and o.id != t.id), None)
            if t.centre and centre is not None:
                problems.append(
                    f"{loc.where(('tenants', i, 'centre'))}: tenant {centre!r} is already the centre; "
                    "a fleet has one monitoring centre"
                )
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

    metric_maps: dict[str, MetricMap] = {}
    for path in _files(root, ff.metric_maps, "metric_maps", problems, fleet_path):
        loc = load_yaml(path)
        mm = _validate(MetricMap, loc, (), problems)
        if mm is None and isinstance(loc.data, dict):
            broken.add(str(loc.data.get("name")))
        if mm is not None:
            if mm.name in metric_maps or mm.name in maps:
                problems.append(f"{loc.where(('name',))}: map {mm.name!r} is defined twice")
            metric_maps[mm.name] = mm

    stations: dict[str, StationConfig] = {}
    station_where: dict[str, str] = {}
    waiver_where: dict[str, list[str]] = {}
    discharge_where: dict[str, str] = {}
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
                    eloc = tuple(err["loc"])
                    if eloc[:1] == ("waivers",) and "waivers" not in sf.stations[i] and type_name:
                        eloc_base: KeyPath = ("station_types", type_name)  # inherited: the type's line
                    else:
                        eloc_base = base
                    problems.extend(p + suffix for p in located_problems(loc, (*eloc_base, *eloc), err))
                continue
            if st.id in stations:
                problems.append(
                    f"{loc.where((*base, 'id'))}: station {st.id!r} is defined twice "
                    f"(first at {station_where[st.id]})"
                )
            stations[st.id] = st
            station_where[st.id] = loc.where(base)
            wbase = base if "waivers" in sf.stations[i] or not type_name else ("station_types", type_name)
            waiver_where[st.id] = [loc.where((*wbase, "waivers", j)) for j in range(len(st.waivers))]
            if st.tenant not in tenants:
                problems.append(f"{loc.where((*base, 'tenant'))}: unknown tenant {st.tenant!r}")
            if st.discharges_to is not None:
                discharge_where[st.id] = loc.where((*base, "discharges_to"))
    problems.extend(_discharge_problems(stations, discharge_where, broken))

    controllers: dict[str, AnyController] = {}
    endpoints: dict[tuple[str, ...], str] = {}
    points: dict[str, dict[str, StationPoint]] = {}

    def add_point(where: str, sid: str, sp: StationPoint) -> None:
        have = points.setdefault(sid, {})
        if sp.name in have:
            other = have[sp.name]
            problems.append(
                f"{where}: point {sp.name!r} of station {sid} is already served by "
                f"controller {other.controller!r}"
            )
        else:
            have[sp.name] = sp

    for path in _files(root, ff.controllers, "controllers", problems, fleet_path):
        loc = load_yaml(path)
        cf = _validate(ControllersFile, loc, (), problems)
        for ci, c in enumerate(cf.controllers if cf else []):
            base = ("controllers", ci)
            if c.id in controllers:
                problems.append(f"{loc.where((*base, 'id'))}: controller {c.id!r} is defined twice")
            controllers[c.id] = c
            if isinstance(c, ControllerConfig):
                ep: tuple[str, ...] = ("modbus", c.host, str(c.port))
                what, key = f"{c.host}:{c.port}", "port"
            elif isinstance(c, SparkplugController):
                ep, what, key = (
                    ("spb", c.group_id, c.edge_node_id),
                    f"{c.group_id}/{c.edge_node_id}",
                    "edge_node_id",
                )
            else:
                ep, what, key = ("json", c.topic_prefix, c.id), c.topic_prefix, "id"
            if ep in endpoints:
                problems.append(
                    f"{loc.where((*base, key))}: {what} is already controller {endpoints[ep]!r}; "
                    "units behind one address belong to one controller (a gateway)"
                )
            endpoints[ep] = c.id
            if isinstance(c, ControllerConfig):
                if c.powered_by is not None and c.powered_by not in stations and c.powered_by not in broken:
                    problems.append(f"{loc.where((*base, 'powered_by'))}: unknown station {c.powered_by!r}")
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
                    for p in rm.points:
                        add_point(
                            loc.where(ubase),
                            u.station,
                            StationPoint(u.station, p.name, p, c.id, u.unit_id, rm),
                        )
                continue
            if ff.mqtt is None:
                problems.append(
                    f"{loc.where((*base, 'protocol'))}: {c.protocol} needs the broker "
                    f"(`mqtt:` in {fleet_path})"
                )
            for si, ms in enumerate(c.stations):
                sbase = (*base, "stations", si)
                if ms.station in broken or ms.map in broken:
                    continue
                if ms.station not in stations:
                    problems.append(f"{loc.where((*sbase, 'station'))}: unknown station {ms.station!r}")
                    continue
                mm = metric_maps.get(ms.map)
                if mm is None:
                    problems.append(
                        f"{loc.where((*sbase, 'map'))}: unknown metric map {ms.map!r} "
                        f"(known: {', '.join(sorted(metric_maps)) or 'none'})"
                    )
                    continue
                for m in mm.metrics:
                    add_point(loc.where(sbase), ms.station, StationPoint(ms.station, m.name, m, c.id))

    rules = None
    if ff.alarm_rules:
        rules = (root / ff.alarm_rules).resolve()
        if not rules.is_file():
            problems.append(f"{fleet_path}: alarm_rules {ff.alarm_rules!r}: no such file ({rules})")
    safety = None
    if ff.safety_functions:
        safety = (root / ff.safety_functions).resolve()
        if not safety.is_file():
            problems.append(
                f"{top.where(('safety_functions',))}: safety_functions {ff.safety_functions!r}: "
                f"no such file ({safety})"
            )
    elif rules is not None and (rules.parent / "safety.yaml").is_file():
        safety = rules.parent / "safety.yaml"  # the documented default: beside the alarm rules
    oncall = None
    if ff.oncall:
        oncall = (root / ff.oncall).resolve()
        if not oncall.is_file():
            problems.append(f"{fleet_path}: oncall {ff.oncall!r}: no such file ({oncall})")
    resources = None
    if ff.resources:
        resources = (root / ff.resources).resolve()
        if not resources.is_file():
            problems.append(
                f"{top.where(('resources',))}: resources {ff.resources!r}: no such file ({resources})"
            )
    if not tenants and not problems:
        problems.append(f"{fleet_path}: no tenants defined")
    if problems:  # a station type's problem is found once per station built from it: say it once
        raise ConfigError(list(dict.fromkeys(problems)))
    return Fleet(
        name=ff.name,
        root=root,
        tenants=tenants,
        stations=stations,
        controllers=controllers,
        register_maps=maps,
        alarm_rules=rules,
        stale_factor=ff.stale_factor,
        oncall=oncall,
        resources=resources,
        metric_maps=metric_maps,
        mqtt=_mqtt_paths(ff.mqtt, root),
        points=points,
        safety_functions=safety,
        where=station_where,
        waiver_where=waiver_where,
    )


def _mqtt_paths(mqtt: MqttBroker | None, root: Path) -> MqttBroker | None:
    """TLS files relative to the fleet folder."""
    if mqtt is None or mqtt.tls is None:
        return mqtt
    tls = mqtt.tls.model_copy(
        update={k: (root / v if v is not None and not v.is_absolute() else v) for k, v in mqtt.tls}
    )
    return mqtt.model_copy(update={"tls": tls})
