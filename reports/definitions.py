"""Report templates as data: `deploy/config/reports/*.yaml` (one template per file, plus `summary.yaml`).

A template names the station kinds it applies to and its columns. A column has a `figure` (how a value is
computed from the historian's hourly aggregates, `reports.compute`), a point (or a list of candidates, the
first the station has wins; `{pump}` expands to each pump of the station when `per_pump`), a unit and
ja/en labels. A column whose point a station lacks is left out of that station's sheet, and the report
says so (never a silent zero).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pumpwatch.reports.errors import DefinitionError

__all__ = ["ColumnDef", "Definitions", "SummaryDef", "TemplateDef", "load_definitions"]

Figure = Literal[
    "time_true", "increase", "pumped_volume", "min", "max", "mean", "integral_h", "alarm_count",
    "missing", "completeness",
]  # fmt: skip
Unit = Literal["h", "min", "count", "m3", "m", "mm", "kWh", "mg/L", "pct"]
_NEEDS_POINT = {"time_true", "increase", "pumped_volume", "min", "max", "mean", "integral_h"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Label(_Strict):
    ja: str
    en: str


class ColumnDef(_Strict):
    key: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    figure: Figure
    unit: Unit
    label: Label
    point: list[str] = Field(default_factory=list)
    per_pump: bool = False
    alarm: str | None = None  # alarm_count: only alarms of this rule (None: all)

    @field_validator("point", mode="before")
    @classmethod
    def _one_or_many(cls, v: object) -> object:
        return [v] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _coherent(self) -> ColumnDef:
        if self.figure in _NEEDS_POINT and not self.point:
            raise ValueError(f"figure {self.figure!r} needs a point")
        if self.figure not in _NEEDS_POINT and self.point:
            raise ValueError(f"figure {self.figure!r} takes no point")
        if self.per_pump and not all("{pump}" in p for p in self.point):
            raise ValueError("a per_pump column's point must contain {pump}")
        if not self.per_pump and any("{pump}" in p for p in self.point):
            raise ValueError("{pump} in a point needs per_pump: true")
        if self.alarm is not None and self.figure != "alarm_count":
            raise ValueError("alarm: is only for figure alarm_count")
        if self.figure == "time_true" and self.unit not in ("h", "min"):
            raise ValueError("time_true is in h or min")
        return self


class TemplateDef(_Strict):
    id: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    kinds: list[Literal["manhole_pump", "relay_pump", "stormwater_pump", "treatment_plant"]] = Field(
        min_length=1
    )
    title: Label
    reference_point: list[str] = Field(min_length=1)
    columns: list[ColumnDef] = Field(min_length=1)

    @field_validator("reference_point", mode="before")
    @classmethod
    def _one_or_many(cls, v: object) -> object:
        return [v] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _unique(self) -> TemplateDef:
        keys = [c.key for c in self.columns]
        dup = sorted({k for k in keys if keys.count(k) > 1})
        if dup:
            raise ValueError(f"column keys must be unique: {', '.join(dup)}")
        return self


class SummaryDef(_Strict):
    title: Label
    hint_factor: Annotated[float, Field(gt=1)] = 2.0
    standard_life_years: dict[str, Annotated[int, Field(gt=0, le=100)]] = Field(default_factory=dict)


class Definitions(BaseModel):
    templates: dict[str, TemplateDef]
    summary: SummaryDef
    root: Path

    def for_kind(self, kind: str) -> TemplateDef:
        for t in self.templates.values():
            if kind in t.kinds:
                return t
        raise ReportErrorForKind(kind)


class ReportErrorForKind(DefinitionError):
    def __init__(self, kind: str) -> None:
        super().__init__(f"no report template covers station kind {kind!r} (deploy/config/reports/)")


def _where(loc: tuple) -> str:
    return ".".join(str(p) for p in loc) or "(top)"


def load_definitions(root: str | Path) -> Definitions:
    """Every `*.yaml` under `root`: templates (`id:` …) and the summary (`summary:`). All problems are
    collected and raised together as one DefinitionError (`file: key.path: why`)."""
    root = Path(root)
    if not root.is_dir():
        raise DefinitionError(f"{root}: report definitions folder not found")
    problems: list[str] = []
    templates: dict[str, TemplateDef] = {}
    summary: SummaryDef | None = None
    for path in sorted(root.glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            problems.append(f"{path}: not valid YAML: {exc}")
            continue
        if not isinstance(data, dict):
            problems.append(f"{path}: expected a mapping at the top")
            continue
        if "schedules" in data:  # reports/schedule.py reads it
            continue
        try:
            if "summary" in data:
                if set(data) != {"summary"}:
                    problems.append(f"{path}: a summary file holds only `summary:`")
                    continue
                summary = SummaryDef.model_validate(data["summary"])
            else:
                t = TemplateDef.model_validate(data)
                if t.id in templates:
                    problems.append(f"{path}: id: template {t.id!r} defined twice")
                    continue
                templates[t.id] = t
        except ValidationError as exc:
            for err in exc.errors():
                problems.append(f"{path}: {_where(err['loc'])}: {err['msg'].removeprefix('Value error, ')}")
    kinds: dict[str, str] = {}
    for t in templates.values():
        for k in t.kinds:
            if k in kinds:
                problems.append(f"{root}: station kind {k!r} is in two templates ({kinds[k]}, {t.id})")
            kinds[k] = t.id
    if summary is None and not problems:
        problems.append(f"{root}: no summary.yaml (the municipality summary's definition)")
    if problems:
        raise DefinitionError("; ".join(problems))
    assert summary is not None
    return Definitions(templates=templates, summary=summary, root=root)


def default_root() -> Path:
    """`deploy/config/reports` of this checkout (the repository the package is installed from)."""
    return Path(__file__).resolve().parent.parent / "deploy" / "config" / "reports"
