"""API schemas. Timestamps are ISO 8601 with an explicit offset."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from pumpwatch.alarms.status import ShownQuality, Status
from pumpwatch.api import inputs
from pumpwatch.api.inputs import RequestModel, Timestamp

IsoTime = Annotated[datetime, PlainSerializer(lambda d: d.isoformat(), return_type=str)]
# Row ids are 32-bit integers in the database: a bigger one is a 422, not a database error (in a path
# or a query).
RowId = Annotated[inputs.RowId, Field(description="row id")]
QualityLabel = ShownQuality  # alarms/status.py
StationStatus = Status  # the ladder and what each word means: alarms/status.py


class PointValue(BaseModel):
    value: float | bool | None
    unit: str | None
    quality: QualityLabel
    observed_at: IsoTime | None
    age_s: float | None


class LocationPublic(BaseModel):
    lat: float
    lon: float


class CoverageRulePublic(BaseModel):
    rule: str
    armed: bool
    points: list[str]  # the station's points it reads (for a derived point: those it is computed from)
    via: str | None = None  # the derived point it reads (time to overflow, fails to run, …)
    sources: list[str] = []  # comm-loss rules: the controllers whose silence it watches
    why: str | None = None  # not armed: why


class CoverageFunctionPublic(BaseModel):
    function: str
    title: str
    pump: int | None  # per-pump functions: the pump's number (1: the first)
    state: Literal["armed", "waived", "unarmed"]
    rules: list[CoverageRulePublic]  # every rule that can arm it
    why: str | None = None  # not armed (waived or unarmed): why
    waiver_reason: str | None = None  # waived: the engineer's written reason


class CoverageDroppedPublic(BaseModel):
    rule: str
    point: str | None
    why: str


class CoveragePublic(BaseModel):
    """Which safety functions of its kind (rules/safety.yaml) the station has armed, and by what."""

    functions: list[CoverageFunctionPublic]
    rules_not_applied: list[CoverageDroppedPublic]  # rules of its kind not evaluated at this station


class MapTilesPublic(BaseModel):
    url: str  # a URL template with {z}, {x}, {y}
    attribution: str


class MapConfigPublic(BaseModel):
    tiles: MapTilesPublic | None  # None: the schematic without tiles


class StationPublic(BaseModel):
    id: str
    tenant: str
    name: str
    kind: str
    power_area: str | None
    location: LocationPublic | None
    discharges_to: str | None = None  # the station its water goes to next (station config)
    status: StationStatus  # alarms/status.py: the one definition
    active_alarms: list[str]  # active and not suppressed (shelved ones included): these set the status
    suppressed_alarms: list[str]  # active but suppressed by design: listed apart, no say in the status
    live: bool  # at least one measured value is current (good and younger than stale_after_s)
    out_of_service: bool
    heard_at: IsoTime | None  # the newest reading from the station's source (comm-loss markers aside)
    data_age_s: float | None  # its age: how old the newest data is
    stale_after_s: float | None  # a value older than this is shown as stale
    values: dict[str, PointValue]
    levels: dict[str, float] | None = None  # wet-well levels (m above the floor): lwl_m … spill_m
    coverage: CoveragePublic | None = None  # one station only (GET /stations/{id}): its safety coverage


class StationFieldsPublic(BaseModel):
    """A station with only the fields asked for (GET /stations?fields=…): any of StationPublic's."""

    model_config = ConfigDict(extra="forbid")
    id: str
    tenant: str | None = None
    name: str | None = None
    kind: str | None = None
    power_area: str | None = None
    location: LocationPublic | None = None
    status: StationStatus | None = None
    active_alarms: list[str] | None = None
    suppressed_alarms: list[str] | None = None
    live: bool | None = None
    out_of_service: bool | None = None
    heard_at: IsoTime | None = None
    data_age_s: float | None = None
    stale_after_s: float | None = None
    values: dict[str, PointValue] | None = None
    levels: dict[str, float] | None = None


class StationsPublic(BaseModel):
    """One page of stations, in id order."""

    data: list[StationPublic | StationFieldsPublic]
    count: int  # stations on this page
    total: int | None = None  # stations that match, on every page
    next_cursor: str | None = None  # pass as `cursor` for the next page; null: this is the last
    at: IsoTime


class PumpAsset(BaseModel):
    name: str
    rated_flow_m3_min: float | None
    rated_current_a: float
    power_kw: float | None
    install_year: int | None
    age_years: int | None  # this year − install year, in the tenant's time zone
    standard_life_years: int  # the standard service life asset plans compare it with
    life_used: float | None  # age / standard life (1.0: due for renewal)
    standby: bool
    drive: str
    running: PointValue | None
    faulted: PointValue | None
    current_a: PointValue | None
    run_hours_h: PointValue | None
    starts: PointValue | None


class PointInfo(BaseModel):
    name: str
    unit: str | None
    state: bool
    derived: bool = False  # computed by the analyzers (time to overflow, inflow, …)


class StationDetailPublic(BaseModel):
    station: StationPublic
    address: str | None
    wet_well: dict[str, float] | None
    pumps: list[PumpAsset]
    points: list[PointInfo]  # what its trends can show
    incidents: list[IncidentPublic]


class TenantPublic(BaseModel):
    id: str
    name: str
    timezone: str


class TenantsPublic(BaseModel):
    data: list[TenantPublic]
    count: int


class HistoryPointPublic(BaseModel):
    t: IsoTime
    value: float | None
    min: float | None
    max: float | None
    count: int
    good: int


class HistoryPublic(BaseModel):
    station: str
    point: str
    unit: str | None
    start: IsoTime
    end: IsoTime
    downsampled: bool
    data: list[HistoryPointPublic]


AlarmState = Literal["unacked_active", "acked_active", "unacked_rtn", "normal"]
Priority = Literal["critical", "high", "medium", "low"]


class AlarmPublic(BaseModel):
    id: int
    tenant: str
    station: str
    name: str
    priority: str
    message: str
    state: AlarmState
    active: bool
    latched: bool
    hidden: bool  # shelved, suppressed by design or out of service: not on the operator's list
    raised_at: IsoTime
    last_raised_at: IsoTime | None
    raise_count: int
    cleared_at: IsoTime | None
    value: float | None
    acked_at: IsoTime | None
    acked_by: str | None
    shelve_kind: str | None
    shelved_until: IsoTime | None
    shelved_by: str | None
    shelve_reason: str | None
    suppressed_by: str | None
    out_of_service: bool
    incident_id: int | None
    # the rule's input is not good (stale, comm_loss, bad_value, ...) since then: the alarm holds its state
    input_not_good_since: IsoTime | None = None
    input_quality: str | None = None
    drill_id: int | None = None  # raised during this drill (not a real event)


class AlarmsPublic(BaseModel):
    data: list[AlarmPublic]
    count: int  # alarms on this page
    next_cursor: str | None = None  # pass as `cursor` for the next page; null: this is the last


class AckRequest(RequestModel):
    comment: str | None = Field(default=None, max_length=1000)


class ShelveRequest(RequestModel):
    kind: Literal["timed", "oneshot"] = "timed"
    minutes: float = Field(gt=0, description="timed: for how long; oneshot: the longest it may last")
    reason: str = Field(min_length=1, max_length=1000)


class UnshelveRequest(RequestModel):
    reason: str | None = Field(default=None, max_length=1000)


class OutOfServiceRequest(RequestModel):
    reason: str = Field(min_length=1, max_length=1000)
    until: Timestamp | None = None


class JournalEntryPublic(BaseModel):
    id: int
    alarm_id: int
    tenant: str
    station: str
    name: str
    at: IsoTime
    kind: str
    state: str | None
    actor: str | None
    detail: str | None
    value: float | None
    drill_id: int | None = None  # the alarm was raised during this drill


class JournalPublic(BaseModel):
    data: list[JournalEntryPublic]
    count: int


class IncidentStationPublic(BaseModel):
    station_id: str
    joined_at: IsoTime
    restored_at: IsoTime | None


class IncidentNotePublic(BaseModel):
    at: IsoTime
    phase: str
    actor: str | None
    text: str


class IncidentPublic(BaseModel):
    id: int
    tenant: str
    kind: str
    power_area: str | None
    title: str
    phase: Literal["report", "first_response", "restoration", "cause", "prevention", "closed"]
    opened_at: IsoTime
    first_response_at: IsoTime | None
    restored_at: IsoTime | None
    closed_at: IsoTime | None
    station_count: int
    stations_out: int
    stations: list[IncidentStationPublic] | None = None
    notes: list[IncidentNotePublic] | None = None
    alarm_ids: list[int] | None = None
    drill_id: int | None = None  # opened during this drill


class IncidentsPublic(BaseModel):
    data: list[IncidentPublic]
    count: int


class IncidentNoteCreate(RequestModel):
    text: str = Field(min_length=1, max_length=5000)
    phase: Literal["report", "first_response", "restoration", "cause", "prevention", "closed"] | None = None


class AssignedResource(BaseModel):
    assignment_id: int
    resource: str
    kind: str  # generator | vacuum_truck
    name: str
    capacity: str  # "25 kVA", "4 m³"
    state: str  # dispatched | on_site | running
    assigned_at: IsoTime
    assigned_by: str | None
    eta_at: IsoTime
    arrives_in_min: float  # 0 once on site
    late: bool  # arrives after the estimated spill


class DispatchEntry(BaseModel):
    rank: int
    station: str
    tenant: str
    name: str
    power_area: str | None
    location: LocationPublic | None
    reasons: list[str]  # the active alarms that put it on the board
    priority: str
    level_m: float | None
    tto_spill_min: float | None  # best estimate of minutes to overflow
    tto_spill_conservative_min: float | None  # with the usable-storage haircut: plan on this one
    spill_at: IsoTime | None
    inflow_m3_min: float | None
    incident_id: int | None
    # mobile resources sent here, and whether each arrives before the estimated spill (`late`: it does not)
    resources: list[AssignedResource] = Field(default_factory=list)
    late: bool = False  # no resource sent here arrives before the spill (None sent: False)


class DispatchPublic(BaseModel):
    at: IsoTime
    data: list[DispatchEntry]
    count: int


class BadActor(BaseModel):
    station: str
    name: str
    count: int


class KpisPublic(BaseModel):
    tenant: str
    start: IsoTime
    end: IsoTime
    alarms: int
    per_10min_avg: float
    per_10min_max: int
    flood_share: float  # share of 10-minute periods with more than 10 alarms (ISA-18.2 flood)
    chattering: int  # alarms raised 3 or more times within 60 s
    stale: int  # alarms active for more than 24 h at the end of the range
    top_bad_actors: list[BadActor]
    priority_mix: dict[str, int]
    period_s: int = 600  # the periods of `per_10min`
    flood_threshold: int = 10  # more alarms than this in one period is a flood (ISA-18.2)
    per_10min: list[int] = []  # alarms raised in each period from `start`, oldest first
    chattering_alarms: list[BadActor] = []  # the chattering ones, most raises first


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, bool] = {}
    detail: dict[str, Any] | None = None  # e.g. the historian's spool when it is delayed


# --- accounts -------------------------------------------------------------------------------------------

RoleName = Literal["viewer", "operator", "trainer", "engineer", "admin"]


class LoginRequest(RequestModel):
    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=1024)
    # the second factor in the same request (scripts); the console sends it to /auth/mfa/verify instead
    otp: str | None = Field(default=None, min_length=1, max_length=64)


class GrantPublic(RequestModel):
    tenant: str
    role: RoleName


class UserPublic(BaseModel):
    username: str
    display_name: str | None
    locale: str
    grants: list[GrantPublic]


class MfaPublic(BaseModel):
    """The second factor of this session. `step`: what is left to do before `withheld` grants apply:
    "verify" (give a code), "enrol" (set one up), or null (nothing)."""

    step: Literal["verify", "enrol"] | None
    enrolled: bool
    second_factor: Literal["totp", "recovery"] | None
    exempt: Literal["demo"] | None = Field(description="demo users in `pumpwatch demo` need no second factor")
    withheld: list[GrantPublic]


class MePublic(UserPublic):
    expires_at: IsoTime | None = None  # when this session ends unless renewed by activity
    mfa: MfaPublic | None = None


class LoginPublic(BaseModel):
    token: str
    expires_at: IsoTime
    user: UserPublic
    mfa: MfaPublic


class PasswordChange(RequestModel):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=10, max_length=1024)


class Detail(BaseModel):
    detail: str


class UserAdminPublic(UserPublic):
    disabled: bool
    demo: bool
    locked_until: IsoTime | None = Field(default=None, description="sign-in backs off until then")
    mfa_enrolled: bool = False


class UsersPublic(BaseModel):
    data: list[UserAdminPublic]
    count: int


class UserCreate(RequestModel):
    username: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")
    password: str = Field(min_length=10, max_length=1024)
    display_name: str | None = Field(default=None, max_length=200)
    locale: str = Field(default="ja", max_length=20)
    grants: list[GrantPublic] = Field(min_length=1)


class GrantSet(RequestModel):
    role: RoleName


class AuditEntryPublic(BaseModel):
    id: int
    at: IsoTime
    username: str | None
    tenant: str | None
    source_ip: str | None
    action: str
    target: str | None
    old_value: str | None
    new_value: str | None
    result: str
    detail: str | None


class AuditPublic(BaseModel):
    data: list[AuditEntryPublic]
    count: int


class WriteRequest(RequestModel):
    value: float = Field(description="in the point's unit (coils: 0 or 1)")


class WriteConfirmationPublic(BaseModel):
    confirmation: str  # send it back with the same value within 60 s to do the write
    expires_at: IsoTime
    station: str
    point: str
    value: float


class WriteConfirm(RequestModel):
    value: float
    confirmation: str = Field(min_length=1, max_length=200)


class WriteResultPublic(BaseModel):
    station: str
    point: str
    written: float
    read_back: float
    at: IsoTime


# --- the system (the monitoring centre's) -------------------------------------------------------------

SystemPart = Literal["history", "collection", "notification", "input", "other"]


class SystemAlarmPublic(BaseModel):
    id: int | None  # None: held by this process's monitor, not (yet) in the journal
    station: str  # a pseudo-station: system:historian, system:collector, system:shard-2, system:notifier
    name: (
        str  # historian_setup_incomplete | historian_lagging | spool_high | shard_dead | notifier_stopped | …
    )
    part: SystemPart
    priority: str
    message: str
    since: IsoTime | str | None
    state: str | None = None


class SystemBannerPublic(BaseModel):
    """What the console's banner says. The centre's staff get the alarms; anyone else only which parts of
    the system are degraded (no detail that could belong to another municipality)."""

    degraded: bool
    centre: bool  # the caller is staff of the monitoring centre
    parts: list[SystemPart]
    alarms: list[SystemAlarmPublic]


class RejectionCountPublic(BaseModel):
    source: str
    reason: str
    count: int  # every rejection ever
    dropped: int  # of them, dead letters not kept (the bound, or lost while the database was away)
    first_at: IsoTime
    last_at: IsoTime


class DeadLetterPublic(BaseModel):
    id: int
    source: str
    topic: str
    reason: str
    detail: str
    payload_excerpt: str  # bounded; values of secret-named keys replaced by ***
    payload_bytes: int
    at: IsoTime


class DeadLettersPublic(BaseModel):
    data: list[DeadLetterPublic]
    count: int
    next_before_id: int | None  # pass as before_id for the next (older) page
    keep_per_source: int | None  # the bound (None: no collector in this process to say)
    totals: list[RejectionCountPublic]


# --- drills (issue 18) ------------------------------------------------------------------------------------


class DrillStart(RequestModel):
    scenario: str = Field(min_length=1, max_length=200_000, description="the scenario file (YAML)")


class DrillPublic(BaseModel):
    id: int
    tenant: str
    name: str
    title: str
    notify: str
    contacts: list[str]
    started_at: IsoTime
    started_by: str | None
    ends_at: IsoTime
    stopped_at: IsoTime | None
    stopped_by: str | None
    outcome: str | None
    running: bool


class DrillsPublic(BaseModel):
    data: list[DrillPublic]
    count: int


class DrillProblems(BaseModel):
    detail: str
    problems: list[str]


class DrillReportPublic(BaseModel):
    drill: DrillPublic
    timeline: list[dict[str, Any]]  # start, faults, simulated spills, stop (drill_event)
    alarms: list[dict[str, Any]]  # raised when, acknowledged by whom and after how long
    incidents: list[dict[str, Any]]
    dispatch: list[dict[str, Any]]  # each assignment: who, when, arrival against the station's spill
    spills: list[dict[str, Any]]  # each simulated spill, and whether a resource was there before it
    summary: dict[str, Any]


# --- mobile resources (issue 18 part 5) -----------------------------------------------------------------


class ResourcePublic(BaseModel):
    id: str
    tenant: str
    kind: str
    name: str
    capacity: str
    kva: float | None
    m3: float | None
    base: str
    base_name: str
    position: LocationPublic | None  # last known position, or the base's
    assignment: AssignedResource | None  # where it is sent now
    station: str | None  # the station of that assignment


class ResourcesPublic(BaseModel):
    data: list[ResourcePublic]
    count: int


class AssignRequest(RequestModel):
    station: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class AssignmentState(RequestModel):
    state: Literal["on_site", "running", "returned"]


class AssignmentPublic(BaseModel):
    id: int
    resource: str
    station: str
    state: str
    eta_at: IsoTime | None = None
    travel_s: float | None = None
    estimate: str | None = None  # how the travel time was estimated
