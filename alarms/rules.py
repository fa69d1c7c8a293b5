"""Alarm rule files: templates per station kind, overridable per station; compiled per station at start.

The `system:` section holds the system alarms of the monitoring centre (alarms/system_monitor.py): limit or
state rules over the points the system monitor measures (`SYSTEM_POINTS`), on top of the packaged defaults
(alarms/system_rules.yaml), which a file changes by rule name and never drops by omission."""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from pumpwatch.alarms.analyzers import DerivedPoint
from pumpwatch.core.config import ConfigError, Fleet
from pumpwatch.core.config.loader import describe
from pumpwatch.core.config.models import Ident, Levels, PointName, StationConfig, StationKind, Strict
from pumpwatch.core.config.yamlsrc import KeyPath, Located, load_yaml

log = logging.getLogger(__name__)

Priority = Literal["critical", "high", "medium", "low"]
LEVEL_NAMES = frozenset(Levels.model_fields)
# Station figures a limit may name besides its levels: a plant's design flow per hour (design_flow_m3_d / 24)
DESIGN_NAMES = frozenset({"design_flow_m3_h"})
REFERENCE_NAMES = LEVEL_NAMES | DESIGN_NAMES


def reference_value(st: StationConfig, name: str) -> float | None:
    """The station's value of a named limit (a level or a design figure); None: the station has none."""
    if name in LEVEL_NAMES:
        return getattr(st.levels, name, None) if st.levels else None
    if name == "design_flow_m3_h":
        return st.plant.design_flow_m3_d / 24 if st.plant else None
    return None


SYSTEM_RULES_FILE = Path(__file__).resolve().parent / "system_rules.yaml"
# What the system monitor measures; a system rule names one of these.
SYSTEM_POINTS = {
    "historian_setup_problems": "features of the historian that could not be set up",
    "historian_queue_age_s": "seconds rows have waited for the database (memory or spool)",
    "spool_fill_pct": "fill of the disk spool, % of its capacity",
    "shard_missed_beats": "heartbeats a collector shard has missed",
    "notifier_silent_s": "seconds since a notifier replica completed a pass",
    "rejected_per_min": "rejected inputs in the last minute",
    "clock_skew_s": "seconds this collector's clock is off the database's (either way)",
}


class RuleConfig(Strict):
    name: Ident
    type: Literal["state", "limit", "comm_loss"]
    point: PointName | None = None
    when: bool = True  # state rules: the value that means "alarm"
    above: float | str | None = None  # limit rules: a number or a station level name (hwl_m, ...)
    below: float | str | None = None
    factor: Annotated[float, Field(gt=0)] = 1.0  # with a named limit: the limit is factor × that figure
    deadband: Annotated[float, Field(ge=0)] = 0.0
    on_delay_s: Annotated[float, Field(ge=0, le=86400)] = 0.0
    off_delay_s: Annotated[float, Field(ge=0, le=86400)] = 0.0
    priority: Priority = "high"
    message: str = ""  # may use {value} and {station}, e.g. "battery low: blind in {value:.0f} min"
    enabled: bool = True
    latch: bool = False  # stays in alarm after the condition returns, until an operator resets it
    # suppression by design: while one of these alarms is active at the station, this one is suppressed
    suppressed_by: list[Ident] = Field(default_factory=list)
    # state-based alarming: evaluated only while one of these alarms is active at the station
    enabled_by: list[Ident] = Field(default_factory=list)

    @model_validator(mode="after")
    def _shape(self) -> RuleConfig:
        if self.type in ("state", "limit") and self.point is None:
            raise ValueError(f"a {self.type} rule needs `point`")
        if self.type == "limit" and (self.above is None) == (self.below is None):
            raise ValueError("a limit rule needs exactly one of `above` or `below`")
        if self.type != "limit" and (self.above is not None or self.below is not None):
            raise ValueError("`above`/`below` belong to limit rules")
        if "factor" in self.model_fields_set and not isinstance(self.above or self.below, str):
            raise ValueError("`factor` scales a named limit (above: design_flow_m3_h); a number needs none")
        return self

    @field_validator("above", "below")
    @classmethod
    def _level_name(cls, ref: float | str | None) -> float | str | None:
        if isinstance(ref, str) and ref not in REFERENCE_NAMES:
            raise ValueError(
                f"unknown station level or figure {ref!r} (known: {', '.join(sorted(REFERENCE_NAMES))})"
            )
        return ref


class IncidentRule(Strict):
    """Many stations raising `alarm` in one `group_by` area within `window_s` become one incident."""

    name: Ident
    alarm: Ident
    group_by: Literal["power_area"] = "power_area"
    min_stations: Annotated[int, Field(ge=2, le=10_000)] = 3
    window_s: Annotated[float, Field(gt=0, le=86400)] = 600.0
    title: str = "{count} stations: {alarm} in {area}"


class RulesFile(Strict):
    templates: dict[StationKind, list[RuleConfig]] = Field(default_factory=dict)
    # station -> rule -> changes
    overrides: dict[Ident, dict[Ident, dict[str, Any]]] = Field(default_factory=dict)
    incidents: list[IncidentRule] = Field(default_factory=list)
    max_shelve_h: Annotated[float, Field(gt=0, le=168)] = 8.0  # operators may not shelve for longer
    # system alarms: changes to the defaults by name, or new
    system: list[dict[str, Any]] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class StationRule:
    """A rule resolved for one station: thresholds are numbers now."""

    name: str
    type: str
    point: str | None
    when: bool
    limit: float | None
    above: bool  # True: alarm when value > limit; False: when value < limit
    deadband: float
    on_delay_s: float
    off_delay_s: float
    priority: str
    message: str
    latch: bool = False
    suppressed_by: tuple[str, ...] = ()
    enabled_by: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DroppedRule:
    """A rule of the station's kind that is not evaluated at this station, and why (coverage reports it)."""

    rule: str
    point: str | None
    why: str  # "disabled", "no point 'mains_failed' in its maps", ...
    where: str  # `file:line key` of the rule (or of the override that changed it)


def default_system_rules() -> list[StationRule]:
    """The packaged system alarms, as a file without a `system:` section gets them."""
    located = load_yaml(SYSTEM_RULES_FILE)
    problems: list[str] = []
    rules = _system_rules(located, [], problems)
    if problems:  # a broken packaged file is a bug of ours: fail loudly at start
        raise ConfigError(problems)
    return rules


@dataclass(frozen=True)
class RuleSet:
    stations: dict[str, list[StationRule]]
    incidents: list[IncidentRule]
    max_shelve_h: float = 8.0
    dropped: dict[str, list[DroppedRule]] = field(default_factory=dict)  # station -> rules not applied
    kinds: dict[str, list[str]] = field(default_factory=dict)  # station kind -> its template rule names
    warnings: list[str] = field(default_factory=list)  # template rules no station of the fleet can apply
    source: Path | None = None  # the rules file
    system: list[StationRule] = field(default_factory=default_system_rules)  # the centre's system alarms

    def get(self, station: str, default: list[StationRule] | None = None) -> list[StationRule]:
        return self.stations.get(station, default or [])


def _pump_pattern(name: str) -> str:
    """pump3_faulted → pump#_faulted: a template names points of pumps a station may not have."""
    return re.sub(r"pump\d+", "pump#", name)


def _derived_points(
    derived: Mapping[str, Iterable[DerivedPoint] | Iterable[str]] | None,
) -> dict[str, dict[str, DerivedPoint]]:
    """Per station, derived point name → point (names alone: a point whose needs are unknown)."""
    out: dict[str, dict[str, DerivedPoint]] = {}
    for sid, points in (derived or {}).items():
        out[sid] = {
            (dp if isinstance(dp, str) else dp.name): (
                DerivedPoint(dp, None, "analog") if isinstance(dp, str) else dp
            )
            for dp in points
        }
    return out


def load_rules(
    path: Path,
    fleet: Fleet,
    derived: Mapping[str, Iterable[DerivedPoint] | Iterable[str]] | None = None,
) -> RuleSet:
    """Rules per station id (and incident rules). `derived`: station → points our analyzers compute, which
    rules may use like any point once the points they need are there. Raises ConfigError naming file, line
    and key for any invalid rule and for an override naming a point its station lacks. A template rule
    whose point a station lacks is left out there and listed in `RuleSet.dropped`: alarm coverage decides
    whether the station may run so (alarms/coverage.py). With `derived`, a template rule no station of the
    fleet can apply (a typo, or a sensor no device has) is in `RuleSet.warnings`."""
    located = load_yaml(path)
    problems: list[str] = []
    try:
        rf = RulesFile.model_validate(located.data or {})
    except ValidationError as exc:
        for err in exc.errors():
            problems.append(f"{located.where(err['loc'])}: {describe(err)}")
        raise ConfigError(problems) from None
    for kind, rules in rf.templates.items():
        seen: set[str] = set()
        for i, r in enumerate(rules):
            if r.name in seen:
                problems.append(f"{located.where(('templates', kind, i, 'name'))}: rule {r.name!r} twice")
            seen.add(r.name)
    all_rule_names = {r.name for rules in rf.templates.values() for r in rules}
    for i, inc in enumerate(rf.incidents):
        if inc.alarm not in all_rule_names:
            problems.append(f"{located.where(('incidents', i, 'alarm'))}: no rule named {inc.alarm!r}")
    dpoints = _derived_points(derived)
    warnings: list[str] = []
    if derived is not None:  # a point nobody in this fleet produces: a typo, or sensors no device has
        producible = {_pump_pattern(p.name) for rm in fleet.register_maps.values() for p in rm.points}
        producible |= {_pump_pattern(m.name) for mm in fleet.metric_maps.values() for m in mm.metrics}
        producible |= {_pump_pattern(n) for pts in dpoints.values() for n in pts}
        kinds = {st.kind for st in fleet.stations.values()}
        for kind, rules in rf.templates.items():
            for i, r in enumerate(rules):
                if kind in kinds and r.point is not None and _pump_pattern(r.point) not in producible:
                    warnings.append(
                        f"{located.where(('templates', kind, i, 'point'))}: rule {r.name} applies to no "
                        f"station: no map of this fleet has point {r.point!r} and no analyzer computes it"
                        + _close(r.point, {n.replace("#", "1") for n in producible})
                    )
    out: dict[str, list[StationRule]] = {}
    dropped: dict[str, list[DroppedRule]] = {}
    for sid, changes in rf.overrides.items():
        if sid not in fleet.stations:
            problems.append(f"{located.where(('overrides', sid))}: unknown station {sid!r}")
            continue
        names = {r.name for r in rf.templates.get(fleet.stations[sid].kind, [])}
        for rname in changes:
            if rname not in names:
                problems.append(
                    f"{located.where(('overrides', sid, rname))}: station {sid} has no rule {rname!r}"
                )
    for sid, st in fleet.stations.items():
        resolved: list[StationRule] = []
        gone: list[DroppedRule] = []
        raw_points = set(fleet.points.get(sid, {}))
        mine = dpoints.get(sid, {})
        for i, base in enumerate(rf.templates.get(st.kind, [])):
            rule = base
            change = rf.overrides.get(sid, {}).get(base.name)
            where: KeyPath = ("templates", st.kind, i)
            if change:
                where = ("overrides", sid, base.name)
                try:
                    rule = RuleConfig.model_validate({**base.model_dump(exclude_unset=True), **change})
                except ValidationError as exc:
                    for err in exc.errors():
                        problems.append(f"{located.where((*where, *err['loc']))}: {describe(err)}")
                    continue
            if not rule.enabled:
                gone.append(
                    DroppedRule(rule.name, rule.point, "disabled (enabled: false)", located.where(where))
                )
                continue
            why = None
            if rule.point is not None and rule.point not in raw_points:
                dp = mine.get(rule.point)
                maps = _maps_of(fleet, sid)
                if dp is None:
                    why = f"no point {rule.point!r} in the station's maps ({maps})"
                elif lacking := dp.missing(raw_points):
                    why = (
                        f"{rule.point} is computed from {', '.join(lacking)}, not in the station's maps "
                        f"({maps})"
                    )
            if why is not None:
                if change:
                    # An engineer wrote something for this rule at this station: it must take effect.
                    key = (*where, "point") if "point" in change else where
                    problems.append(
                        f"{located.where(key)}: station {sid}: rule {rule.name} is overridden here, but {why}"
                        + _close(rule.point, raw_points | set(mine))
                    )
                    continue
                log.debug("station %s: rule %s not applied: %s", sid, rule.name, why)
                gone.append(DroppedRule(rule.name, rule.point, why, located.where(where)))
                continue
            ref = rule.above if rule.above is not None else rule.below
            limit: float | None = None
            if isinstance(ref, str):
                value = reference_value(st, ref)
                if value is None:
                    problems.append(
                        f"{located.where((*where, 'above' if rule.above is not None else 'below'))}: "
                        f"station {sid} has no level or figure {ref!r}"
                    )
                    continue
                limit = rule.factor * value
            elif ref is not None:
                limit = float(ref)
            resolved.append(
                StationRule(
                    name=rule.name,
                    type=rule.type,
                    point=rule.point,
                    when=rule.when,
                    limit=limit,
                    above=rule.above is not None,
                    deadband=rule.deadband,
                    on_delay_s=rule.on_delay_s,
                    off_delay_s=rule.off_delay_s,
                    priority=rule.priority,
                    message=rule.message or rule.name.replace("_", " "),
                    latch=rule.latch,
                    suppressed_by=tuple(rule.suppressed_by),
                    enabled_by=tuple(rule.enabled_by),
                )
            )
        names = {sr.name for sr in resolved}
        for sr in resolved:  # a reference to a rule the station lacks is harmless; to none at all, a typo
            for ref in (*sr.suppressed_by, *sr.enabled_by):
                if ref not in names and ref not in all_rule_names:
                    problems.append(
                        f"{located.where(('templates', st.kind))}: rule {sr.name} names unknown rule {ref!r}"
                    )
        out[sid] = resolved
        if gone:
            dropped[sid] = gone
    system = _system_rules(load_yaml(SYSTEM_RULES_FILE), rf.system, problems, located)
    if problems:
        raise ConfigError(sorted(set(problems), key=problems.index))
    kinds_rules: dict[str, list[str]] = {
        kind: [r.name for r in rules] for kind, rules in rf.templates.items()
    }
    return RuleSet(
        out,
        rf.incidents,
        rf.max_shelve_h,
        dropped=dropped,
        kinds=kinds_rules,
        warnings=warnings,
        source=path,
        system=system,
    )


def _maps_of(fleet: Fleet, sid: str) -> str:
    """`mps-canonical via kita-01`: the maps that give a station its points, and their controllers."""
    out = []
    for c in fleet.controllers.values():
        for m in getattr(c, "units", None) or getattr(c, "stations", []):
            if m.station == sid:
                out.append(f"{m.map} via {c.id}")
    return ", ".join(out) or "none: no controller serves it"


def _close(name: str | None, known: Iterable[str]) -> str:
    """ " (did you mean 'mains_failed'?)" when a known name is close."""
    if name is None:
        return ""
    match = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _system_rules(
    defaults: Located, changes: list[dict[str, Any]], problems: list[str], located: Located | None = None
) -> list[StationRule]:
    """The defaults file's `system:` rules with `changes` (a rules file's `system:` entries) applied by name:
    an entry for a default rule changes only the keys it gives; an entry with a new name is a whole rule."""
    merged: dict[str, tuple[dict[str, Any], tuple[Located, KeyPath]]] = {}
    for i, raw in enumerate((defaults.data or {}).get("system", [])):
        merged[raw["name"]] = (dict(raw), (defaults, ("system", i)))
    changed_in = located if located is not None else defaults
    for i, raw in enumerate(changes):
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            problems.append(f"{changed_in.where(('system', i))}: a system rule needs a `name`")
            continue
        base = merged[raw["name"]][0] if raw["name"] in merged else {}
        merged[raw["name"]] = ({**base, **raw}, (changed_in, ("system", i)))
    out: list[StationRule] = []
    for name, (raw, (src, kp)) in merged.items():
        try:
            r = RuleConfig.model_validate(raw)
        except ValidationError as exc:
            for err in exc.errors():
                problems.append(f"{src.where((*kp, *err['loc']))}: {describe(err)}")
            continue
        if r.type == "comm_loss" or r.point not in SYSTEM_POINTS:
            problems.append(
                f"{src.where((*kp, 'point'))}: system rule {name} must watch one of "
                f"{', '.join(SYSTEM_POINTS)} (got {r.point!r})"
            )
            continue
        ref = r.above if r.above is not None else r.below
        if isinstance(ref, str):
            problems.append(
                f"{src.where((*kp, 'above' if r.above is not None else 'below'))}: "
                f"a system rule's threshold is a number, not the station level {ref!r}"
            )
            continue
        for dep in (*r.suppressed_by, *r.enabled_by):
            if dep not in merged:
                problems.append(f"{src.where(kp)}: system rule {name} names unknown system rule {dep!r}")
        if not r.enabled:
            log.warning("system alarm %s is disabled (enabled: false in %s)", name, src.path)
            continue
        out.append(
            StationRule(
                name=r.name,
                type=r.type,
                point=r.point,
                when=r.when,
                limit=None if ref is None else float(ref),
                above=r.above is not None,
                deadband=r.deadband,
                on_delay_s=r.on_delay_s,
                off_delay_s=r.off_delay_s,
                priority=r.priority,
                message=r.message or r.name.replace("_", " "),
                latch=r.latch,
                suppressed_by=tuple(r.suppressed_by),
                enabled_by=tuple(r.enabled_by),
            )
        )
    return out
