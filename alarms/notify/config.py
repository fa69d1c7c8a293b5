"""On-call configuration as data (`oncall.yaml`, named by `fleet.yaml`): people and their contacts, channels,
weekly rotations with hand-overs and overrides, escalation policies and the routing tree per tenant.

Validated at start like the fleet (`file:line key: why`). The rule that matters most is checked here, not at
3 a.m.: every route of a tenant ends at an accountable person of that municipality. A policy whose first
step reaches only a contractor, or whose final fallback is not a municipal person, is refused (the Kani City
underpass: the pump panel called only the maintenance company, and the city never heard).

The system alarms (a degraded historian, spool, shard, notifier; rejected input) belong to the monitoring
centre, a tenant with `centre: true`: a fleet with on-call but no centre is refused, and, like every
tenant, the centre must be routed to its own staff. Their routes match `station_kind: [system]` and
`station: [system:…]` (alarms/system_monitor.py).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from pumpwatch.alarms.system_monitor import is_system
from pumpwatch.core.config import Fleet
from pumpwatch.core.config.loader import describe
from pumpwatch.core.config.yamlsrc import ConfigError, KeyPath, Located, load_yaml

Ident = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Priority = Literal["critical", "high", "medium", "low"]
WEEKDAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _expand_env(v: Any) -> Any:
    """`${NAME}` in a secret is taken from the environment, so secrets need not live in the file."""
    if isinstance(v, str):

        def sub(m: re.Match[str]) -> str:
            val = os.environ.get(m.group(1))
            if val is None:
                raise ValueError(f"environment variable {m.group(1)} is not set")
            return val

        return _ENV.sub(sub, v)
    return v


# --- channels --------------------------------------------------------------------------------------------


class EmailChannel(Strict):
    type: Literal["email"]
    host: str
    port: int = Field(default=25, ge=1, le=65535)
    from_addr: str = Field(alias="from")
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = False  # upgrade with STARTTLS
    tls: bool = False  # implicit TLS (port 465)
    timeout_s: float = Field(default=10, gt=0)

    _env = field_validator("password", mode="before")(_expand_env)


class WebhookChannel(Strict):
    type: Literal["webhook"]
    url: SecretStr  # may carry a token in its path
    secret: SecretStr  # HMAC-SHA256 key for the X-Pumpwatch-Signature header
    timeout_s: float = Field(default=10, gt=0)

    _env = field_validator("url", "secret", mode="before")(_expand_env)


class AppriseChannel(Strict):
    """Chat and push through Apprise; a person's `to` is an Apprise URL (a secret: it carries tokens)."""

    type: Literal["apprise"]
    timeout_s: float = Field(default=15, gt=0)


class SmsChannel(Strict):
    """An SMS / voice provider through its REST API, in the shape of Twilio's (`{base_url}/2010-04-01/
    Accounts/{account_sid}/Messages.json`, or `Calls.json` for voice, basic auth sid:token)."""

    type: Literal["sms"]
    base_url: str = "https://api.twilio.com"
    account_sid: str
    auth_token: SecretStr
    from_number: str = Field(alias="from")
    mode: Literal["sms", "voice"] = "sms"
    timeout_s: float = Field(default=10, gt=0)

    _env = field_validator("auth_token", mode="before")(_expand_env)


class LogChannel(Strict):
    """Appends each message as a JSON line to a local file (the demo, or a last-resort record)."""

    type: Literal["log"]
    path: str = "var/notifications.jsonl"


ChannelConfig = Annotated[
    EmailChannel | WebhookChannel | AppriseChannel | SmsChannel | LogChannel, Field(discriminator="type")
]

# --- people, rotations, policies, routes -----------------------------------------------------------------


class Contact(Strict):
    channel: Ident
    to: SecretStr  # address, number, Apprise URL: never logged

    _env = field_validator("to", mode="before")(_expand_env)


class PersonConfig(Strict):
    id: Ident
    name: str
    tenant: Ident
    kind: Literal["staff", "contractor"] = "staff"  # staff: accountable for the municipality
    contacts: list[Contact] = Field(min_length=1)  # primary first, then fallbacks in order


class OverrideConfig(Strict):
    person: Ident
    start: datetime  # local time of the tenant unless it carries an offset
    end: datetime


class RotationConfig(Strict):
    id: Ident
    tenant: Ident
    members: list[Ident] = Field(min_length=1)
    handovers: list[str] = Field(default_factory=lambda: ["mon 09:00"], min_length=1)  # "mon 09:00"
    start: date  # the first hand-over of the week containing this date goes to members[0]
    overrides: list[OverrideConfig] = Field(default_factory=list)

    @field_validator("handovers")
    @classmethod
    def _handovers(cls, v: list[str]) -> list[str]:
        seen = set()
        for h in v:
            m = re.fullmatch(r"(mon|tue|wed|thu|fri|sat|sun) ([01]\d|2[0-3]):([0-5]\d)", h.strip().lower())
            if not m:
                raise ValueError(f"hand-over {h!r} must look like 'mon 09:00'")
            if h in seen:
                raise ValueError(f"hand-over {h!r} given twice")
            seen.add(h)
        return v


class Target(Strict):
    rotation: Ident | None = None  # whoever is on call in it when the step fires
    person: Ident | None = None

    def label(self) -> str:
        return f"rotation {self.rotation}" if self.rotation else f"person {self.person}"


class StepConfig(Strict):
    notify: list[Target] = Field(min_length=1)
    wait_min: float = Field(default=5, gt=0)  # before the next step, unless acknowledged


class PolicyConfig(Strict):
    id: Ident
    tenant: Ident
    steps: list[StepConfig] = Field(min_length=1)
    repeat: int = Field(default=0, ge=0, le=10)  # run the steps this many more times
    final: Ident  # the supervisor told when every step and repeat went unacknowledged


class MatchConfig(Strict):
    station_kind: list[str] | None = None
    priority: list[Priority] | None = None
    alarm: list[str] | None = None  # rule names, e.g. power_failure
    station: list[str] | None = None


class RouteConfig(Strict):
    match: MatchConfig = Field(default_factory=MatchConfig)
    policy: Ident | None = None  # None: the parent's
    mute: bool = False  # notify nobody (allowed only where no critical alarm can match)
    routes: list[RouteConfig] = Field(default_factory=list)


class TenantRouting(Strict):
    tenant: Ident
    policy: Ident  # the root catches every alarm of the tenant
    routes: list[RouteConfig] = Field(default_factory=list)


class RetryConfig(Strict):
    base_s: float = Field(default=5, gt=0)
    max_s: float = Field(default=300, gt=0)
    attempts_before_fallback: int = Field(default=3, ge=1)
    max_attempts: int = Field(default=10, ge=1)  # on the last contact of a person
    lease_s: float = Field(default=60, gt=0)  # a claimed row is retried by another replica after this


class HeartbeatConfig(Strict):
    url: SecretStr
    method: Literal["GET", "POST"] = "GET"
    interval_s: float = Field(default=60, gt=0)
    timeout_s: float = Field(default=10, gt=0)

    _env = field_validator("url", mode="before")(_expand_env)


class NotifierConfig(Strict):
    public_url: str = "http://127.0.0.1:8000"  # where the ack links point
    group_wait_s: float = Field(default=30, ge=0)  # the first message of a group waits this long
    group_interval_s: float = Field(default=300, gt=0)  # then at most one message per person per window
    link_ttl_h: float = Field(default=24, gt=0)
    summary_stations: int = Field(default=10, ge=1)  # stations listed by name in a summary
    retry: RetryConfig = Field(default_factory=RetryConfig)
    heartbeat: HeartbeatConfig | None = None


class OncallFile(Strict):
    notifier: NotifierConfig = Field(default_factory=NotifierConfig)
    channels: dict[Ident, ChannelConfig]
    people: list[PersonConfig] = Field(min_length=1)
    rotations: list[RotationConfig] = Field(default_factory=list)
    policies: list[PolicyConfig] = Field(min_length=1)
    routing: list[TenantRouting] = Field(min_length=1)


# --- the loaded configuration -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """A resolved route: where an alarm goes."""

    name: str  # e.g. "kita/1/0"
    policy: PolicyConfig | None  # None: muted


@dataclass
class Oncall:
    path: Path
    notifier: NotifierConfig
    channels: dict[str, Any]
    people: dict[str, PersonConfig]
    rotations: dict[str, RotationConfig]
    policies: dict[str, PolicyConfig]
    routing: dict[str, TenantRouting]
    zones: dict[str, ZoneInfo] = field(default_factory=dict)  # tenant -> time zone

    def route(self, tenant: str, station_kind: str, station: str, priority: str, alarm: str) -> Route:
        root = self.routing.get(tenant)
        if root is None:
            return Route(f"{tenant}/none", None)
        facts = {"station_kind": station_kind, "priority": priority, "alarm": alarm, "station": station}
        name, policy, mute = tenant, root.policy, False
        routes: list[RouteConfig] = root.routes
        while True:  # depth first: the first matching child wins, then its children
            for i, r in enumerate(routes):
                if _matches(r.match, facts):
                    name, policy, mute = f"{name}/{i}", r.policy or policy, r.mute
                    routes = r.routes
                    break
            else:
                break
        return Route(name, None if mute else self.policies[policy])

    def on_call(self, rotation_id: str, at: datetime) -> str:
        """The person on call in a rotation at `at` (overrides win)."""
        rot = self.rotations[rotation_id]
        tz = self.zones[rot.tenant]
        local = at.astimezone(tz)
        for o in rot.overrides:
            if _aware(o.start, tz) <= at < _aware(o.end, tz):
                return o.person
        return rot.members[shift_index(rot, local) % len(rot.members)]

    def next_change(self, rotation_id: str, at: datetime) -> tuple[datetime, str] | None:
        """When the person on call in a rotation next changes after `at`, and who takes over (the next
        weekly hand-over or an override's start or end, whichever comes first and names someone else);
        None if nobody else takes over within four weeks (a rotation of one)."""
        rot = self.rotations[rotation_id]
        tz = self.zones[rot.tenant]
        now_person = self.on_call(rotation_id, at)
        local = at.astimezone(tz)
        times: set[datetime] = set()
        for day in range(29):
            d = (local + timedelta(days=day)).date()
            for h in rot.handovers:
                wd, hm = _handover_key(h)
                if d.weekday() == wd:
                    times.add(datetime.combine(d, hm, tz))
        for o in rot.overrides:
            times.update((_aware(o.start, tz), _aware(o.end, tz)))
        for t in sorted(x for x in times if x > at):
            person = self.on_call(rotation_id, t)
            if person != now_person:
                return t, person
        return None

    def targets(self, t: Target, at: datetime) -> str:
        return self.on_call(t.rotation, at) if t.rotation else t.person  # type: ignore[return-value]  # one of two

    def roster(self, tenant: str, at: datetime) -> list[dict[str, Any]]:
        """Who is on call now in each rotation of a tenant, and who next from when."""
        out = []
        for rid, rot in self.rotations.items():
            if rot.tenant == tenant:
                pid = self.on_call(rid, at)
                row: dict[str, Any] = {"rotation": rid, "person": pid, "name": self.people[pid].name}
                nxt = self.next_change(rid, at)
                if nxt is not None:
                    row |= {
                        "next_at": nxt[0].astimezone(UTC),
                        "next_person": nxt[1],
                        "next_name": self.people[nxt[1]].name,
                    }
                out.append(row)
        return out


def _aware(t: datetime, tz: ZoneInfo) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=tz)


def _handover_key(h: str) -> tuple[int, time]:
    day, hm = h.strip().lower().split()
    hh, mm = hm.split(":")
    return WEEKDAYS[day], time(int(hh), int(mm))


def shift_index(rot: RotationConfig, local: datetime) -> int:
    """Number of hand-overs since the first one of the start week (wall-clock arithmetic in the tenant's
    zone, so a hand-over at 09:00 stays at 09:00)."""
    hs = sorted(_handover_key(h) for h in rot.handovers)
    week0 = rot.start - timedelta(days=rot.start.weekday())
    naive = local.replace(tzinfo=None)
    monday = naive.date() - timedelta(days=naive.weekday())
    weeks = (monday - week0).days // 7
    pos = (naive.weekday(), naive.time())
    idx = sum(1 for h in hs if h <= pos) - 1  # -1: before this week's first hand-over (last week's shift)
    return weeks * len(hs) + idx


def _matches(m: MatchConfig, facts: dict[str, str]) -> bool:
    for key in ("station_kind", "priority", "alarm", "station"):
        want = getattr(m, key)
        if want is not None and facts[key] not in want:
            return False
    return True


def _validate(located: Located, problems: list[str]) -> OncallFile | None:
    if not isinstance(located.data, dict):
        problems.append(f"{located.path}: expected a mapping with channels, people, policies, routing")
        return None
    try:
        return OncallFile.model_validate(located.data)
    except ValidationError as exc:
        for err in exc.errors():
            loc: KeyPath = tuple(
                p for p in err["loc"] if p not in ("email", "webhook", "apprise", "sms", "log")
            )
            loc = tuple("from" if p == "from_addr" or p == "from_number" else p for p in loc)
            problems.append(f"{located.where(loc)}: {describe(err)}")
        return None


def load_oncall(path: str | Path, fleet: Fleet) -> Oncall:
    """Load and check `oncall.yaml` against the fleet. Raises ConfigError listing every problem."""
    path = Path(path)
    located = load_yaml(path)
    problems: list[str] = []
    cfg = _validate(located, problems)
    if cfg is None:
        raise ConfigError(problems)
    w = located.where

    people: dict[str, PersonConfig] = {}
    for i, p in enumerate(cfg.people):
        if p.id in people:
            problems.append(f"{w(('people', i, 'id'))}: person {p.id!r} is defined twice")
        people[p.id] = p
        if p.tenant not in fleet.tenants:
            problems.append(f"{w(('people', i, 'tenant'))}: unknown tenant {p.tenant!r}")
        for j, c in enumerate(p.contacts):
            if c.channel not in cfg.channels:
                problems.append(
                    f"{w(('people', i, 'contacts', j, 'channel'))}: unknown channel {c.channel!r} "
                    f"(known: {', '.join(sorted(cfg.channels))})"
                )

    def person_ref(kp: KeyPath, pid: str, tenant: str) -> PersonConfig | None:
        p = people.get(pid)
        if p is None:
            problems.append(f"{w(kp)}: unknown person {pid!r}")
        elif p.tenant != tenant:
            problems.append(f"{w(kp)}: {p.name} ({pid}) belongs to tenant {p.tenant!r}, not {tenant!r}")
            return None
        return p

    rotations: dict[str, RotationConfig] = {}
    for i, r in enumerate(cfg.rotations):
        if r.id in rotations:
            problems.append(f"{w(('rotations', i, 'id'))}: rotation {r.id!r} is defined twice")
        rotations[r.id] = r
        if r.tenant not in fleet.tenants:
            problems.append(f"{w(('rotations', i, 'tenant'))}: unknown tenant {r.tenant!r}")
        for j, m in enumerate(r.members):
            person_ref(("rotations", i, "members", j), m, r.tenant)
        for j, o in enumerate(r.overrides):
            person_ref(("rotations", i, "overrides", j, "person"), o.person, r.tenant)
            if o.end <= o.start:
                problems.append(f"{w(('rotations', i, 'overrides', j, 'end'))}: ends before it starts")

    def accountable(t: Target) -> bool:
        """Reaches a municipal person whoever is on call."""
        if t.person:
            return t.person in people and people[t.person].kind == "staff"
        rot = rotations.get(t.rotation or "")
        return rot is not None and all(m in people and people[m].kind == "staff" for m in rot.members)

    policies: dict[str, PolicyConfig] = {}
    for i, pol in enumerate(cfg.policies):
        base: KeyPath = ("policies", i)
        if pol.id in policies:
            problems.append(f"{w((*base, 'id'))}: policy {pol.id!r} is defined twice")
        policies[pol.id] = pol
        for si, step in enumerate(pol.steps):
            for ti, t in enumerate(step.notify):
                kp = (*base, "steps", si, "notify", ti)
                if bool(t.rotation) == bool(t.person):
                    problems.append(f"{w(kp)}: give exactly one of rotation or person")
                elif t.person:
                    person_ref((*kp, "person"), t.person, pol.tenant)
                else:
                    rot = rotations.get(t.rotation)  # type: ignore[arg-type]  # not a person: a rotation
                    if rot is None:
                        problems.append(f"{w((*kp, 'rotation'))}: unknown rotation {t.rotation!r}")
                    elif rot.tenant != pol.tenant:
                        problems.append(
                            f"{w((*kp, 'rotation'))}: rotation {rot.id!r} belongs to tenant {rot.tenant!r}, "
                            f"not {pol.tenant!r}"
                        )
        final = person_ref((*base, "final"), pol.final, pol.tenant)
        if final is not None and final.kind != "staff":
            problems.append(
                f"{w((*base, 'final'))}: the final fallback {final.name} is a {final.kind}; it must be an "
                f"accountable person of {pol.tenant!r}"
            )
        if not any(accountable(t) for t in pol.steps[0].notify):
            problems.append(
                f"{w((*base, 'steps', 0, 'notify'))}: the first step reaches no accountable person of "
                f"{pol.tenant!r} (only contractors, or a rotation with contractors): the municipality "
                "must hear of the alarm at once, not only the vendor"
            )

    routing: dict[str, TenantRouting] = {}

    def check_route(kp: KeyPath, r: RouteConfig, tenant: str, parent_policy: str) -> None:
        pol = r.policy or parent_policy
        if r.policy is not None:
            check_policy((*kp, "policy"), r.policy, tenant)
        if r.mute and (r.match.priority is None or "critical" in r.match.priority):
            problems.append(
                f"{w((*kp, 'mute'))}: a muted route must match only non-critical priorities: every "
                "critical alarm must reach a person"
            )
        for s_i, sid in enumerate(r.match.station or []):
            st = fleet.stations.get(sid)
            if is_system(sid) and tenant == fleet.centre:
                continue
            if st is None or st.tenant != tenant:
                problems.append(
                    f"{w((*kp, 'match', 'station', s_i))}: no station {sid!r} in tenant {tenant!r}"
                )
        for ci, child in enumerate(r.routes):
            check_route((*kp, "routes", ci), child, tenant, pol)

    def check_policy(kp: KeyPath, pid: str, tenant: str) -> None:
        pol = policies.get(pid)
        if pol is None:
            problems.append(f"{w(kp)}: unknown policy {pid!r}")
        elif pol.tenant != tenant:
            problems.append(
                f"{w(kp)}: policy {pid!r} belongs to tenant {pol.tenant!r}: a route of {tenant!r} must "
                f"end at a person of {tenant!r}"
            )

    for i, tr in enumerate(cfg.routing):
        base = ("routing", i)
        if tr.tenant in routing:
            problems.append(f"{w((*base, 'tenant'))}: tenant {tr.tenant!r} is routed twice")
        if tr.tenant not in fleet.tenants:
            problems.append(f"{w((*base, 'tenant'))}: unknown tenant {tr.tenant!r}")
        routing[tr.tenant] = tr
        check_policy((*base, "policy"), tr.policy, tr.tenant)
        for ci, child in enumerate(tr.routes):
            check_route((*base, "routes", ci), child, tr.tenant, tr.policy)
    for tid in fleet.tenants:
        if tid not in routing:
            what = "the system alarms" if tid == fleet.centre else "its alarms"
            problems.append(f"{w(('routing',))}: tenant {tid!r} has no route: {what} would reach nobody")
    if fleet.centre is None:
        problems.append(
            f"{w(('routing',))}: no tenant is the monitoring centre (`centre: true` in tenants.yaml): the "
            "system alarms (historian, spool, collector shards, notifier, rejected input) would reach nobody"
        )
    if problems:
        raise ConfigError(problems)
    return Oncall(
        path=path,
        notifier=cfg.notifier,
        channels=dict(cfg.channels),
        people=people,
        rotations=rotations,
        policies=policies,
        routing=routing,
        zones={tid: ZoneInfo(t.timezone) for tid, t in fleet.tenants.items()},
    )
