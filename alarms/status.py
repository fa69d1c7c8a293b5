"""One definition of a station's status, and of the quality each of its values is shown with.

Every view of a station takes it from here: GET /api/v1/stations and /stations/{id}
(api/routes/stations.py), the overview (api/routes/overview.py), the live stream (api/streamhub.py, through
`build_station`) and so the console, which shows the server's word and colour and keeps no copy of these
rules. Pure functions over typed inputs: samples, the station's open alarms, out of service, a clock
reading.

The status is the first of these that holds (the ladder):

    maintenance    the station is out of service (an engineer said so; its alarms are hidden)
    power_failure  a power-failure alarm is active and not suppressed
    comm_loss      a comm-loss alarm is active and not suppressed
    alarm          any other alarm is active and not suppressed
    stale          no measured value is live (every one is old, stale, lost or bad)
    no_data        no measured point has a sample (not even a comm-loss marker)
    normal

Why this order:
- maintenance first: the station was taken out of the operator's hands on purpose; every other word
  would call for an action nobody should take.
- power_failure above comm_loss: a station without mains loses its link when the RTU's battery runs out,
  and the comm-loss alarm is then suppressed by design; the cause is what the operator acts on (a
  generator, the time to overflow), so a suppressed comm loss never changes the status.
- comm_loss above alarm: with the link gone, no other alarm can come; that is the bigger news.
- every alarm above stale: an alarm holds its state while its input is not good (the evaluator neither
  raises nor clears on such data), so it is still the last thing known to be true and still needs a
  person; greying the station out would hide it. The values themselves show `stale` with their age, and
  `live` says whether anything of the station is current.
- stale and no_data exclude each other: `stale` has samples but nothing current, `no_data` has none
  (not yet commissioned, or nothing came since the start).

`comm_loss` comes from the comm-loss *alarm* only, never from a value's quality: a point that a device
stopped publishing after a recovery is stale on its own (shown `stale` with its age), not the whole
station. Suppressed alarms never count (their cause is active and counts instead); shelving does not
change the status (a shelved alarm is still true of the station: shelving takes it off the list and the
phone, alarms/hidden.py, not off the map).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, cast, get_args

from pumpwatch.alarms.rules import StationRule
from pumpwatch.core.sample import Quality, Sample

# in ladder order: the first that holds wins (the console orders its counts by LADDER, sent in the stream)
# what a value is shown with: a sample's quality label, or stale (old) / no_data (never read); a test keeps
# it the same as `Quality`'s labels
ShownQuality = Literal["good", "stale", "comm_loss", "bad_value", "sensor_fault", "not_available", "no_data"]
Status = Literal["maintenance", "power_failure", "comm_loss", "alarm", "stale", "no_data", "normal"]
LADDER: tuple[Status, ...] = get_args(Status)
# the canonical point a power-failure rule reads (register maps map a device's own bit onto it)
MAINS_POINT = "mains_failed"


@dataclass(frozen=True, slots=True)
class AlarmRoles:
    """Which of a station's alarm names mean a power failure and a comm loss."""

    power_failure: frozenset[str] = frozenset({"power_failure"})
    comm_loss: frozenset[str] = frozenset({"comm_loss"})

    @classmethod
    def of(cls, rules: Iterable[StationRule]) -> AlarmRoles:
        """From a station's rules: a rule on `mains_failed` is a power failure, a `comm_loss` rule a comm
        loss; the default names count as well (an alarm still open from before a rule change)."""
        rules = list(rules)
        base = cls()
        return cls(
            base.power_failure | {r.name for r in rules if r.point == MAINS_POINT},
            base.comm_loss | {r.name for r in rules if r.type == "comm_loss"},
        )


DEFAULT_ROLES = AlarmRoles()


@dataclass(frozen=True, slots=True)
class OpenAlarm:
    """What the status needs of one open alarm."""

    name: str
    active: bool
    suppressed_by: str | None = None

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> OpenAlarm:
        """From an `alarm` row (or the alarm engine's view of one)."""
        return cls(row["name"], bool(row["active"]), row.get("suppressed_by"))


def station_status(
    *, out_of_service: bool, active: Collection[str], live: bool, sampled: bool, roles: AlarmRoles
) -> Status:
    """The ladder. `active`: names of the station's active, unsuppressed alarms; `live`: at least one
    measured value is live; `sampled`: at least one measured point has a sample (even one that only
    says it was lost)."""
    if out_of_service:
        return "maintenance"
    if not roles.power_failure.isdisjoint(active):
        return "power_failure"
    if not roles.comm_loss.isdisjoint(active):
        return "comm_loss"
    if active:
        return "alarm"
    if not sampled:
        return "no_data"
    if not live:
        return "stale"
    return "normal"


# Qualities a source writes *about* a value it no longer has, at the time it noticed: not readings.
_MARKERS = frozenset({Quality.COMM_LOSS, Quality.STALE})


def live_since(now: datetime, stale_after_s: float | None) -> datetime | None:
    """A good value observed at or after this is live; None: none is (no source expected to refresh it)."""
    return now - timedelta(seconds=stale_after_s) if stale_after_s is not None else None


def heard_at(samples: Mapping[str, Sample], measured: Iterable[str]) -> datetime | None:
    """When the station's source last brought a reading (good or not) of a measured point; a comm-loss
    or stale marker is no reading (None: never)."""
    newest = None
    for name in measured:
        s = samples.get(name)
        if s is None or s.quality in _MARKERS:
            continue
        if newest is None or s.observed_at > newest:
            newest = s.observed_at
    return newest


def shown_quality(
    s: Sample | None, now: datetime, stale_after_s: float | None, heard: datetime | None
) -> tuple[ShownQuality, float | None]:
    """(quality label, age in s) a value is shown with. Never live when old: a good value older than
    its station's `stale_after_s` (None: no source expected to refresh it) is `stale`. A comm-loss value
    whose source has brought readings since (`heard`, from `heard_at`) is `stale`: the link is back but
    this point was not among what came, so it is old, not lost."""
    if s is None:
        return "no_data", None
    age = max(0.0, (now - s.observed_at).total_seconds())
    if s.quality is Quality.GOOD:
        since = live_since(now, stale_after_s)
        return ("good" if since is not None and s.observed_at >= since else "stale"), age
    if s.quality is Quality.COMM_LOSS and heard is not None and heard > s.observed_at:
        return "stale", age
    return cast("ShownQuality", s.quality.label), age  # (every Quality's label is a ShownQuality)


@dataclass(frozen=True, slots=True)
class StationState:
    status: Status
    active_alarms: list[str]  # active and not suppressed, sorted
    suppressed_alarms: list[str]  # active but suppressed by design, sorted
    live: bool  # at least one measured value is live
    heard_at: datetime | None  # the newest reading of a measured point (`heard_at`)
    data_age_s: float | None  # its age (rounded to ms): how old the newest data is, markers aside
    # measured point -> (quality, age s); {} unless with_shown
    shown: dict[str, tuple[ShownQuality, float | None]]


def assess(
    *,
    measured: Collection[str],
    samples: Mapping[str, Sample],
    alarms: Iterable[OpenAlarm],
    out_of_service: bool,
    now: datetime,
    stale_after_s: float | None,
    roles: AlarmRoles = DEFAULT_ROLES,
    with_shown: bool = True,
) -> StationState:
    """A station's status and (`with_shown`) the shown quality of its measured points (`measured`: the
    points read from its devices; values our analyzers derive say nothing about the station's link).
    One pass over the samples: the overview runs it for 10,000 stations a second."""
    since = live_since(now, stale_after_s)
    heard: datetime | None = None
    sampled = live = False
    for name in measured:
        sm = samples.get(name)
        if sm is None:
            continue
        sampled = True
        q = sm.quality
        if q is Quality.GOOD and since is not None and sm.observed_at >= since:
            live = True  # as shown_quality: "good"
        if q not in _MARKERS and (heard is None or sm.observed_at > heard):
            heard = sm.observed_at  # as heard_at
    shown = (
        {n: shown_quality(samples.get(n), now, stale_after_s, heard) for n in measured} if with_shown else {}
    )
    active: set[str] = set()
    suppressed: set[str] = set()
    for a in alarms:
        if a.active:
            (suppressed if a.suppressed_by is not None else active).add(a.name)
    suppressed -= active  # one name, one occurrence; should two ever disagree, the unsuppressed one counts
    status = station_status(
        out_of_service=out_of_service, active=active, live=live, sampled=sampled, roles=roles
    )
    return StationState(
        status=status,
        active_alarms=sorted(active),
        suppressed_alarms=sorted(suppressed),
        live=live,
        heard_at=heard,
        data_age_s=round(max(0.0, (now - heard).total_seconds()), 3) if heard is not None else None,
        shown=shown,
    )
