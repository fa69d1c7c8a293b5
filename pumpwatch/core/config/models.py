"""Typed configuration: tenants, stations (with geometry), controllers and register maps.

Every model forbids unknown keys, so a typo is an error that names the key, not a silently ignored line.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

Ident = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
PointName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]

StationKind = Literal["manhole_pump", "relay_pump", "stormwater_pump", "treatment_plant"]
PUMPING_KINDS = frozenset({"manhole_pump", "relay_pump", "stormwater_pump"})
Table = Literal["coil", "discrete_input", "input_register", "holding_register"]
BIT_TABLES = frozenset({"coil", "discrete_input"})
RegisterType = Literal["bool", "int16", "uint16", "int32", "uint32", "float32"]
REGISTER_WIDTH = {"bool": 1, "int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2}
WordOrder = Literal["ABCD", "CDAB", "BADC", "DCBA"]
MAX_READ = {"coil": 2000, "discrete_input": 2000, "input_register": 125, "holding_register": 125}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LocatedError(ValueError):
    """Validation problems that know the key path (below the model raising them) they are about: pydantic
    reports a model-level error at the model itself, the loader turns these into `file:line` of the key."""

    def __init__(self, items: list[tuple[tuple[str | int, ...], str]]) -> None:
        super().__init__("; ".join(msg for _, msg in items))
        self.items = items


# --- tenants -------------------------------------------------------------------------------------------


class TenantConfig(Strict):
    id: Ident
    name: str
    timezone: str = "Asia/Tokyo"
    # The monitoring centre: owns the system alarms (historian, spool, shards, notifier, rejected input),
    # the dead letters, and the staff they are routed to. At most one tenant of a fleet.
    centre: bool = False
    # every user with a grant here gives a second factor at sign-in, whatever the role (engineer and admin
    # always do: PUMPWATCH_MFA_ROLES)
    require_mfa: bool = False

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v


class TenantsFile(Strict):
    tenants: list[TenantConfig] = Field(min_length=1)


# --- register maps -------------------------------------------------------------------------------------


class PointSpec(Strict):
    """One point of a register map: where it is on the wire and how to turn words into a value."""

    name: PointName
    table: Table
    address: int = Field(ge=0)  # in the map's address_base; the map checks the range and the notation
    type: RegisterType = "uint16"
    word_order: WordOrder | None = None  # None: the map's default
    bit: int | None = Field(default=None, ge=0, le=15)  # one bit of a 16-bit register, as a state
    # states only: the device's 1 means false here (a device's `mains_ok` bit read as `mains_failed`)
    invert: bool = False
    scale: float = 1.0
    offset: float = 0.0
    unit: str | None = None
    kind: Literal["analog", "state", "counter"] | None = None
    not_available: int | None = Field(default=None, ge=0, le=0xFFFFFFFF)  # raw word(s) meaning "no value"
    valid_min: float | None = None
    valid_max: float | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> PointSpec:
        if self.table in BIT_TABLES and self.type != "bool":
            raise ValueError(f"table {self.table} holds single bits: type must be bool, not {self.type}")
        if self.table not in BIT_TABLES and self.type == "bool" and self.bit is None:
            raise ValueError(f"type bool in table {self.table} needs `bit` (which bit of the register)")
        if self.bit is not None and self.table in BIT_TABLES:
            raise ValueError("`bit` applies only to a 16-bit register, not to a coil or discrete input")
        if self.bit is not None and self.type != "bool":
            raise LocatedError(
                [
                    (
                        ("type",),
                        f"`bit` makes this point one bit of the register, a state: write type: bool, "
                        f"not {self.type}",
                    )
                ]
            )
        if self.scale == 0 or not math.isfinite(self.scale):
            raise ValueError("scale must be a finite, non-zero number")
        if self.valid_min is not None and self.valid_max is not None and self.valid_min > self.valid_max:
            raise ValueError("valid_min is greater than valid_max")
        # An option that cannot act on this type is a misunderstanding to report, never to ignore: a
        # `scale: -1, offset: 1` meant to invert a bool would otherwise pass and do nothing.
        given = self.model_fields_set
        useless: list[tuple[tuple[str | int, ...], str]] = []
        if self.type == "bool":
            for key in ("scale", "offset", "valid_min", "valid_max"):
                if key in given:
                    useless.append(
                        (
                            (key,),
                            f"`{key}` has no effect on a bool point (a state is true or false)"
                            + (
                                ": to read a bit the other way round, write `invert: true`"
                                if key in ("scale", "offset")
                                else ""
                            ),
                        )
                    )
        elif "invert" in given:
            useless.append(
                (
                    ("invert",),
                    f"`invert` applies to bool points only (bits, coils, discrete inputs), not "
                    f"to {self.type}: for a number use scale and offset",
                )
            )
        if "word_order" in given and REGISTER_WIDTH[self.type] == 1:
            useless.append(
                (
                    ("word_order",),
                    f"`word_order` orders the two registers of a 32-bit value; {self.type} "
                    "is one register (byte order within a register is fixed by Modbus)",
                )
            )
        if self.not_available is not None:
            if self.table in BIT_TABLES:
                useless.append(
                    (
                        ("not_available",),
                        f"`not_available` has no meaning in a {self.table}: a bit is 0 or 1, both are values",
                    )
                )
            elif REGISTER_WIDTH[self.type] == 1 and self.not_available > 0xFFFF:
                useless.append(
                    (
                        ("not_available",),
                        f"`not_available` {self.not_available:#x} does not fit one "
                        "16-bit register, so it can never match",
                    )
                )
        if useless:
            raise LocatedError(useless)
        return self

    @property
    def is_state(self) -> bool:
        return self.type == "bool" or self.bit is not None

    @property
    def width(self) -> int:
        """Registers (or bits) it occupies."""
        return 1 if self.is_state else REGISTER_WIDTH[self.type]

    @property
    def point_kind(self) -> str:
        return self.kind or ("state" if self.is_state else "analog")


# Modicon ("4xxxx") numbering: the first digit names the table and the rest counts from 1. Five digits reach
# 9999 registers of a table, six digits all 65536. (first, last) for each table, each length.
MODICON = {
    "coil": ((1, 9999), (1, 65536)),  # 0xxxx: the leading 0 vanishes in a number
    "discrete_input": ((10001, 19999), (100001, 165536)),
    "input_register": ((30001, 39999), (300001, 365536)),
    "holding_register": ((40001, 49999), (400001, 465536)),
}
MODICON_PREFIX = {"coil": "0", "discrete_input": "1", "input_register": "3", "holding_register": "4"}


def modicon_wire(table: str, address: int) -> int | None:
    """Wire address of a Modicon number in `table`, or None if the number is not in that table's range."""
    for first, last in MODICON[table]:
        if first <= address <= last:
            return address - first
    return None


def modicon_table(address: int) -> str | None:
    """The register table a Modicon-looking number belongs to (coils excepted: any small number looks so)."""
    for table in ("discrete_input", "input_register", "holding_register"):
        if modicon_wire(table, address) is not None:
            return table
    return None


class RegisterMap(Strict):
    name: Ident
    description: str = ""
    # 0: wire (PDU) addresses; 1: documentation numbers, first register 1; "modicon": 40001 = holding
    # register 0, 30001 = input register 0, 10001 = discrete input 0, 1 = coil 0 (checked against the table)
    address_base: Literal[0, 1, "modicon"] = 0
    # the device really uses wire addresses such as 30001 or 40001 (some vendors number literally)
    literal_high_addresses: bool = False
    word_order: WordOrder = "ABCD"  # default for 32-bit values
    max_gap: int = Field(default=8, ge=0, le=100)  # unused registers a read may span to join two blocks
    points: list[PointSpec] = Field(min_length=1)

    def wire_address(self, p: PointSpec) -> int:
        if self.address_base == "modicon":
            wire = modicon_wire(p.table, p.address)
            assert wire is not None, "validated"
            return wire
        return p.address - self.address_base

    def _address_problem(self, p: PointSpec) -> str | None:
        a, base = p.address, self.address_base
        if base == "modicon":
            if modicon_wire(p.table, a) is not None:
                return None
            (f5, l5), (f6, l6) = MODICON[p.table]
            other = modicon_table(a)
            hint = (
                f" ({a} is the Modicon number of {other.replace('_', ' ')} {modicon_wire(other, a)})"
                if other
                else ""
            )
            return (
                f"address {a} is not a Modicon {p.table.replace('_', ' ')} number{hint}: under address_base "
                f"modicon a {p.table} is {f5:05d}–{l5:05d} (or {f6:06d}–{l6:06d}): "
                "check `table` or the number"
            )
        last = 65535 + base
        looks = modicon_wire(p.table, a) is not None and p.table != "coil"
        if looks and not (self.literal_high_addresses and a <= last):
            first = MODICON[p.table][0 if a <= 99999 else 1][0]
            wire = a - first
            notation = MODICON_PREFIX[p.table] + "x" * (len(str(a)) - 1)
            literal = (
                f"; if the device really uses wire address {a - base}, set `literal_high_addresses: true`"
                if a <= last
                else f" (there is no wire address {a - base})"
            )
            return (
                f"{p.table} address {a} looks like Modicon notation ({notation}), but address_base {base} "
                f"reads it literally, at wire address {a - base}: write `address_base: modicon` for the "
                f"whole map (then {a} is wire address {wire}), or the address in base {base} "
                f"({wire + base}){literal}"
            )
        if a < base:
            return f"address {a} is below address_base {base}"
        if a > last:
            return f"address {a} is beyond the last address of base {base} ({last})"
        return None

    @model_validator(mode="after")
    def _no_overlaps(self) -> RegisterMap:
        seen: dict[str, int] = {}
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for i, p in enumerate(self.points):
            if p.name in seen:
                problems.append(
                    (("points", i, "name"), f"{p.name!r} is used twice (first at points[{seen[p.name]}])")
                )
            seen.setdefault(p.name, i)
            why = self._address_problem(p)
            if why is not None:
                problems.append((("points", i, "address"), f"{p.name}: {why}"))
            elif self.wire_address(p) + p.width > 65536:
                problems.append((("points", i, "address"), f"{p.name}: runs past the last address 65535"))
        if problems:
            raise LocatedError(problems)
        # Per table, a register (or bit) belongs to one point; bit fields may share a register, not a bit.
        owners: dict[tuple[str, int], tuple[str, int | None]] = {}
        for i, p in enumerate(self.points):
            for a in range(self.wire_address(p), self.wire_address(p) + p.width):
                key = (p.table, a)
                if key in owners:
                    other, other_bit = owners[key]
                    if p.bit is None or other_bit is None or other_bit == p.bit:
                        problems.append(
                            (
                                ("points", i, "address"),
                                f"points {other!r} and {p.name!r} overlap at {p.table} address "
                                f"{p.address + a - self.wire_address(p)}",
                            )
                        )
                        break
                owners[key] = (p.name, p.bit)
        if problems:
            raise LocatedError(problems)
        return self

    def point_word_order(self, p: PointSpec) -> str:
        return p.word_order or self.word_order


# --- stations ------------------------------------------------------------------------------------------


class Location(Strict):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    address: str | None = None


class WetWell(Strict):
    diameter_m: Positive | None = None
    area_m2: Positive | None = None

    @model_validator(mode="after")
    def _one_size(self) -> WetWell:
        if (self.diameter_m is None) == (self.area_m2 is None):
            raise ValueError("give exactly one of diameter_m or area_m2")
        return self

    @property
    def area(self) -> float:
        if self.area_m2 is not None:
            return self.area_m2
        assert self.diameter_m is not None  # the validator above: exactly one of the two
        return math.pi * self.diameter_m**2 / 4


class Levels(Strict):
    """Elevations in metres above the wet-well floor (datum 0)."""

    lwl_m: NonNegative | None = None  # low-low float: blocks running
    stop_m: NonNegative
    start_m: Positive
    lag_m: Positive | None = None  # second pump joins
    hwl_m: Positive  # high-water float / alarm
    inlet_invert_m: Positive  # inflow sewer invert at the wet well
    spill_m: Positive  # lowest house connection or lid that would overflow
    ground_m: Positive | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Levels:
        levels = [
            ("lwl_m", self.lwl_m),
            ("stop_m", self.stop_m),
            ("start_m", self.start_m),
            ("lag_m", self.lag_m),
            ("hwl_m", self.hwl_m),
            ("spill_m", self.spill_m),
            ("ground_m", self.ground_m),
        ]
        chain = [(k, v) for k, v in levels if v is not None]  # the optional ones only where given
        for (ka, a), (kb, b) in zip(chain, chain[1:], strict=False):
            if not a < b:
                raise ValueError(f"{ka} ({a}) must be below {kb} ({b})")
        if not self.inlet_invert_m < self.spill_m:
            raise ValueError(f"inlet_invert_m ({self.inlet_invert_m}) must be below spill_m ({self.spill_m})")
        return self


Slope = Annotated[float, Field(gt=0, lt=0.5)]
Roughness = Annotated[float, Field(ge=0.008, le=0.03)]  # Manning's n (0.013: concrete or PVC, in service)


class Reach(Strict):
    """One stretch of a sewer between two manholes (or a change of slope), listed from the lower end up."""

    length_m: Positive
    slope: Slope
    manhole: bool = True  # a manhole at its upper end (False: a change of slope without one)
    manhole_area_m2: Positive | None = None  # that manhole's plan area (None: the pipe's)
    benching_m: NonNegative | None = None  # that manhole's floor above this reach's invert (None: the pipe's)


class Pipe(Strict):
    """One upstream gravity sewer rising from the wet well (or, as a branch, from a manhole of another).

    Either straight (`length_m`, `slope`, a manhole every `manhole_spacing_m`) or as `reaches`, each with its
    own length, slope and manhole. A manhole stores from its floor (`benching_m` above the pipe invert: the
    top of the benching, at most the crown; None: at the crown) up. `branches` join at this pipe's manholes.
    """

    diameter_m: Positive
    invert_m: NonNegative  # invert where it enters the wet well (a branch: where it enters its manhole)
    length_m: Positive | None = None
    slope: Slope | None = None
    manhole_spacing_m: Positive | None = None  # a manhole every so many metres along it
    upper_end_manhole: bool = False  # straight pipe with manholes: one also at its upper end (x = length)
    reaches: list[Reach] | None = None
    manhole_area_m2: Positive = 0.636  # 1号 manhole, φ900
    benching_m: NonNegative | None = None
    roughness_n: Roughness = 0.013
    branches: list[Branch] = Field(default_factory=list)

    @model_validator(mode="after")
    def _shape(self) -> Pipe:
        straight = self.length_m is not None or self.slope is not None
        if self.reaches is not None:
            if straight or self.manhole_spacing_m is not None or "upper_end_manhole" in self.model_fields_set:
                raise ValueError(
                    "give either `reaches` or a straight pipe (`length_m`, `slope`, `manhole_spacing_m`, "
                    "`upper_end_manhole`), not both"
                )
            if not self.reaches:
                raise ValueError("`reaches` needs at least one reach")
        elif self.length_m is None or self.slope is None:
            raise ValueError("a pipe needs `length_m` and `slope` (or `reaches`, one per stretch)")
        problems: list[tuple[tuple[str | int, ...], str]] = []
        d = self.diameter_m
        if self.benching_m is not None and self.benching_m > d:
            problems.append(
                (
                    ("benching_m",),
                    f"benching_m {self.benching_m} is above the pipe crown ({d} m above the invert)",
                )
            )
        for i, r in enumerate(self.reaches or ()):
            if r.benching_m is not None and r.benching_m > d:
                problems.append(
                    (
                        ("reaches", i, "benching_m"),
                        f"benching_m {r.benching_m} is above the pipe crown ({d} m)",
                    )
                )
        manholes = self.manhole_positions()
        for i, b in enumerate(self.branches):
            if not any(abs(b.at_m - x) <= 0.01 for x in manholes) and abs(b.at_m - self.total_length) > 0.01:
                where = ", ".join(f"{x:g}" for x in manholes[:12]) + (" …" if len(manholes) > 12 else "")
                problems.append(
                    (
                        ("branches", i, "at_m"),
                        f"a branch joins at a manhole: at_m {b.at_m:g} is none of this pipe's manholes "
                        f"({where or 'it has none'}) nor its upper end ({self.total_length:g} m)",
                    )
                )
                continue
            inv = self.invert_at(b.at_m)
            if b.invert_m is not None and b.invert_m < inv - 1e-9:
                problems.append(
                    (
                        ("branches", i, "invert_m"),
                        f"the branch enters at invert {b.invert_m:g} m, below this pipe's invert there "
                        f"({inv:.3f} m): sewage would flow into the branch",
                    )
                )
        if problems:
            raise LocatedError(problems)
        return self

    def stretches(self) -> list[tuple[float, float]]:
        """(length, slope) of each stretch from the lower end up (a straight pipe: cut at its manholes)."""
        if self.reaches is not None:
            return [(r.length_m, r.slope) for r in self.reaches]
        assert self.length_m is not None and self.slope is not None
        return [(self.length_m, self.slope)]

    @property
    def total_length(self) -> float:
        return sum(length for length, _ in self.stretches())

    def manhole_positions(self) -> list[float]:
        """Distances (m) from the lower end of this pipe's manholes."""
        if self.reaches is not None:
            out, x = [], 0.0
            for r in self.reaches:
                x += r.length_m
                if r.manhole:
                    out.append(x)
            return out
        assert self.length_m is not None
        if not self.manhole_spacing_m:
            return []
        out = []
        j = 1
        while (x := j * self.manhole_spacing_m) < self.length_m - 1e-9:
            out.append(x)
            j += 1
        if self.upper_end_manhole:
            out.append(self.length_m)
        return out

    def invert_at(self, x: float) -> float:
        """The invert (m, station datum) a distance x from the lower end."""
        z, pos = self.invert_m, 0.0
        for length, slope in self.stretches():
            step = min(length, max(x - pos, 0.0))
            z += slope * step
            pos += length
        return z


class Branch(Pipe):
    """A sewer joining another at one of its manholes."""

    at_m: Positive  # the manhole it joins, metres from the lower end of the pipe it joins
    invert_m: NonNegative | None = None  # type: ignore[assignment]  # None: the joined pipe's invert there


Pipe.model_rebuild()


class UpstreamStorage(Strict):
    pipes: list[Pipe] = Field(default_factory=list)
    # Alternative to pipes: upstream storage (m³, wet well excluded) at a level (m), from the utility's study.
    storage_curve: list[tuple[float, float]] | None = None
    usable_fraction: Annotated[float, Field(gt=0, le=1)] = 0.8

    @model_validator(mode="after")
    def _curve(self) -> UpstreamStorage:
        if self.storage_curve is not None:
            if self.pipes:
                raise ValueError("give pipes or storage_curve, not both")
            if len(self.storage_curve) < 2:
                raise ValueError("storage_curve needs at least two [level_m, volume_m3] points")
            for (z0, v0), (z1, v1) in zip(self.storage_curve, self.storage_curve[1:], strict=False):
                if not (z1 > z0 and v1 >= v0):
                    raise ValueError("storage_curve levels must rise and volumes must not fall")
        return self


class Pump(Strict):
    name: Ident
    rated_flow_m3_min: Positive
    rated_current_a: Positive
    power_kw: Positive | None = None
    install_year: int | None = Field(default=None, ge=1950, le=2100)
    standby: bool = False  # held in reserve; takes over a faulted duty pump
    drive: Literal["electric", "engine"] = "electric"  # engine-driven pumps keep running in a grid outage


class Catchment(Strict):
    population: Annotated[int, Field(ge=0)]
    per_capita_l_day: Positive = 300.0


class PumpStage(Strict):
    """Staged level control: the n-th duty pump starts at start_m and stops at stop_m."""

    start_m: Positive
    stop_m: NonNegative

    @model_validator(mode="after")
    def _hysteresis(self) -> PumpStage:
        if not self.stop_m < self.start_m:
            raise ValueError(f"stop_m ({self.stop_m}) must be below start_m ({self.start_m})")
        return self


class Control(Strict):
    stages: list[PumpStage] = Field(default_factory=list)  # relay stations: one per duty pump, rising

    @model_validator(mode="after")
    def _rising(self) -> Control:
        starts = [st.start_m for st in self.stages]
        if starts != sorted(starts):
            raise ValueError("stages must be listed with rising start_m")
        return self


class River(Strict):
    """Outer (river) level rules of a stormwater station (運転調整), in metres on the station's datum."""

    gate_close_m: Positive | None = None  # close the discharge gate at or above (back-flow)
    stop_pumps_m: Positive  # curtailment: stop pumping at or above
    resume_pumps_m: Positive  # resume below

    @model_validator(mode="after")
    def _order(self) -> River:
        if not self.resume_pumps_m < self.stop_pumps_m:
            raise ValueError("resume_pumps_m must be below stop_pumps_m")
        return self


class Drainage(Strict):
    """Storm catchment for the rational method: Q = C · i · A."""

    area_ha: Positive
    runoff_coefficient: Annotated[float, Field(gt=0, le=1)] = 0.6


class PlantDesign(Strict):
    design_flow_m3_d: Positive
    effluent_bod_limit_mg_l: Positive = 15.0
    effluent_ss_limit_mg_l: Positive = 40.0


class Waiver(Strict):
    """An engineer's written decision that a station runs without one of its kind's safety functions
    (rules/safety.yaml). Shown in check-config's coverage table, the API and the console."""

    function: Ident
    reason: str = ""
    pump: int | None = Field(default=None, ge=1)  # per-pump functions: only this pump (1: the first)

    @model_validator(mode="after")
    def _reasoned(self) -> Waiver:
        if len(self.reason.strip()) < 10:
            raise LocatedError(
                [
                    (
                        ("reason",),
                        f"a waiver of {self.function!r} needs a written reason (at least a sentence): "
                        "why may this station run without it, and who decided",
                    )
                ]
            )
        return self


class StationConfig(Strict):
    id: Ident
    tenant: Ident
    name: str
    kind: StationKind
    type: Ident | None = None  # the station type (template) it was built from
    power_area: str | None = None
    location: Location | None = None
    # Where this station's water goes next: a manhole pump to a relay station, a relay station to a plant
    # (the id of another station of the fleet); None: to a river, the sea, or outside the fleet.
    discharges_to: Ident | None = None
    wet_well: WetWell | None = None
    levels: Levels | None = None
    upstream: UpstreamStorage = Field(default_factory=UpstreamStorage)
    pumps: list[Pump] = Field(default_factory=list)
    catchment: Catchment | None = None
    control: Control | None = None
    river: River | None = None
    drainage: Drainage | None = None
    plant: PlantDesign | None = None
    # An engineer's decision, per station: the API may write its holding registers and coils (each write
    # with the engineer role, a second confirmation, an audit record first and a read-back). Off: the
    # collector sends no Modbus write function code at all.
    write_enabled: bool = False
    # Safety functions of its kind this station runs without, each with a written reason (rules/safety.yaml)
    waivers: list[Waiver] = Field(default_factory=list)

    @model_validator(mode="after")
    def _geometry(self) -> StationConfig:
        if self.kind in PUMPING_KINDS:
            missing = [k for k in ("wet_well", "levels") if getattr(self, k) is None]
            if missing:
                raise ValueError(f"a {self.kind} station needs its geometry: missing {', '.join(missing)}")
            if not self.pumps:
                raise ValueError(f"a {self.kind} station needs at least one pump")
        names = [p.name for p in self.pumps]
        if len(set(names)) != len(names):
            raise ValueError("pump names must be unique within a station")
        if self.kind == "stormwater_pump" and self.river is None:
            raise ValueError("a stormwater_pump station needs `river` (its outer-level curtailment rule)")
        if self.kind == "treatment_plant" and self.plant is None:
            raise ValueError("a treatment_plant needs `plant` (design_flow_m3_d)")
        if self.control and len(self.control.stages) > len([p for p in self.pumps if not p.standby]):
            raise ValueError("more control stages than duty (non-standby) pumps")
        return self


class StationsFile(Strict):
    station_types: dict[Ident, dict[str, Any]] = Field(default_factory=dict)
    stations: list[dict[str, Any]] = Field(default_factory=list)


# --- controllers ---------------------------------------------------------------------------------------


class ModbusUnit(Strict):
    unit_id: int = Field(ge=0, le=255)
    station: Ident
    map: Ident
    timeout_s: Annotated[float, Field(gt=0, le=60)] | None = None  # this unit's own answer time limit


class Workarounds(Strict):
    """Device quirks as named opt-in flags (Telegraf style), never special cases in code."""

    pause_after_connect_s: Annotated[float, Field(ge=0, le=10)] = 0.0  # some gateways drop the 1st request
    pause_between_requests_s: Annotated[float, Field(ge=0, le=10)] = 0.0  # serial gateways need a gap
    close_connection_after_poll: bool = False  # devices that accept one TCP session at a time
    max_registers_per_request: Annotated[int, Field(ge=1, le=125)] | None = None  # devices below the spec


class ControllerConfig(Strict):
    """A Modbus TCP endpoint. Several units behind one endpoint (a gateway) are polled one at a time."""

    id: Ident
    protocol: Literal["modbus_tcp"] = "modbus_tcp"
    host: str
    port: int = Field(default=502, ge=1, le=65535)
    poll_interval_s: Annotated[float, Field(gt=0, le=3600)] = 5.0
    timeout_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    comm_loss_after: Annotated[int, Field(ge=1, le=100)] = 3  # missed polls before values turn comm_loss
    reconnect_max_s: Annotated[float, Field(gt=0, le=60)] = 10.0  # backoff ceiling (pymodbus default: 300 s)
    workarounds: Workarounds = Field(default_factory=Workarounds)
    # Telemetry unit (RTU) powered at this station: its battery carries it through that station's outage.
    powered_by: Ident | None = None
    units: list[ModbusUnit] = Field(min_length=1)

    @model_validator(mode="after")
    def _units(self) -> ControllerConfig:
        ids = [u.unit_id for u in self.units]
        if len(set(ids)) != len(ids):
            raise ValueError("unit_id values must be unique within a controller")
        worst = sum(u.timeout_s or self.timeout_s for u in self.units)
        if worst >= self.poll_interval_s * 4:
            raise ValueError(
                f"timeouts of all units add up to {worst:g} s, too long for poll_interval_s "
                f"{self.poll_interval_s:g}: one dead unit would stall the gateway's cycle"
            )
        return self

    @property
    def expected_interval_s(self) -> float:
        return self.poll_interval_s


class MqttStation(Strict):
    station: Ident
    map: Ident  # a metric map: the station's points and their names on the wire
    device_id: str | None = None  # Sparkplug: the device under the edge node (None: node-level metrics)


class MqttJsonController(Strict):
    """Plain JSON over MQTT: `{topic_prefix}/{station}/{point}` with {"v", "ts", "q"}, or
    `{topic_prefix}/{station}` with {"ts", "values": {point: v}}; `{topic_prefix}/{station}/status` is
    "online"/"offline" (retained, the device's MQTT will)."""

    id: Ident
    protocol: Literal["mqtt_json"]
    topic_prefix: Annotated[str, Field(pattern=r"^[^#+]+[^/#+]$")] = "scada/v1"
    expected_interval_s: Annotated[float, Field(gt=0, le=86400)] = 10.0  # silence beyond → stale
    stations: list[MqttStation] = Field(min_length=1)


class SparkplugController(Strict):
    """A Sparkplug B edge node: spBv1.0/{group_id}/{N|D}{BIRTH|DATA|DEATH}/{edge_node_id}[/{device_id}]."""

    id: Ident
    protocol: Literal["sparkplug_b"]
    group_id: Annotated[str, Field(pattern=r"^[^/#+]+$")]
    edge_node_id: Annotated[str, Field(pattern=r"^[^/#+]+$")]
    expected_interval_s: Annotated[float, Field(gt=0, le=86400)] = 10.0  # silence beyond → stale
    reorder_timeout_s: Annotated[float, Field(ge=0, le=60)] = 2.0  # wait this long for a missing seq
    # Ask the edge node for a rebirth (NCMD "Node Control/Rebirth") after a seq gap or a reconnect. It is
    # a Sparkplug protocol request to the node, never a write to a process value; false: publish no NCMD
    # at all (values stay stale until the node sends a birth on its own).
    rebirth_requests: bool = True
    stations: list[MqttStation] = Field(min_length=1)

    @model_validator(mode="after")
    def _devices(self) -> SparkplugController:
        ids = [s.device_id for s in self.stations]
        if len(set(ids)) != len(ids):
            raise ValueError("device_id values must be unique within an edge node")
        return self


PROTOCOLS = ("modbus_tcp", "mqtt_json", "sparkplug_b")


def _protocol(v: object) -> str | None:
    return v.get("protocol", "modbus_tcp") if isinstance(v, dict) else getattr(v, "protocol", None)


AnyController = Annotated[
    Annotated[ControllerConfig, Tag("modbus_tcp")]
    | Annotated[MqttJsonController, Tag("mqtt_json")]
    | Annotated[SparkplugController, Tag("sparkplug_b")],
    Discriminator(
        _protocol,
        custom_error_type="protocol",
        custom_error_message=f"protocol must be one of {', '.join(PROTOCOLS)}",
    ),
]


class ControllersFile(Strict):
    controllers: list[AnyController] = Field(default_factory=list)


# --- MQTT metric maps ----------------------------------------------------------------------------------


class MetricSpec(Strict):
    name: PointName
    metric: str | None = None  # the name on the wire (Sparkplug metric name); default: `name`
    type: Literal["bool", "int", "float"] = "float"
    unit: str | None = None
    kind: Literal["analog", "state", "counter"] | None = None
    valid_min: float | None = None
    valid_max: float | None = None
    description: str | None = None

    @property
    def wire_name(self) -> str:
        return self.metric or self.name

    @property
    def is_state(self) -> bool:
        return self.type == "bool"

    @property
    def point_kind(self) -> str:
        return self.kind or ("state" if self.is_state else "analog")


class MetricMap(Strict):
    name: Ident
    description: str = ""
    metrics: list[MetricSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> MetricMap:
        for attr in ("name", "wire_name"):
            seen: set[str] = set()
            for i, m in enumerate(self.metrics):
                key = getattr(m, attr)
                if key in seen:
                    raise ValueError(f"metrics[{i}] {attr} {key!r} is used twice")
                seen.add(key)
        return self


class MqttTls(Strict):
    """TLS to the broker (port 8883): the CA that signed the broker's certificate, and this client's own
    certificate and key when the broker asks for one (per-device or per-collector credentials)."""

    ca: Path | None = None  # None: the system's trusted CAs
    cert: Path | None = None
    key: Path | None = None


class MqttBroker(Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    client_id: str = "pumpwatch-collector"
    keepalive_s: Annotated[int, Field(ge=5, le=3600)] = 30
    username: str | None = None
    password: str | None = None
    reconnect_max_s: Annotated[float, Field(gt=0, le=60)] = 10.0
    sparkplug_host_id: str = "pumpwatch"
    tls: MqttTls | None = None  # None: plain MQTT (loopback or a private network only)


# --- the fleet file ------------------------------------------------------------------------------------


class FleetFile(Strict):
    """`fleet.yaml`: names the other files, relative to its own folder."""

    name: str
    tenants: list[str]
    stations: list[str]
    controllers: list[str]
    register_maps: list[str]
    metric_maps: list[str] = Field(default_factory=list)
    mqtt: MqttBroker | None = None  # the broker MQTT controllers publish to
    alarm_rules: str | None = None
    # the safety functions every station kind must have armed; default: safety.yaml beside alarm_rules
    safety_functions: str | None = None
    oncall: str | None = None  # on-call rosters, escalation and routing (alarms/notify)
    resources: str | None = None  # portable generators and vacuum trucks per tenant (core/resources.py)
    stale_factor: Annotated[float, Field(ge=1.5, le=20)] = 3.0  # value is stale after factor × poll interval

    @field_validator("tenants", "stations", "controllers", "register_maps", "metric_maps", mode="before")
    @classmethod
    def _listify(cls, v: object) -> object:
        return [v] if isinstance(v, str) else v
