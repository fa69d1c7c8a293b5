"""Alarm coverage as a checked property: for every station, is each safety function its kind needs
(rules/safety.yaml) armed — by which rule, reading which points — waived with a written reason, or unarmed?

A rule arms a function at a station when it applies there (in its kind's templates, enabled, not dropped
by `load_rules` because the station lacks its point) and, for a rule on a derived point, the analyzer
computing that point has every point it needs; a comm-loss rule needs a controller serving the station;
a rule with `enabled_by` needs one of those rules armed, or it is never evaluated. `check-config` prints
this (`format_summary`, `format_station`) and exits 1 on `problems`; `pumpwatch run` refuses to start on
them. `stale_waivers` (a waiver of a function that is armed) fail check-config and are logged at run.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pumpwatch.alarms.analyzers import Analyzer, DerivedPoint
from pumpwatch.alarms.rules import DroppedRule, RuleSet, load_rules
from pumpwatch.alarms.safety import Catalogue, SafetyFunction, load_catalogue
from pumpwatch.core.config import ConfigError, Fleet

State = Literal["armed", "waived", "unarmed"]


@dataclass(frozen=True, slots=True)
class RuleArming:
    """One rule a safety function names, at one station."""

    rule: str
    armed: bool
    points: tuple[str, ...] = ()  # the station's points it reads (a derived point's: what it needs)
    via: str | None = None  # the derived point the rule reads, when it reads one
    sources: tuple[str, ...] = ()  # comm-loss rules: the controllers whose silence it watches
    enabled_by: tuple[str, ...] = ()  # evaluated only while one of these is active
    why: str | None = None  # not armed: why
    where: str | None = None  # `file:line key` of the rule that is not applied

    def reads(self, *, sources: bool = True) -> str:
        """What it reads: `mains_failed`, `tto_spill_min (from wet_well_level_m)`, `kita-01`."""
        if self.sources:
            return ", ".join(self.sources) if sources else "its controllers"
        points = ", ".join(self.points)
        if self.via is None:
            read = points
        elif self.via == self.rule:
            read = f"derived from {points}"
        else:
            read = f"{self.via} (from {points})"
        return read + (f", while {' | '.join(self.enabled_by)}" if self.enabled_by else "")


@dataclass(frozen=True, slots=True)
class FunctionCoverage:
    function: str
    title: str
    pump: int | None  # per-pump functions: the pump's number (1: the first of the station's pumps)
    state: State
    rules: tuple[RuleArming, ...]  # every rule the catalogue names for it here
    why: str | None = None  # not armed (unarmed or waived): why
    waiver: str | None = None  # the waiver's reason
    waiver_where: str | None = None

    @property
    def label(self) -> str:
        return f"{self.function} (pump {self.pump})" if self.pump is not None else self.function

    @property
    def armed_by(self) -> tuple[RuleArming, ...]:
        return tuple(r for r in self.rules if r.armed)


@dataclass
class StationCoverage:
    station: str
    kind: str
    type: str | None
    functions: list[FunctionCoverage]
    dropped: list[DroppedRule]  # rules of its kind not applied at this station, and why

    def row(self, function: str, pump: int | None = None) -> FunctionCoverage:
        return next(f for f in self.functions if f.function == function and f.pump == pump)


@dataclass
class FleetCoverage:
    catalogue: Path | None
    stations: dict[str, StationCoverage] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # unarmed and not waived, bad waivers
    stale_waivers: list[str] = field(default_factory=list)  # waivers of functions that are armed

    @property
    def ok(self) -> bool:
        return not self.problems

    def count(self, state: State) -> int:
        return sum(f.state == state for sc in self.stations.values() for f in sc.functions)


class CoverageError(ConfigError):
    """`pumpwatch run` refuses: a station has a safety function neither armed nor waived."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        Exception.__init__(
            self,
            "refusing to start: a station could not raise a safety alarm (details: pumpwatch check-config)"
            ":\n  " + "\n  ".join(problems),
        )


def check_fleet(fleet: Fleet, analyzers: Mapping[str, list[Analyzer]]) -> tuple[RuleSet, FleetCoverage]:
    """The fleet's alarm rules and their coverage, as `pumpwatch run` would evaluate them. Raises
    ConfigError for an invalid rules file or catalogue (coverage problems are in the result)."""
    derived = {sid: [p for a in an for p in a.outputs] for sid, an in analyzers.items()}
    rules = load_rules(fleet.alarm_rules, fleet, derived) if fleet.alarm_rules else None
    catalogue = None
    if fleet.safety_functions is not None:
        catalogue = load_catalogue(fleet.safety_functions, rules.kinds if rules else None)
    return rules or RuleSet({}, []), compute_coverage(fleet, rules, catalogue, derived)


def compute_coverage(
    fleet: Fleet,
    rules: RuleSet | None,
    catalogue: Catalogue | None,
    derived: Mapping[str, Iterable[DerivedPoint]] | None = None,
) -> FleetCoverage:
    """Coverage of every station. `rules` and `derived` as the running system has them (System.prepare)."""
    fleet_file = fleet.root / "fleet.yaml"
    cov = FleetCoverage(catalogue.path if catalogue else None)
    if catalogue is None:
        cov.problems.append(
            f"{fleet_file}: no safety catalogue: write `safety_functions: ../rules/safety.yaml` (or put "
            "safety.yaml beside the alarm rules), else nothing checks that any station can alarm"
        )
        return cov
    if rules is None:
        cov.problems.append(f"{fleet_file}: no alarm_rules: no station of this fleet can raise any alarm")
        rules = RuleSet({}, [])
    quiet = not rules.stations  # one problem above says it all
    dpoints = {sid: {dp.name: dp for dp in pts} for sid, pts in (derived or {}).items()}
    missing_kinds: dict[str, list[str]] = {}
    for sid, st in fleet.stations.items():
        fns = catalogue.of(st.kind)
        if not fns:
            missing_kinds.setdefault(st.kind, []).append(sid)
        sc = _station(fleet, sid, rules, fns, dpoints.get(sid, {}))
        cov.stations[sid] = sc
        _waivers(fleet, sid, sc, fns, cov)
        if not quiet:
            for f in sc.functions:
                if f.state == "unarmed":
                    wheres = [r.where for r in f.rules if not r.armed and r.where]
                    cov.problems.append(
                        f"{fleet.where.get(sid, fleet_file)}: station {sid}: safety function {f.label} "
                        f"({f.title}) is not armed: {f.why}"
                        + (f" (rule at {'; '.join(wheres)})" if wheres else "")
                    )
    for kind, sids in missing_kinds.items():
        cov.problems.append(
            f"{catalogue.path}: functions has no entry for {kind}, so nothing is checked for "
            f"{len(sids)} stations ({', '.join(sids[:3])}{', …' if len(sids) > 3 else ''})"
        )
    return cov


def _station(
    fleet: Fleet, sid: str, rules: RuleSet, fns: list[SafetyFunction], dpoints: dict[str, DerivedPoint]
) -> StationCoverage:
    st = fleet.stations[sid]
    resolved = {r.name: r for r in rules.get(sid)}
    dropped = {d.rule: d for d in rules.dropped.get(sid, [])}
    raw = set(fleet.points.get(sid, {}))
    memo: dict[str, RuleArming] = {}

    def arm(name: str, stack: tuple[str, ...] = ()) -> RuleArming:
        if name in memo:
            return memo[name]
        r = resolved.get(name)
        if r is None:
            d = dropped.get(name)
            if d is not None:
                res = RuleArming(name, False, (d.point,) if d.point else (), why=d.why, where=d.where)
            else:
                res = RuleArming(name, False, why=f"the rules for {st.kind} have no rule {name!r}")
        elif r.type == "comm_loss":
            ctrls = tuple(c.id for c in fleet.controllers_of(sid))
            res = RuleArming(
                name, bool(ctrls), sources=ctrls, why=None if ctrls else "no controller serves it"
            )
        else:
            points: tuple[str, ...] = (r.point,) if r.point else ()
            via = None
            dp = dpoints.get(r.point or "")
            if r.point not in raw and dp is not None:
                via = r.point
                points = tuple(
                    a for need in dp.needs for a in ((need,) if isinstance(need, str) else need) if a in raw
                )
            res = RuleArming(name, True, points, via, enabled_by=r.enabled_by)
            enablers = [arm(e, (*stack, name)) for e in r.enabled_by if e not in stack]
            if r.enabled_by and not any(e.armed for e in enablers):
                res = RuleArming(
                    name,
                    False,
                    points,
                    via,
                    enabled_by=r.enabled_by,
                    why=f"it is evaluated only while {' or '.join(r.enabled_by)} is active, and none "
                    "of them is armed here",
                )
        memo[name] = res
        return res

    rows: list[FunctionCoverage] = []
    for fn in fns:
        for pump in range(1, len(st.pumps) + 1) if fn.per_pump else (None,):
            arms = tuple(arm(n) for n in fn.rule_names(pump))
            armed = any(a.armed for a in arms) if fn.require == "any" else all(a.armed for a in arms)
            why = None if armed else "; ".join(_why(a) for a in arms if not a.armed)
            rows.append(
                FunctionCoverage(fn.function, fn.title, pump, "armed" if armed else "unarmed", arms, why)
            )
    return StationCoverage(sid, st.kind, st.type, rows, list(rules.dropped.get(sid, [])))


def _why(a: RuleArming) -> str:
    """`rule: why`, without saying the rule's name twice (`pump1_fails_to_run is computed from …`)."""
    why = a.why or ""
    return why if why.startswith(f"{a.rule} ") else f"{a.rule}: {why}"


def _waivers(
    fleet: Fleet, sid: str, sc: StationCoverage, fns: list[SafetyFunction], cov: FleetCoverage
) -> None:
    st = fleet.stations[sid]
    where = fleet.waiver_where.get(sid, [])
    by_id = {fn.function: fn for fn in fns}
    for j, w in enumerate(st.waivers):
        at = where[j] if j < len(where) else fleet.where.get(sid, str(fleet.root))
        fn = by_id.get(w.function)
        if fn is None:
            cov.problems.append(
                f"{at}: station {sid} ({st.kind}) has no safety function {w.function!r} to waive "
                f"(its kind's: {', '.join(by_id) or 'none'})"
            )
            continue
        if w.pump is not None and not fn.per_pump:
            cov.problems.append(f"{at}: {w.function} is one function per station, not per pump: drop `pump`")
            continue
        if w.pump is not None and w.pump > len(st.pumps):
            cov.problems.append(f"{at}: station {sid} has {len(st.pumps)} pumps, no pump {w.pump}")
            continue
        covered = [
            i
            for i, f in enumerate(sc.functions)
            if f.function == w.function and (w.pump is None or f.pump == w.pump)
        ]
        if all(sc.functions[i].state == "armed" for i in covered):
            armed = ", ".join(r.rule for i in covered for r in sc.functions[i].armed_by)
            cov.stale_waivers.append(
                f"{at}: station {sid}: {w.function}{f' (pump {w.pump})' if w.pump else ''} is waived but "
                f"armed (by {armed}): remove the waiver, its reason no longer holds"
            )
            continue
        for i in covered:
            f = sc.functions[i]
            if f.state == "unarmed":
                sc.functions[i] = FunctionCoverage(
                    f.function, f.title, f.pump, "waived", f.rules, f.why, w.reason.strip(), at
                )


# --- text ------------------------------------------------------------------------------------------------


def _cell(f: FunctionCoverage, *, sources: bool) -> str:
    if f.state == "armed":  # rules reading the same thing share one entry
        by_read: dict[str, list[str]] = {}
        for r in f.armed_by:
            by_read.setdefault(r.reads(sources=sources), []).append(r.rule)
        return "; ".join(f"{', '.join(names)} ← {read}" for read, names in by_read.items())
    if f.state == "waived":
        return f'"{f.waiver}" (not armed: {f.why})'
    return f.why or ""


def _table(rows: list[tuple[str, str, str]], indent: str = "  ") -> list[str]:
    w0 = max((len(r[0]) for r in rows), default=0)
    return [f"{indent}{a:<{w0}}  {b:<8} {c}".rstrip() for a, b, c in rows]


def _state(f: FunctionCoverage) -> str:
    return f.state.upper() if f.state == "unarmed" else f.state


def format_station(sc: StationCoverage) -> list[str]:
    """Every function of one station, then the rules of its kind not applied there."""
    out = [f"{sc.station} · {sc.kind}" + (f" · type {sc.type}" if sc.type else "")]
    out += _table([(f.label, _state(f), _cell(f, sources=True)) for f in sc.functions])
    for d in sc.dropped:
        out.append(f"  rule not applied: {d.rule}: {d.why}")
    return out


def format_summary(cov: FleetCoverage) -> list[str]:
    """Per station type (or kind, for stations without one): the usual row of every function, then the
    stations that differ from it, then the rules not applied and at how many stations."""
    groups: dict[tuple[str, str | None], list[StationCoverage]] = {}
    for sc in cov.stations.values():
        groups.setdefault((sc.kind, sc.type), []).append(sc)
    out = [
        f"safety coverage ({cov.catalogue}): {_n(len(cov.stations), 'station')}, "
        f"{cov.count('armed')} functions armed, {cov.count('waived')} waived, {cov.count('unarmed')} unarmed"
    ]
    for (kind, type_), members in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        out.append("")
        out.append(f"{type_ or '(no type)'} · {kind} · {_n(len(members), 'station')}")
        keys: dict[tuple[str, int | None], list[tuple[str, FunctionCoverage]]] = {}
        for sc in members:
            for f in sc.functions:
                keys.setdefault((f.function, f.pump), []).append((sc.station, f))
        rows: list[tuple[str, str, str]] = []
        exceptions: list[tuple[str, str, str]] = []
        for entries in keys.values():
            sigs = Counter(_signature(f) for _, f in entries)
            usual = sigs.most_common(1)[0][0]
            first = next(f for _, f in entries if _signature(f) == usual)
            n = "" if len(entries) == len(members) else f" ({_n(len(entries), 'station')})"
            rows.append((first.label + n, _state(first), _cell(first, sources=False)))
            for sid, f in entries:
                if _signature(f) != usual:
                    exceptions.append((f"{sid} {f.label}", _state(f), _cell(f, sources=True)))
        out += _table(rows)
        if exceptions:
            out.append("  exceptions:")
            out += _table(exceptions, indent="    ")
        drops = Counter((d.rule, _generic(d.why)) for sc in members for d in sc.dropped)
        for (rule, why), k in sorted(drops.items()):
            out.append(f"  rule not applied: {rule}: {why} ({k} of {len(members)} stations)")
    return out


def _n(k: int, noun: str) -> str:
    return f"{k} {noun}" + ("" if k == 1 else "s")


def _generic(why: str) -> str:
    """A reason without the controller it names: `(mps-canonical via kita-01)` → `(mps-canonical)`."""
    return re.sub(r" via [^,)]+", "", why)


def _signature(f: FunctionCoverage) -> tuple[object, ...]:
    """What makes two stations' rows the same: not the controllers they are read through."""
    return (
        f.state,
        _generic(f.why or ""),
        f.waiver,
        tuple((r.rule, r.armed, r.points, r.via) for r in f.rules),
    )
