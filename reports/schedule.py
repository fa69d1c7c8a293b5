"""Scheduled operation reports: `deploy/config/reports/schedules.yaml`, e-mailed through the fleet's
on-call e-mail channels (alarms.notify: the same SMTP settings, error classes and retries).

A schedule runs once a day at `at` (HH:MM, the tenant's time zone) and sends the previous day's report
(`period: day`), or on the 1st the previous month's (`period: month`). `run_due(...)` does what is due
now and not yet delivered: it generates the report (audited `report.generate`, actor
`schedule:<id>`), sends it to each address, and records the outcome in the audit log as `report.deliver`
(`ok`, or `error` with why: the console's reports view and `GET /api/v1/reports/{tenant}/deliveries`
show it). A delivery that failed is tried again on the next run, at most every `retry_s`, until it is
sent or its period is no longer the latest one. Whether a delivery was made is read back from the audit
log, so a restart neither skips nor repeats one; run the schedule in one process only (two at once could
both send).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Engine, select

from pumpwatch.alarms.notify.channels import EmailNotifier, NotifyError, OutgoingMessage
from pumpwatch.alarms.notify.config import EmailChannel
from pumpwatch.core.audit import Audit
from pumpwatch.core.config.loader import Fleet
from pumpwatch.core.db.schema_security import audit_log
from pumpwatch.core.db.types import to_utc
from pumpwatch.reports.definitions import Definitions
from pumpwatch.reports.errors import DefinitionError, ReportError
from pumpwatch.reports.labels import t
from pumpwatch.reports.periods import Period
from pumpwatch.reports.service import generate

__all__ = ["Delivery", "ScheduleDef", "due_period", "load_schedules", "recent_deliveries", "run_due"]

log = logging.getLogger(__name__)


class ScheduleDef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
    tenant: str
    period: Literal["day", "month"] = "day"
    at: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")] = "06:00"
    format: Literal["xlsx", "pdf", "csv"] = "xlsx"
    locale: Literal["ja", "en"] = "ja"
    channel: str
    to: list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]] = Field(min_length=1)
    retry_s: Annotated[float, Field(ge=60)] = 600.0


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")
    schedules: list[ScheduleDef] = Field(default_factory=list)


def load_schedules(path: str | Path, fleet: Fleet, channels: dict[str, object]) -> list[ScheduleDef]:
    """The schedules, checked against the fleet (tenant) and the on-call channels (an e-mail one)."""
    path = Path(path)
    if not path.is_file():
        return []
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        items = _File.model_validate(data).schedules
    except (yaml.YAMLError, ValidationError) as exc:
        raise DefinitionError(f"{path}: {exc}") from None
    problems = []
    ids = [s.id for s in items]
    for i, s in enumerate(items):
        if ids.count(s.id) > 1:
            problems.append(f"{path}: schedules.{i}.id: {s.id!r} is used twice")
        if s.tenant not in fleet.tenants:
            problems.append(f"{path}: schedules.{i}.tenant: no tenant {s.tenant!r} in the fleet")
        if not isinstance(channels.get(s.channel), EmailChannel):
            problems.append(
                f"{path}: schedules.{i}.channel: {s.channel!r} is not an e-mail channel of oncall.yaml"
            )
    if problems:
        raise DefinitionError("; ".join(problems))
    return items


def due_period(s: ScheduleDef, tz: str, now: datetime) -> tuple[Period, datetime] | None:
    """The period the latest run at or before `now` is for, and that run's time (None: none yet this
    month, for a monthly schedule before its first run)."""
    zone = ZoneInfo(tz)
    local = now.astimezone(zone)
    hh, mm = (int(x) for x in s.at.split(":"))
    run_day = local.date() if local.time() >= time(hh, mm) else local.date() - timedelta(days=1)
    if s.period == "month":
        run_day = run_day.replace(day=1)  # the 1st of this month (or, before its run time, of the last)
        if local.date() == run_day and local.time() < time(hh, mm):
            run_day = (run_day - timedelta(days=1)).replace(day=1)
        first = (run_day - timedelta(days=1)).replace(day=1)
        period = Period("month", first, tz)
    else:
        period = Period("day", run_day - timedelta(days=1), tz)
    return period, datetime.combine(run_day, time(hh, mm), tzinfo=zone)


@dataclass(frozen=True)
class Delivery:
    schedule: str
    period: str
    result: str  # ok | error | skipped (already delivered, or waiting to retry)
    detail: str = ""


def _target(s: ScheduleDef, p: Period) -> str:
    return f"{s.id}:{p.name}"


def _attempts(engine: Engine, tenant: str, target: str) -> list[tuple[str, datetime]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(audit_log.c.result, audit_log.c.at).where(
                audit_log.c.action == "report.deliver",
                audit_log.c.tenant_id == tenant,
                audit_log.c.target == target,
            )
        ).all()
    return [(r, to_utc(at)) for r, at in rows]


async def run_due(
    engine: Engine,
    fleet: Fleet,
    defs: Definitions,
    schedules: Sequence[ScheduleDef],
    channels: dict[str, object],
    now: datetime,
) -> list[Delivery]:
    """Run every schedule whose latest period has not been delivered (see the module's docstring)."""
    out: list[Delivery] = []
    for s in schedules:
        tz = fleet.tenants[s.tenant].timezone
        due = due_period(s, tz, now)
        if due is None:
            continue
        period, _run_at = due
        target = _target(s, period)
        tries = _attempts(engine, s.tenant, target)
        if any(r == "ok" for r, _ in tries):
            out.append(Delivery(s.id, period.name, "skipped", "already delivered"))
            continue
        if tries and (now - max(at for _, at in tries)).total_seconds() < s.retry_s:
            out.append(Delivery(s.id, period.name, "skipped", "waiting to retry"))
            continue
        actor = Audit(
            at=now, action="report.deliver", username=f"schedule:{s.id}", tenant_id=s.tenant, target=target
        )
        try:
            g = await asyncio.to_thread(
                generate, engine, fleet, defs, tenant=s.tenant, period=period.name, now=now,
                fmt=s.format, locale=s.locale, audit=actor,
            )  # fmt: skip
            notifier = EmailNotifier(s.channel, channels[s.channel])  # type: ignore[arg-type]
            title = f"{g.report.tenant_name} {g.report.title(s.locale)} {period.name}"
            if g.report.provisional:
                title += f" ({t('provisional', s.locale)})"
            body = _body(g.report, s.locale)
            for addr in s.to:
                await notifier.notify(
                    OutgoingMessage(
                        dedupe_key=f"report:{target}:{addr}",
                        to=addr,
                        subject=title,
                        body=body,
                        short=title,
                        person=addr,
                        person_name=addr,
                        tenant=s.tenant,
                        kind="report",
                        created_at=now,
                        attachments=((g.filename, g.media_type, g.content),),
                    )  # fmt: skip
                )
        except (ReportError, NotifyError, OSError) as exc:
            detail = f"{type(exc).__name__}: {exc}"
            log.error("scheduled report %s for %s not delivered: %s", s.id, period.name, detail)
            await asyncio.to_thread(actor.record, engine, "error", detail=detail[:500])
            out.append(Delivery(s.id, period.name, "error", detail))
            continue
        detail = f"to {', '.join(s.to)}: {g.filename} ({len(g.content)} bytes)"
        await asyncio.to_thread(actor.record, engine, "ok", detail=detail)
        out.append(Delivery(s.id, period.name, "ok", detail))
    return out


def _body(report, locale: str) -> str:
    """The mail's text: what is attached, and per station its data completeness (a gap is seen at once)."""
    lines = [f"{report.tenant_name} {report.title(locale)} {report.period.name} ({report.period.tz})", ""]
    for r, v in report.summary.rows:
        comp = v.get("completeness")
        shown = t("no_data", locale) if comp is None else f"{comp:.1f} %"
        lines.append(f"{r.name} ({r.station_id}): {t('completeness', locale)} {shown}")
    return "\n".join(lines)


def recent_deliveries(engine: Engine, tenant: str, limit: int = 50) -> list[dict]:
    """The latest `report.deliver` records of a tenant, newest first (what the console shows)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                audit_log.c.at,
                audit_log.c.username,
                audit_log.c.target,
                audit_log.c.result,
                audit_log.c.detail,
            )
            .where(audit_log.c.action == "report.deliver", audit_log.c.tenant_id == tenant)
            .order_by(audit_log.c.id.desc())
            .limit(limit)
        ).all()
    return [
        {
            "at": to_utc(r.at).isoformat(),
            "by": r.username,
            "target": r.target,
            "result": r.result,
            "detail": r.detail,
        }
        for r in rows
    ]
