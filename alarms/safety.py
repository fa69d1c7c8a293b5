"""The catalogue of safety functions per station kind (rules/safety.yaml): what a station must be able to
alarm on, and which alarm rules arm each function. Data, validated with `file:line` errors; the coverage of
a fleet against it is computed in alarms/coverage.py."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, model_validator

from pumpwatch.core.config import ConfigError
from pumpwatch.core.config.loader import describe
from pumpwatch.core.config.models import Ident, StationKind, Strict
from pumpwatch.core.config.yamlsrc import load_yaml

RuleName = Annotated[str, Field(pattern=r"^[A-Za-z0-9{][A-Za-z0-9_.{}-]{0,63}$")]


class SafetyFunction(Strict):
    function: Ident  # the id a station's waiver names
    title: str  # what an operator reads
    rules: list[RuleName] = Field(min_length=1)  # the rules that arm it; `{n}`: the pump's number
    require: Literal["any", "all"] = "any"  # one armed rule is enough, or every one must be
    per_pump: bool = False  # one row per pump of the station

    @model_validator(mode="after")
    def _pumps(self) -> SafetyFunction:
        for r in self.rules:
            if self.per_pump != ("{n}" in r):
                raise ValueError(
                    f"rule {r!r}: a per_pump function names its rules with {{n}} (pump{{n}}_fault), "
                    "and only a per_pump function does"
                )
        return self

    def rule_names(self, pump: int | None) -> list[str]:
        return [r.replace("{n}", str(pump)) for r in self.rules]


class SafetyFile(Strict):
    functions: dict[StationKind, list[SafetyFunction]]


@dataclass(frozen=True)
class Catalogue:
    path: Path
    functions: dict[str, list[SafetyFunction]]  # station kind -> its functions
    where: dict[tuple[str, str], str]  # (kind, function) -> `file:line key`

    def of(self, kind: str) -> list[SafetyFunction]:
        return self.functions.get(kind, [])


def load_catalogue(path: Path, rule_names: dict[str, list[str]] | None = None) -> Catalogue:
    """Read and check the catalogue. `rule_names` (station kind → its template rule names, from the rules
    file): every rule the catalogue names must exist for its kind (for pump 1 of a per_pump function)."""
    located = load_yaml(path)
    problems: list[str] = []
    try:
        sf = SafetyFile.model_validate(located.data or {})
    except ValidationError as exc:
        raise ConfigError([f"{located.where(err['loc'])}: {describe(err)}" for err in exc.errors()]) from None
    where: dict[tuple[str, str], str] = {}
    for kind, fns in sf.functions.items():
        for i, fn in enumerate(fns):
            key = ("functions", kind, i)
            if (kind, fn.function) in where:
                problems.append(
                    f"{located.where((*key, 'function'))}: function {fn.function!r} twice for {kind}"
                )
            where[(kind, fn.function)] = located.where(key)
            if rule_names is None:
                continue
            known = set(rule_names.get(kind, []))
            for j, r in enumerate(fn.rule_names(1 if fn.per_pump else None)):
                if r not in known:
                    problems.append(
                        f"{located.where((*key, 'rules', j))}: {kind} has no alarm rule {r!r} "
                        f"(templates.{kind} of the rules file)"
                    )
    if problems:
        raise ConfigError(problems)
    return Catalogue(path=path, functions={kind: fns for kind, fns in sf.functions.items()}, where=where)
