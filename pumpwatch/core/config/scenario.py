"""Drill scenarios as data: a YAML file of faults at times from the drill's start, validated like the fleet
(every problem as `file:line key.path: why`), then checked against the fleet it runs on.

    name: lightning-night
    title: Lightning night on Kita feeder 1
    tenant: kita                    # whose stations and consoles are in the drill (one tenant)
    duration: 90m                   # the drill ends then (default: 10 min after the last event)
    notify: drill_contacts          # drill_contacts (default) | normal (the tenants' usual on-call)
    drill_contacts: [sato]          # on-call people (oncall.yaml) told about the drill's alarms
    events:
      - {at: 1m, power_outage: {area: kita-feeder-1, duration: 45m}}
      - {at: 0s, rain: {hyetograph_mm_h: [5, 20, 40, 20], interval: 10m}}
      - {at: 10m, comm_loss: {controller: kita-03, duration: 30m}}

Times and durations: `90s`, `5m`, `2h`, `1h30m`, or a number of seconds. One action per event:

| action | keys | what the simulated field does |
|---|---|---|
| `power_outage` | `area` or `stations`, `duration` | mains lost, back after `duration` |
| `rain` | `mm_h` (or `factor`) or `hyetograph_mm_h` + `interval`; `duration`, `stations` | wet weather |
| `pump_fault` | `station`, `pump` | a pump trips |
| `pump_clog` | `station`, `pump`, `severity` 0..1 | rags on an impeller |
| `sensor_stuck_low` | `station`, `duration`, `fault_flag` | the level transmitter reads 0 m |
| `float_stuck` | `station`, `float` (hwl/lwl), `state` (tripped/clear), `duration` | a float switch sticks |
| `comm_loss` | `controller`, `duration` | the controller stops answering |
| `generator_fault` | `station`, `duration` | the standby generator fails |
| `river_level` | `station`, `level_m`, `duration` | the outer level of a stormwater station |
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from pumpwatch.core.config.loader import located_problems
from pumpwatch.core.config.models import PUMPING_KINDS, Ident, LocatedError
from pumpwatch.core.config.yamlsrc import ConfigError, Located, load_yaml, load_yaml_text

__all__ = [
    "ACTIONS",
    "Scenario",
    "ScenarioEvent",
    "check_against_fleet",
    "load_scenario",
    "parse_duration",
    "parse_scenario_text",
]

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$")
MAX_DRILL = timedelta(days=2)


def parse_duration(v: object) -> timedelta:
    """`90s`, `5m`, `2h`, `1h30m` or a number of seconds → timedelta (ValueError saying the forms)."""
    if isinstance(v, timedelta):
        return v
    if isinstance(v, bool):
        raise ValueError("a time is like 90s, 5m, 2h or 1h30m (or a number of seconds)")
    if isinstance(v, int | float):
        seconds = float(v)
    elif isinstance(v, str) and v.strip() and (m := _DURATION.match(v.strip().lower())):
        h, mi, s = (float(g) if g else 0.0 for g in m.groups())
        seconds = h * 3600 + mi * 60 + s
    else:
        raise ValueError(f"{v!r} is not a time: write 90s, 5m, 2h or 1h30m (or a number of seconds)")
    if seconds < 0:
        raise ValueError("a time must be >= 0")
    if seconds > MAX_DRILL.total_seconds():
        raise ValueError(f"a time must be at most {MAX_DRILL} (a drill lasts hours, not days)")
    return timedelta(seconds=seconds)


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def _positive(v: timedelta) -> timedelta:
    if v <= timedelta(0):
        raise ValueError("must be > 0")
    return v


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PowerOutage(Strict):
    area: str | None = None
    stations: list[Ident] | None = Field(default=None, min_length=1)
    duration: Duration | None = None

    @model_validator(mode="after")
    def _one_target(self) -> PowerOutage:
        if (self.area is None) == (self.stations is None):
            raise ValueError("give either `area` (a power area) or `stations` (a list of station ids)")
        return self


class Rain(Strict):
    mm_h: Annotated[float, Field(ge=0, le=300)] | None = None
    factor: Annotated[float, Field(ge=0, le=3)] | None = None
    hyetograph_mm_h: list[Annotated[float, Field(ge=0, le=300)]] | None = Field(
        default=None, min_length=1, max_length=288
    )
    interval: Duration = timedelta(minutes=10)
    duration: Duration | None = None
    stations: list[Ident] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_form(self) -> Rain:
        if self.hyetograph_mm_h is not None:
            if self.mm_h is not None or self.factor is not None or self.duration is not None:
                raise ValueError(
                    "a hyetograph gives the intensities itself: no mm_h, factor or duration beside it"
                )
            if self.interval <= timedelta(0):
                raise LocatedError([(("interval",), "must be > 0")])
        elif self.mm_h is None and self.factor is None:
            raise ValueError("give mm_h (intensity), factor (inflow ×) or hyetograph_mm_h (a list, mm/h)")
        return self


class StationPump(Strict):
    station: Ident
    pump: Annotated[int, Field(ge=1, le=16)] | Annotated[str, Field(min_length=1, max_length=64)]


class PumpFault(StationPump):
    pass


class PumpClog(StationPump):
    severity: Annotated[float, Field(ge=0, le=1)]


class SensorStuckLow(Strict):
    station: Ident
    duration: Duration | None = None
    fault_flag: bool = True


class FloatStuck(Strict):
    station: Ident
    float: Literal["hwl", "lwl"]
    state: Literal["tripped", "clear"]
    duration: Duration | None = None


class CommLoss(Strict):
    controller: Ident
    duration: Duration | None = None


class GeneratorFault(Strict):
    station: Ident
    duration: Duration | None = None


class RiverLevel(Strict):
    station: Ident
    level_m: Annotated[float, Field(ge=-10, le=50)]
    duration: Duration | None = None


ACTIONS: dict[str, type[Strict]] = {
    "power_outage": PowerOutage,
    "rain": Rain,
    "pump_fault": PumpFault,
    "pump_clog": PumpClog,
    "sensor_stuck_low": SensorStuckLow,
    "float_stuck": FloatStuck,
    "comm_loss": CommLoss,
    "generator_fault": GeneratorFault,
    "river_level": RiverLevel,
}


class ScenarioEvent(Strict):
    """One fault at `at` after the drill's start: exactly one action key."""

    at: Duration
    label: Annotated[str, Field(max_length=200)] | None = None
    power_outage: PowerOutage | None = None
    rain: Rain | None = None
    pump_fault: PumpFault | None = None
    pump_clog: PumpClog | None = None
    sensor_stuck_low: SensorStuckLow | None = None
    float_stuck: FloatStuck | None = None
    comm_loss: CommLoss | None = None
    generator_fault: GeneratorFault | None = None
    river_level: RiverLevel | None = None

    @model_validator(mode="before")
    @classmethod
    def _exactly_one(cls, data: Any) -> Any:
        if isinstance(data, dict):
            given = [k for k in data if k in ACTIONS]
            if len(given) != 1:
                unknown = [k for k in data if k not in ACTIONS and k not in ("at", "label")]
                hint = f"; unknown key {unknown[0]!r}" if unknown and not given else ""
                raise ValueError(
                    f"an event has exactly one action ({', '.join(ACTIONS)}); "
                    f"got {', '.join(given) or 'none'}{hint}"
                )
        return data

    @property
    def action(self) -> str:
        return next(k for k in ACTIONS if getattr(self, k) is not None)

    @property
    def spec(self) -> Strict:
        spec: Strict = getattr(self, self.action)
        return spec

    @property
    def end(self) -> timedelta:
        """When the event's effect is over (its start when it has no duration)."""
        spec = self.spec
        if isinstance(spec, Rain) and spec.hyetograph_mm_h is not None:
            return self.at + len(spec.hyetograph_mm_h) * spec.interval
        d = getattr(spec, "duration", None)
        return self.at + (d or timedelta(0))


class Scenario(Strict):
    name: Ident
    title: Annotated[str, Field(min_length=1, max_length=200)]
    description: Annotated[str, Field(max_length=4000)] = ""
    fleet: str | None = None  # the fleet it was written for (informative; the stations are checked)
    tenant: Ident
    duration: Duration | None = None
    notify: Literal["drill_contacts", "normal"] = "drill_contacts"
    drill_contacts: list[Ident] = Field(default_factory=list)
    events: list[ScenarioEvent] = Field(min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _ends_after_events(self) -> Scenario:
        last = max(e.end for e in self.events)
        if self.duration is not None and self.duration < last:
            raise LocatedError(
                [(("duration",), f"the drill ends at {self.duration} but an event lasts until {last}")]
            )
        return self

    @property
    def length(self) -> timedelta:
        """How long the drill runs: `duration`, else 10 minutes after the last event's effect ends."""
        return self.duration or max(e.end for e in self.events) + timedelta(minutes=10)


def _problems(located: Located, exc: ValidationError) -> list[str]:
    out: list[str] = []
    for err in exc.errors():
        out.extend(located_problems(located, tuple(err["loc"]), err))
    return out


def _validate(located: Located) -> Scenario:
    if not isinstance(located.data, dict):
        raise ConfigError([f"{located.path}: expected a mapping with name, title, tenant, events"])
    try:
        return Scenario.model_validate(located.data)
    except ValidationError as exc:
        raise ConfigError(list(dict.fromkeys(_problems(located, exc)))) from None


def load_scenario(path: str | Path, fleet: Any | None = None) -> Scenario:
    """A scenario file, validated (and checked against `fleet` when given); ConfigError lists problems."""
    located = load_yaml(Path(path))
    scenario = _validate(located)
    if fleet is not None:
        check_against_fleet(scenario, fleet, located)
    return scenario


MAX_DEPTH = 16  # a scenario nests 4 deep; anything far deeper is not one

_OPEN = (
    yaml.BlockMappingStartToken,
    yaml.BlockSequenceStartToken,
    yaml.FlowMappingStartToken,
    yaml.FlowSequenceStartToken,
)
_CLOSE = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)


def _plain_yaml(text: str, name: str) -> None:
    """Refuse what a scenario never needs and a hostile request body uses: anchors and aliases (a few
    hundred bytes of them expand into billions of nodes) and deep nesting (recursion), with where."""
    depth = 0
    try:
        for tok in yaml.scan(text, Loader=yaml.SafeLoader):
            if isinstance(tok, yaml.AnchorToken | yaml.AliasToken):
                line = tok.start_mark.line + 1
                raise ConfigError(
                    [f"{name}:{line}: anchors and aliases (&, *) are not allowed in a scenario"]
                )
            if isinstance(tok, _OPEN):
                depth += 1
                if depth > MAX_DEPTH:
                    line = tok.start_mark.line + 1
                    raise ConfigError(
                        [f"{name}:{line}: nested deeper than {MAX_DEPTH} levels: not a scenario"]
                    )
            elif isinstance(tok, _CLOSE):
                depth -= 1
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}:{mark.line + 1}" if mark else name
        raise ConfigError([f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}"]) from None


def parse_scenario_text(text: str, name: str = "<scenario>", fleet: Any | None = None) -> Scenario:
    """A scenario given as text (an API request body): the same validation, lines counted in `text`;
    no anchors or aliases, at most `MAX_DEPTH` levels deep."""
    _plain_yaml(text, name)
    located = load_yaml_text(text, Path(name))
    scenario = _validate(located)
    if fleet is not None:
        check_against_fleet(scenario, fleet, located)
    return scenario


GENERATOR_KINDS = frozenset({"relay_pump", "stormwater_pump", "treatment_plant"})


def check_against_fleet(scenario: Scenario, fleet: Any, located: Located | None = None) -> None:
    """Every station, area, controller, tenant and contact the scenario names exists in `fleet`, and each
    action fits the station's kind; ConfigError lists every problem."""
    problems: list[str] = []

    def where(*keys: str | int) -> str:
        return located.where(keys) if located is not None else ".".join(map(str, keys))

    if scenario.tenant not in fleet.tenants:
        problems.append(f"{where('tenant')}: unknown tenant {scenario.tenant!r} (fleet {fleet.name!r})")
    areas = {s.power_area for s in fleet.stations.values() if s.power_area}

    def station(keys: tuple[str | int, ...], sid: str, kinds: frozenset[str] | None, what: str) -> Any:
        st = fleet.stations.get(sid)
        if st is None:
            problems.append(f"{where(*keys)}: unknown station {sid!r} (fleet {fleet.name!r})")
            return None
        if st.tenant != scenario.tenant:
            problems.append(
                f"{where(*keys)}: station {sid} belongs to tenant {st.tenant!r}, not to the drill's "
                f"({scenario.tenant!r})"
            )
        if kinds is not None and st.kind not in kinds:
            problems.append(f"{where(*keys)}: station {sid} is a {st.kind}: it has no {what}")
            return None
        return st

    for i, ev in enumerate(scenario.events):
        a, spec = ev.action, ev.spec
        base: tuple[str | int, ...] = ("events", i, a)
        if isinstance(spec, PowerOutage):
            if spec.area is not None:
                if spec.area not in areas:
                    problems.append(
                        f"{where(*base, 'area')}: unknown power area {spec.area!r} "
                        f"(known: {', '.join(sorted(areas)) or 'none'})"
                    )
                elif not any(
                    s.power_area == spec.area and s.tenant == scenario.tenant for s in fleet.stations.values()
                ):
                    problems.append(
                        f"{where(*base, 'area')}: no station of the drill's tenants in {spec.area}"
                    )
            for j, sid in enumerate(spec.stations or []):
                station((*base, "stations", j), sid, None, "mains")
        elif isinstance(spec, Rain):
            for j, sid in enumerate(spec.stations or []):
                station((*base, "stations", j), sid, None, "rain")
        elif isinstance(spec, StationPump):
            st = station((*base, "station"), spec.station, PUMPING_KINDS, "pumps")
            if st is not None:
                names = [p.name for p in st.pumps]
                if isinstance(spec.pump, int) and spec.pump > len(names):
                    problems.append(f"{where(*base, 'pump')}: station {st.id} has {len(names)} pumps")
                elif isinstance(spec.pump, str) and spec.pump not in names:
                    problems.append(
                        f"{where(*base, 'pump')}: station {st.id} has no pump {spec.pump!r} "
                        f"(pumps: {', '.join(names)})"
                    )
        elif isinstance(spec, SensorStuckLow | FloatStuck):
            station((*base, "station"), spec.station, frozenset({"manhole_pump"}), a.replace("_", " "))
        elif isinstance(spec, GeneratorFault):
            station((*base, "station"), spec.station, GENERATOR_KINDS, "standby generator")
        elif isinstance(spec, RiverLevel):
            station((*base, "station"), spec.station, frozenset({"stormwater_pump"}), "river level")
        elif isinstance(spec, CommLoss):
            ctrl = fleet.controllers.get(spec.controller)
            if ctrl is None:
                problems.append(
                    f"{where(*base, 'controller')}: unknown controller {spec.controller!r} "
                    f"(fleet {fleet.name!r})"
                )
            elif ctrl.protocol != "modbus_tcp":
                problems.append(
                    f"{where(*base, 'controller')}: controller {spec.controller} speaks {ctrl.protocol}; "
                    "a drill can silence Modbus controllers only"
                )
    if scenario.drill_contacts:
        people = _oncall_people(fleet)
        for j, pid in enumerate(scenario.drill_contacts):
            if people is None:
                problems.append(f"{where('drill_contacts', j)}: fleet {fleet.name!r} has no on-call file")
                break
            if pid not in people:
                problems.append(
                    f"{where('drill_contacts', j)}: unknown person {pid!r} "
                    f"(on-call: {', '.join(sorted(people))})"
                )
    if problems:
        raise ConfigError(problems)


def _oncall_people(fleet: Any) -> set[str] | None:
    if fleet.oncall is None:
        return None
    data = load_yaml(Path(fleet.oncall)).data or {}
    return {str(p.get("id")) for p in data.get("people", []) if isinstance(p, dict)}
