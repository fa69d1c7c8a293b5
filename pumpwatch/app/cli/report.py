"""`pumpwatch report`: one operation report to a file, and `pumpwatch report schedule` (the daily e-mail)."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path

import click

from pumpwatch.app.cli.common import db_option, fleet_option, load_or_exit, setup_logging
from pumpwatch.core.audit import Audit, AuditUnavailable
from pumpwatch.core.clock import SystemClock
from pumpwatch.core.db import make_engine
from pumpwatch.core.settings import Settings
from pumpwatch.reports.errors import ReportError
from pumpwatch.reports.service import FORMATS, definitions_for, generate


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
