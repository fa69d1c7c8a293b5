"""Alarm rule files: templates per station kind, overridable per station; compiled per station at start.

The `system:` section holds the system alarms of the monitoring centre (alarms/system_monitor.py): limit or
state rules over the points the system monitor measures (`SYSTEM_POINTS`), on top of the packaged defaults
(alarms/system_rules.yaml), which a file changes by rule name and never drops by omission."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from pumpwatch.config import ConfigError, Fleet
from pumpwatch.config.loader import describe
from pumpwatch.config.models import Ident, Levels, PointName, StationKind, Strict
from pumpwatch.config.yamlsrc import load_yaml

log = logging.getLogger(__name__)

Priority = Literal["critical", "high", "medium", "low"]
LEVEL_NAMES = frozenset(Levels.model_fields)
SYSTEM_RULES_FILE = Path(__file__).resolve().parent / "system_rules.yaml"
# What the system monitor measures; a system rule names one of these.
SYSTEM_POINTS = {
    "historian_setup_problems": "features of the historian that could not be set up",
    "historian_queue_age_s": "seconds rows have waited for the database (memory or spool)",
    "spool_fill_pct": "fill of the disk spool, % of its capacity",
    "shard_missed_beats": "heartbeats a collector shard has missed",
    "notifier_silent_s": "seconds since a notifier replica completed a pass",
    "rejected_per_min": "rejected inputs in the last minute",
}


class RuleConfig(Strict):
    name: Ident
    type: Literal["state", "limit", "comm_loss"]
    point: PointName | None = None
    when: bool = True  # state rules: the value that means "alarm"
    above: float | str | None = None  # limit rules: a number or a station level name (hwl_m, ...)
    below: float | str | None = None
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
        return self

    @field_validator("above", "below")
    @classmethod
    def _level_name(cls, ref: float | str | None) -> float | str | None:
        if isinstance(ref, str) and ref not in LEVEL_NAMES:
            raise ValueError(f"unknown station level {ref!r} (known: {', '.join(sorted(LEVEL_NAMES))})")
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
    overrides: dict[Ident, dict[Ident, dict]] = Field(default_factory=dict)  # station -> rule -> changes
    incidents: list[IncidentRule] = Field(default_factory=list)
    max_shelve_h: Annotated[float, Field(gt=0, le=168)] = 8.0  # operators may not shelve for longer
    system: list[dict] = Field(default_factory=list)  # system alarms: changes to the defaults by name, or new


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
    system: list[StationRule] = field(default_factory=default_system_rules)  # the centre's system alarms

    def get(self, station: str, default: list[StationRule] | None = None) -> list[StationRule]:
        return self.stations.get(station, default or [])


def load_rules(path: Path, fleet: Fleet, derived: dict[str, set[str]] | None = None) -> RuleSet:
    """Rules per station id (and incident rules). `derived`: station → points our analyzers compute, which
    rules may use like any point. Raises ConfigError naming file, line and key for any invalid rule."""
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
    out: dict[str, list[StationRule]] = {}
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
        for i, base in enumerate(rf.templates.get(st.kind, [])):
            rule = base
            change = rf.overrides.get(sid, {}).get(base.name)
            where = ("templates", st.kind, i)
            if change:
                where = ("overrides", sid, base.name)
                try:
                    rule = RuleConfig.model_validate({**base.model_dump(), **change})
                except ValidationError as exc:
                    for err in exc.errors():
                        problems.append(f"{located.where((*where, *err['loc']))}: {describe(err)}")
                    continue
            if not rule.enabled:
                continue
            known = fleet.points.get(sid, {}).keys() | (derived or {}).get(sid, set())
            if rule.point is not None and rule.point not in known:
                log.info("station %s has no point %r: rule %s not applied", sid, rule.point, rule.name)
                continue
            ref = rule.above if rule.above is not None else rule.below
            limit: float | None = None
            if isinstance(ref, str):
                limit = getattr(st.levels, ref, None) if st.levels else None
                if limit is None:
                    problems.append(
                        f"{located.where((*where, 'above' if rule.above is not None else 'below'))}: "
                        f"station {sid} has no level {ref!r}"
                    )
                    continue
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
        names = {r.name for r in resolved}
        for r in resolved:  # a reference to a rule the station lacks is harmless; to none at all, a typo
            for ref in (*r.suppressed_by, *r.enabled_by):
                if ref not in names and ref not in all_rule_names:
                    problems.append(
                        f"{located.where(('templates', st.kind))}: rule {r.name} names unknown rule {ref!r}"
                    )
        out[sid] = resolved
    system = _system_rules(load_yaml(SYSTEM_RULES_FILE), rf.system, problems, located)
    if problems:
        raise ConfigError(sorted(set(problems), key=problems.index))
    return RuleSet(out, rf.incidents, rf.max_shelve_h, system)


def _system_rules(defaults, changes: list[dict], problems: list[str], located=None) -> list[StationRule]:
    """The defaults file's `system:` rules with `changes` (a rules file's `system:` entries) applied by name:
    an entry for a default rule changes only the keys it gives; an entry with a new name is a whole rule."""
    merged: dict[str, tuple[dict, object]] = {}
    for i, raw in enumerate((defaults.data or {}).get("system", [])):
        merged[raw["name"]] = (dict(raw), (defaults, ("system", i)))
    for i, raw in enumerate(changes):
        where = (located, ("system", i))
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            problems.append(f"{located.where(('system', i))}: a system rule needs a `name`")
            continue
        base = merged.get(raw["name"], ({}, None))[0]
        merged[raw["name"]] = ({**base, **raw}, where)
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
