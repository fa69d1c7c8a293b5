"""`pumpwatch report`: one operation report to a file; `pumpwatch report-schedule`: the scheduled e-mails."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import sys
from pathlib import Path

import click

from pumpwatch.alarms.notify.config import load_oncall
from pumpwatch.app.cli.common import db_option, fleet_option, load_or_exit, log, setup_logging
from pumpwatch.core.audit import Audit, AuditUnavailable
from pumpwatch.core.clock import SystemClock
from pumpwatch.core.config import ConfigError
from pumpwatch.core.db import make_engine
from pumpwatch.core.settings import Settings
from pumpwatch.reports.errors import ReportError
from pumpwatch.reports.schedule import load_schedules, run_due
from pumpwatch.reports.service import FORMATS, definitions_for, generate, reports_root_for


@click.command("report")
@click.option("--tenant", required=True, help="the municipality (tenant id)")
@click.option(
    "--period", required=True, help="YYYY-MM-DD (a day) or YYYY-MM (a month), the tenant's time zone"
)
@click.option("--station", "stations", multiple=True, help="only this station (repeatable; default: all)")
@click.option("--format", "fmt", type=click.Choice(sorted(FORMATS)), default="xlsx", show_default=True)
@click.option("--locale", type=click.Choice(["ja", "en"]), default="ja", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="file or folder (default: here)")
@fleet_option
@db_option
def report(
    tenant: str,
    period: str,
    stations: tuple[str, ...],
    fmt: str,
    locale: str,
    out: Path | None,
    fleet: Path | None,
    database_url: str | None,
) -> None:
    """Write the operation report (運転日報・月報) of TENANT for PERIOD; audited as `report.generate`."""
    settings = Settings()
    setup_logging(settings.log_level)
    f = load_or_exit(fleet or settings.fleet)
    engine = make_engine(database_url or settings.database_url)
    try:
        defs = definitions_for(f)
        now = SystemClock().now()
        audit = Audit(at=now, action="report.generate", username=f"cli:{getpass.getuser()}")
        g = generate(
            engine, f, defs, tenant=tenant, period=period, now=now, fmt=fmt, locale=locale,
            stations=list(stations) or None, audit=audit,
        )  # fmt: skip
    except (ReportError, AuditUnavailable) as exc:
        click.echo(f"pumpwatch report: {exc}", err=True)
        sys.exit(2)
    finally:
        engine.dispose()
    path = (out / g.filename) if out is not None and out.is_dir() else (out or Path(g.filename))
    path.write_bytes(g.content)
    mark = " (provisional: the period has not ended)" if g.report.provisional else ""
    click.echo(f"{path}: {len(g.content)} bytes, {len(g.report.stations)} stations{mark}")


@click.command("report-schedule")
@click.option("--once", is_flag=True, help="run what is due now, then exit (e.g. from cron)")
@click.option("--every", "every_s", type=float, default=60.0, show_default=True, help="seconds between runs")
@fleet_option
@db_option
def report_schedule(once: bool, every_s: float, fleet: Path | None, database_url: str | None) -> None:
    """Send the scheduled reports (deploy/config/reports/schedules.yaml) through the on-call e-mail
    channels; each delivery audited (report.deliver). Run it in one process only."""
    settings = Settings()
    setup_logging(settings.log_level)
    f = load_or_exit(fleet or settings.fleet)
    channels: dict[str, object] = {}
    if f.oncall is not None:
        try:
            channels = dict(load_oncall(f.oncall, f).channels)
        except ConfigError as exc:
            click.echo(f"pumpwatch: {exc}", err=True)
            sys.exit(2)
    try:
        defs = definitions_for(f)
        schedules = load_schedules(reports_root_for(f) / "schedules.yaml", f, channels)
    except ReportError as exc:
        click.echo(f"pumpwatch report-schedule: {exc}", err=True)
        sys.exit(2)
    if not schedules:
        click.echo("pumpwatch report-schedule: no schedules (schedules.yaml is empty)", err=True)
        sys.exit(2 if not once else 0)
    engine = make_engine(database_url or settings.database_url)
    clock = SystemClock()

    async def body() -> None:
        while True:
            for d in await run_due(engine, f, defs, schedules, channels, clock.now()):
                if d.result != "skipped":
                    log.info("report %s %s: %s %s", d.schedule, d.period, d.result, d.detail)
            if once:
                return
            await asyncio.sleep(every_s)

    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(body())
    finally:
        engine.dispose()
