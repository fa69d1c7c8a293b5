"""The alarm store: occurrences with their ISA-18.2 state, and the append-only journal.

Every transition is one SQL transaction that updates the `alarm` row and appends an `alarm_event` with
who, when and why, so the collector (conditions) and the API (operator actions) may run in different
processes and still agree. States (ISA-18.2 / IEC 62682):

    normal ──raise──▶ unacked_active ──ack──▶ acked_active ──clear──▶ normal (row closed)
                          │  ▲                    │
                        clear│ raise             clear (latching rule: stays, latched; `reset` ends it)
                          ▼  │
                      unacked_rtn ──ack──▶ normal (row closed)

Shelving (timed or one-shot, with a reason and a maximum), suppression by design (`suppressed_by` names
the alarm that explains this one) and out-of-service (per station) hide an alarm from the operator's
active list and from notification (the rule: alarms/hidden.py); they never stop evaluation or journaling.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict, cast

from sqlalchemy import Engine, and_, case, insert, or_, select, update
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection, Row

from pumpwatch.alarms.dispatch import PRIORITY_RANK, UNKNOWN_PRIORITY_RANK
from pumpwatch.alarms.hidden import hidden_clause
from pumpwatch.core import drills
from pumpwatch.core.audit import Audit, write_optional
from pumpwatch.core.db.schema import alarm, alarm_event, notify_pending, station_mode
from pumpwatch.core.db.types import to_utc

# Journal entries the on-call notifier acts on (alarms/notify): each gets a `notify_pending` row.
NOTIFY_KINDS = frozenset(
    {
        "raise",
        "clear",
        "ack",
        "reset",
        "shelve",
        "unshelve",
        "suppress",
        "unsuppress",
        "out_of_service",
        "in_service",
    }
)


class AlarmRow(TypedDict):
    """One row of the `alarm` table as the store hands it out (`pumpwatch/core/db/schema.py:alarm`; a test
    keeps the two the same). ISA-18.2 state in `state`; `open` until it is normal and acknowledged."""

    id: int
    tenant_id: str
    station_id: str
    name: str
    priority: str
    message: str
    state: str  # unacked_active | acked_active | unacked_rtn | normal
    open: bool
    active: bool
    latched: bool
    raised_at: datetime
    last_raised_at: datetime | None
    raise_count: int
    cleared_at: datetime | None
    value: float | None
    acked_at: datetime | None
    acked_by: str | None
    shelve_kind: str | None  # timed | oneshot
    shelved_until: datetime | None
    shelved_by: str | None
    shelve_reason: str | None
    suppressed_by: str | None
    out_of_service: bool
    incident_id: int | None
    input_not_good_since: datetime | None
    input_quality: str | None
    drill_id: int | None  # raised while a drill of its tenant ran (pumpwatch/core/drills.py)


class JournalRow(TypedDict):
    """One journal entry (`alarm_event`) with its alarm's tenant, station, rule name and priority."""

    id: int
    alarm_id: int
    at: datetime
    kind: str  # raise | clear | ack | shelve | … (the kinds the journal records)
    detail: str | None
    actor: str | None  # who (None: the system)
    state: str | None  # the alarm's state after the event
    value: float | None
    tenant_id: str
    station_id: str
    name: str
    priority: str
    drill_id: int | None  # its alarm's drill (None: a real alarm)


def alarm_row(r: Row[Any]) -> AlarmRow:
    """A `select(alarm)` result row as an AlarmRow."""
    return cast("AlarmRow", dict(r._mapping))


class AlarmActionError(Exception):
    """An operator action that does not apply: `status` is the HTTP status it maps to."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Raised:
    id: int
    new: bool  # a new occurrence (False: an unacknowledged-returned one became active again)


def _insert(conn: Connection, table: Any) -> Any:
    return (pg_dialect if conn.dialect.name == "postgresql" else sqlite_dialect).insert(table)


def _event(conn: Connection, alarm_id: int, at: datetime, kind: str, **kw: Any) -> None:
    event_id = conn.execute(
        insert(alarm_event).values(alarm_id=alarm_id, at=at, kind=kind, **kw).returning(alarm_event.c.id)
    ).scalar_one()
    if kind in NOTIFY_KINDS:  # same transaction: the notifier cannot miss it, even if it was down
        conn.execute(insert(notify_pending).values(event_id=event_id, created_at=at))


def _row(conn: Connection, alarm_id: int) -> AlarmRow | None:
    r = conn.execute(select(alarm).where(alarm.c.id == alarm_id)).first()
    return alarm_row(r) if r else None


# --- conditions (the evaluator) ------------------------------------------------------------------------


def raise_alarm(
    engine: Engine,
    *,
    tenant_id: str,
    station_id: str,
    name: str,
    priority: str,
    message: str,
    value: float | None,
    at: datetime,
    suppressed_by: str | None = None,
    incident_id: int | None = None,
) -> Raised | None:
    """The condition became true. Opens an occurrence, or re-activates an unacknowledged-returned one.
    None (nothing written) when the alarm is already active."""
    at = to_utc(at, "at")
    with engine.begin() as conn:
        oos = bool(
            conn.execute(
                select(station_mode.c.out_of_service).where(station_mode.c.station_id == station_id)
            ).scalar()
        )
        again = conn.execute(
            update(alarm)
            # an unacknowledged-returned occurrence, or a latched one whose condition comes back: the latch
            # ends (a reset now would close an alarm whose condition holds), and it alerts again
            .where(
                alarm.c.station_id == station_id,
                alarm.c.name == name,
                alarm.c.open,
                or_(~alarm.c.active, alarm.c.latched),
            )
            .values(
                active=True,
                latched=False,
                state="unacked_active",
                last_raised_at=at,
                raise_count=alarm.c.raise_count + 1,
                value=value,
                suppressed_by=suppressed_by,
                input_not_good_since=None,
                input_quality=None,
            )
            .returning(alarm.c.id)
        ).scalar_one_or_none()
        if again is not None:
            _event(conn, again, at, "raise", state="unacked_active", value=value, detail=message)
            return Raised(again, new=False)
        drill_id = drills.active_drill_id(conn, tenant_id)
        stmt = (
            _insert(conn, alarm)
            .values(
                tenant_id=tenant_id,
                station_id=station_id,
                name=name,
                priority=priority,
                message=message,
                state="unacked_active",
                open=True,
                active=True,
                latched=False,
                raised_at=at,
                last_raised_at=at,
                raise_count=1,
                value=value,
                suppressed_by=suppressed_by,
                out_of_service=oos,
                incident_id=incident_id,
                drill_id=drill_id,
            )
            .on_conflict_do_nothing(
                index_elements=[alarm.c.station_id, alarm.c.name], index_where=alarm.c.open
            )
            .returning(alarm.c.id)
        )
        alarm_id = conn.execute(stmt).scalar_one_or_none()
        if alarm_id is None:
            return None
        detail = message + (f" (suppressed by {suppressed_by})" if suppressed_by else "")
        if drill_id is not None:  # the journal says it, whoever reads it
            detail = f"[DRILL {drill_id}] {detail}"
        _event(conn, alarm_id, at, "raise", state="unacked_active", value=value, detail=detail)
        return Raised(alarm_id, new=True)


def clear_alarm(
    engine: Engine,
    *,
    station_id: str,
    name: str,
    at: datetime,
    value: float | None = None,
    latch: bool = False,
    detail: str | None = None,
) -> int | None:
    """The condition returned to normal. Acknowledged alarms close; unacknowledged ones wait for an ack
    (unacked_rtn); a latching rule's alarm stays as it is, latched, until an operator resets it."""
    at = to_utc(at, "at")
    with engine.begin() as conn:
        r = conn.execute(
            select(alarm.c.id, alarm.c.state, alarm.c.shelve_kind).where(
                alarm.c.station_id == station_id, alarm.c.name == name, alarm.c.open, alarm.c.active
            )
        ).first()
        if r is None:
            return None
        changes: dict[str, Any] = {"cleared_at": at}
        if latch:
            changes |= {"latched": True}
            state = r.state
        else:
            state = "normal" if r.state == "acked_active" else "unacked_rtn"
            changes |= {"active": False, "state": state, "open": state != "normal"}
            changes |= {"input_not_good_since": None, "input_quality": None}
            if r.shelve_kind == "oneshot":  # a one-shot shelve ends when the alarm returns to normal
                changes |= {"shelve_kind": None, "shelved_until": None}
        conn.execute(update(alarm).where(alarm.c.id == r.id).values(**changes))
        _event(
            conn, r.id, at, "clear", state=state, value=value, detail=detail or ("latched" if latch else None)
        )
        return int(r.id)


def set_suppressed(
    engine: Engine, *, station_id: str, names: Collection[str], by: str | None, at: datetime
) -> list[int]:
    """Mark open alarms `names` of a station suppressed by `by` (None: no longer suppressed). Journaled."""
    at = to_utc(at, "at")
    out = []
    with engine.begin() as conn:
        rows = conn.execute(
            select(alarm.c.id, alarm.c.suppressed_by).where(
                alarm.c.station_id == station_id, alarm.c.name.in_(list(names)), alarm.c.open
            )
        ).all()
        for r in rows:
            if r.suppressed_by == by:
                continue
            conn.execute(update(alarm).where(alarm.c.id == r.id).values(suppressed_by=by))
            kind = "suppress" if by else "unsuppress"
            _event(conn, r.id, at, kind, detail=f"by {by}" if by else f"{r.suppressed_by} cleared")
            out.append(r.id)
    return out


def set_input_quality(
    engine: Engine, *, station_id: str, name: str, at: datetime, quality: str | None
) -> int | None:
    """The active alarm's input is not good since `at` (`quality`: stale, comm_loss, ...), so the rule
    holds it: it neither clears nor re-raises until good data returns (`quality` None: it has). Journaled."""
    at = to_utc(at, "at")
    with engine.begin() as conn:
        r = conn.execute(
            select(alarm.c.id, alarm.c.input_not_good_since, alarm.c.input_quality).where(
                alarm.c.station_id == station_id, alarm.c.name == name, alarm.c.open, alarm.c.active
            )
        ).first()
        if r is None or (quality is None and r.input_quality is None) or r.input_quality == quality:
            return None
        since = (r.input_not_good_since or at) if quality is not None else None
        conn.execute(
            update(alarm).where(alarm.c.id == r.id).values(input_not_good_since=since, input_quality=quality)
        )
        if quality is None:
            _event(conn, r.id, at, "input_good", detail="input good again: the rule decides again")
        else:
            _event(conn, r.id, at, "input_not_good", detail=f"input {quality}: the alarm holds its state")
        return int(r.id)


# --- operator actions -----------------------------------------------------------------------------------


def _open_alarm(conn: Connection, alarm_id: int) -> AlarmRow:
    row = _row(conn, alarm_id)
    if row is None:
        raise AlarmActionError(404, f"no alarm {alarm_id}")
    return row


def acknowledge(
    engine: Engine,
    alarm_id: int,
    *,
    actor: str,
    at: datetime,
    comment: str | None = None,
    audit: Audit | None = None,
) -> AlarmRow:
    at = to_utc(at, "at")
    with engine.begin() as conn:
        row = _open_alarm(conn, alarm_id)
        if row["state"] not in ("unacked_active", "unacked_rtn"):
            raise AlarmActionError(409, f"alarm {alarm_id} is {row['state']}: nothing to acknowledge")
        state = "acked_active" if row["active"] and row["state"] == "unacked_active" else "normal"
        if row["latched"]:
            state = "acked_active"  # a latched alarm stays until reset
        upd = update(alarm).where(alarm.c.id == alarm_id, alarm.c.state == row["state"])
        done = conn.execute(
            upd.values(state=state, open=state != "normal", acked_at=at, acked_by=actor).returning(alarm.c.id)
        ).scalar_one_or_none()
        if done is None:  # changed under us by the collector: let the operator look again
            raise AlarmActionError(409, f"alarm {alarm_id} changed meanwhile; reload and try again")
        _event(conn, alarm_id, at, "ack", actor=actor, state=state, detail=comment)
        write_optional(audit, conn, old_value=row["state"], new_value=state, detail=comment)
        return _open_alarm(conn, alarm_id)  # (just updated: there)


def reset(
    engine: Engine,
    alarm_id: int,
    *,
    actor: str,
    at: datetime,
    comment: str | None = None,
    audit: Audit | None = None,
) -> AlarmRow:
    """End a latched alarm whose condition is gone."""
    at = to_utc(at, "at")
    with engine.begin() as conn:
        row = _open_alarm(conn, alarm_id)
        if not row["latched"]:
            raise AlarmActionError(409, f"alarm {alarm_id} is not latched")
        state = "normal" if row["state"] == "acked_active" else "unacked_rtn"
        conn.execute(
            update(alarm)
            .where(alarm.c.id == alarm_id)
            .values(latched=False, active=False, state=state, open=state != "normal")
        )
        _event(conn, alarm_id, at, "reset", actor=actor, state=state, detail=comment)
        write_optional(audit, conn, old_value=f"{row['state']}, latched", new_value=state, detail=comment)
        return _open_alarm(conn, alarm_id)  # (just updated: there)


def shelve(
    engine: Engine,
    alarm_id: int,
    *,
    actor: str,
    at: datetime,
    kind: str,
    until: datetime | None,
    reason: str,
    audit: Audit | None = None,
) -> AlarmRow:
    """Take an alarm off the operator's list: `timed` until `until`, or `oneshot` until it returns to
    normal (bounded by `until` all the same). A reason is required."""
    at = to_utc(at, "at")
    if kind not in ("timed", "oneshot"):
        raise AlarmActionError(422, "kind must be timed or oneshot")
    if not reason or not reason.strip():
        raise AlarmActionError(422, "shelving needs a reason")
    if until is None or to_utc(until, "until") <= at:
        raise AlarmActionError(422, "shelving needs an end time in the future")
    with engine.begin() as conn:
        row = _open_alarm(conn, alarm_id)
        if not row["open"]:
            raise AlarmActionError(409, f"alarm {alarm_id} is closed")
        conn.execute(
            update(alarm)
            .where(alarm.c.id == alarm_id)
            .values(shelve_kind=kind, shelved_until=until, shelved_by=actor, shelve_reason=reason)
        )
        detail = f"{kind} until {until.isoformat()}: {reason}"
        _event(conn, alarm_id, at, "shelve", actor=actor, detail=detail)
        was_until = row["shelved_until"]  # (set with every shelve; "?" should a row ever lack it)
        old = (
            f"{row['shelve_kind']} until {was_until.isoformat() if was_until else '?'}"
            if row["shelve_kind"]
            else None
        )
        write_optional(audit, conn, old_value=old, new_value=detail)
        return _open_alarm(conn, alarm_id)  # (just updated: there)


def unshelve(
    engine: Engine,
    alarm_id: int,
    *,
    actor: str | None,
    at: datetime,
    reason: str | None = None,
    audit: Audit | None = None,
) -> AlarmRow:
    at = to_utc(at, "at")
    with engine.begin() as conn:
        row = _open_alarm(conn, alarm_id)
        if row["shelve_kind"] is None:
            raise AlarmActionError(409, f"alarm {alarm_id} is not shelved")
        conn.execute(update(alarm).where(alarm.c.id == alarm_id).values(shelve_kind=None, shelved_until=None))
        _event(conn, alarm_id, at, "unshelve", actor=actor, detail=reason)
        write_optional(audit, conn, old_value=row["shelve_kind"], new_value=None, detail=reason)
        return _open_alarm(conn, alarm_id)  # (just updated: there)


def expire_shelves(engine: Engine, now: datetime) -> list[int]:
    """Unshelve (journaled, by the system) every shelve whose time is up."""
    now = to_utc(now, "now")
    with engine.connect() as conn:
        ids = (
            conn.execute(
                select(alarm.c.id).where(alarm.c.shelve_kind.is_not(None), alarm.c.shelved_until <= now)
            )
            .scalars()
            .all()
        )
    out = []
    for i in ids:
        try:
            unshelve(engine, i, actor=None, at=now, reason="shelve time is up")
            out.append(i)
        except AlarmActionError:
            pass  # unshelved meanwhile
    return out


def set_out_of_service(
    engine: Engine,
    station_id: str,
    *,
    out: bool,
    actor: str | None,
    at: datetime,
    reason: str | None,
    until: datetime | None = None,
    audit: Audit | None = None,
) -> list[int]:
    """Put a station in or out of maintenance (`actor` None: the system). Its open alarms follow, each
    journaled. A window with `until` ends by itself then (`expire_out_of_service`)."""
    at = to_utc(at, "at")
    if out and not (reason and reason.strip()):
        raise AlarmActionError(422, "out of service needs a reason")
    if out and until is not None and to_utc(until, "until") <= at:
        raise AlarmActionError(422, "out of service `until` must be in the future")
    with engine.begin() as conn:
        old = conn.execute(
            select(station_mode.c.out_of_service).where(station_mode.c.station_id == station_id)
        ).scalar()
        stmt = _insert(conn, station_mode).values(
            station_id=station_id, out_of_service=out, reason=reason, actor=actor, since=at, until=until
        )
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[station_mode.c.station_id],
                set_={"out_of_service": out, "reason": reason, "actor": actor, "since": at, "until": until},
            )
        )
        ids = (
            conn.execute(
                update(alarm)
                .where(alarm.c.station_id == station_id, alarm.c.open, alarm.c.out_of_service != out)
                .values(out_of_service=out)
                .returning(alarm.c.id)
            )
            .scalars()
            .all()
        )
        for i in ids:
            _event(conn, i, at, "out_of_service" if out else "in_service", actor=actor, detail=reason)
        write_optional(
            audit,
            conn,
            old_value="out_of_service" if old else "in_service",
            new_value="out_of_service" if out else "in_service",
            detail=reason,
        )
        return list(ids)


def expire_out_of_service(engine: Engine, now: datetime) -> list[str]:
    """Return to service, journaled by the system, every station whose out-of-service window is over: a
    maintenance window nobody closed must not hide a station's alarms for ever (docs/alarms.md §5)."""
    now = to_utc(now, "now")
    with engine.connect() as conn:
        due = (
            conn.execute(
                select(station_mode.c.station_id).where(
                    station_mode.c.out_of_service,
                    station_mode.c.until.is_not(None),
                    station_mode.c.until <= now,
                )
            )
            .scalars()
            .all()
        )
    for sid in due:
        set_out_of_service(engine, sid, out=False, actor=None, at=now, reason="out-of-service time is up")
    return list(due)


def station_modes(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        return {r.station_id: dict(r._mapping) for r in conn.execute(select(station_mode))}


# --- reading --------------------------------------------------------------------------------------------


def list_alarms(
    engine: Engine,
    *,
    open_: bool | None = True,
    active: bool | None = None,
    tenant_ids: Collection[str] | None = None,
    station_id: str | None = None,
    now: datetime | None = None,
    hidden: bool | None = None,
    limit: int = 500,
    station_ids: Collection[str] | None = None,
    states: Collection[str] | None = None,
    priorities: Collection[str] | None = None,
    after: AlarmListKey | None = None,
) -> list[AlarmRow]:
    """Alarm rows, unacknowledged first, then by priority and newest.

    `open_`: True open occurrences only, False closed only, None both. `active`: filter on the condition.
    `hidden`: with `now`, True only shelved/suppressed/out-of-service ones, False only what the operator
    should see, None both. `station_ids`, `states`, `priorities`: only these. `after`: the rows that follow
    this one in that order (`list_key` of the last row of a page: the next page, stable under inserts).
    """
    if tenant_ids is not None and not tenant_ids:
        return []
    stmt = select(alarm)
    if open_ is not None:
        stmt = stmt.where(alarm.c.open if open_ else ~alarm.c.open)
    if active is not None:
        stmt = stmt.where(alarm.c.active if active else ~alarm.c.active)
    if tenant_ids is not None:
        stmt = stmt.where(alarm.c.tenant_id.in_(list(tenant_ids)))
    if station_id is not None:
        stmt = stmt.where(alarm.c.station_id == station_id)
    if hidden is not None and now is not None:
        is_hidden = hidden_clause(now)  # alarms/hidden.py: the one definition, with its Python twin
        stmt = stmt.where(is_hidden if hidden else ~is_hidden)
    if station_ids is not None:
        stmt = stmt.where(alarm.c.station_id.in_(list(station_ids)))
    if states is not None:
        stmt = stmt.where(alarm.c.state.in_(list(states)))
    if priorities is not None:
        stmt = stmt.where(alarm.c.priority.in_(list(priorities)))
    state_rank = case(STATE_RANK, value=alarm.c.state, else_=3)
    prio_rank = case(PRIORITY_RANK, value=alarm.c.priority, else_=UNKNOWN_PRIORITY_RANK)
    if after is not None:
        sr, pr, at, aid = after.state_rank, after.priority_rank, to_utc(after.raised_at, "after"), after.id
        stmt = stmt.where(
            or_(
                state_rank > sr,
                and_(state_rank == sr, prio_rank > pr),
                and_(state_rank == sr, prio_rank == pr, alarm.c.raised_at < at),
                and_(state_rank == sr, prio_rank == pr, alarm.c.raised_at == at, alarm.c.id < aid),
            )
        )
    stmt = stmt.order_by(state_rank, prio_rank, alarm.c.raised_at.desc(), alarm.c.id.desc()).limit(limit)
    with engine.connect() as conn:
        return [alarm_row(r) for r in conn.execute(stmt)]


STATE_RANK = {"unacked_active": 0, "unacked_rtn": 1, "acked_active": 2}  # list order; the rest after


@dataclass(frozen=True)
class AlarmListKey:
    """Where a row stands in `list_alarms`'s order (the API's page cursor is made of it)."""

    state_rank: int
    priority_rank: int
    raised_at: datetime
    id: int


def list_key(row: Mapping[str, Any]) -> AlarmListKey:
    return AlarmListKey(
        STATE_RANK.get(row["state"], 3),
        PRIORITY_RANK.get(row["priority"], UNKNOWN_PRIORITY_RANK),
        row["raised_at"],
        row["id"],
    )


def active_system_alarms(engine: Engine, tenant_id: str | None) -> list[AlarmRow]:
    """The centre's system alarms whose condition is active now (pseudo-stations `system:…`), as stored."""
    stmt = select(alarm).where(alarm.c.open, alarm.c.active, alarm.c.station_id.like("system:%"))
    if tenant_id is not None:
        stmt = stmt.where(alarm.c.tenant_id == tenant_id)
    stmt = stmt.order_by(alarm.c.station_id, alarm.c.name).limit(1000)
    with engine.connect() as conn:
        return [alarm_row(r) for r in conn.execute(stmt)]


def get_alarm(engine: Engine, alarm_id: int) -> AlarmRow | None:
    with engine.connect() as conn:
        return _row(conn, alarm_id)


def alarm_journal(
    engine: Engine,
    alarm_id: int | None = None,
    *,
    tenant_ids: Collection[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    kinds: Collection[str] | None = None,
    limit: int = 10_000,
    newest_first: bool = False,
) -> list[JournalRow]:
    """Journal events oldest first (or newest first), with the alarm's tenant, station and name."""
    if tenant_ids is not None and not tenant_ids:
        return []
    stmt = select(
        alarm_event, alarm.c.tenant_id, alarm.c.station_id, alarm.c.name, alarm.c.priority, alarm.c.drill_id
    ).join(alarm, alarm.c.id == alarm_event.c.alarm_id)
    if alarm_id is not None:
        stmt = stmt.where(alarm_event.c.alarm_id == alarm_id)
    if tenant_ids is not None:
        stmt = stmt.where(alarm.c.tenant_id.in_(list(tenant_ids)))
    if start is not None:
        stmt = stmt.where(alarm_event.c.at >= to_utc(start, "start"))
    if end is not None:
        stmt = stmt.where(alarm_event.c.at < to_utc(end, "end"))
    if kinds is not None:
        stmt = stmt.where(alarm_event.c.kind.in_(list(kinds)))
    if newest_first:  # with a limit: the latest entries, not the oldest
        stmt = stmt.order_by(alarm_event.c.at.desc(), alarm_event.c.id.desc()).limit(limit)
    else:
        stmt = stmt.order_by(alarm_event.c.at, alarm_event.c.id).limit(limit)
    with engine.connect() as conn:
        return [cast("JournalRow", dict(r._mapping)) for r in conn.execute(stmt)]
