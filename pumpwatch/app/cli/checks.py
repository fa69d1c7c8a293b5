"""`pumpwatch check-config`: validate a fleet, its rules and on-call; print its safety coverage."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from pumpwatch.alarms.analyzers.build import all_analyzers
from pumpwatch.alarms.coverage import check_fleet, format_station, format_summary
from pumpwatch.alarms.notify.config import load_oncall
from pumpwatch.alarms.rules import default_system_rules
from pumpwatch.alarms.system_monitor import HISTORIAN, SYSTEM_KIND
from pumpwatch.app.cli.common import load_or_exit
from pumpwatch.core import resources
from pumpwatch.core.config import ConfigError, Fleet


@click.command("check-config")
@click.argument("fleet", type=click.Path(path_type=Path), default=Path("deploy/config/demo"))
@click.option("--per-station", is_flag=True, help="the coverage table of every station, not per station type")
def check_config(fleet: Path, per_station: bool) -> None:
    """Validate a fleet (and its alarm rules), print its safety coverage and a summary. Exit status: 0 OK,
    1 a safety function is neither armed nor waived (or a waiver is stale), 2 invalid configuration."""
    f = load_or_exit(fleet)
    try:
        rules, coverage = check_fleet(f, all_analyzers(f))
    except ConfigError as exc:
        click.echo(f"pumpwatch: {exc}", err=True)
        sys.exit(2)
    oncall = None
    if f.oncall:
        try:
            oncall = load_oncall(f.oncall, f)
        except ConfigError as exc:
            click.echo(f"pumpwatch: {exc}", err=True)
            sys.exit(2)
    register = None
    if f.resources:
        try:
            register = resources.load_register(f.resources, f)
        except ConfigError as exc:
            click.echo(f"pumpwatch: {exc}", err=True)
            sys.exit(2)
    if per_station:
        lines = [line for sc in coverage.stations.values() for line in ["", *format_station(sc)]]
    else:
        lines = format_summary(coverage)
    click.echo("\n".join(lines))
    click.echo("")
    n_points = sum(len(p) for p in f.points.values())
    n_rules = sum(len(r) for r in rules.stations.values())
    summary = (
        f"fleet {f.name!r}: {len(f.tenants)} tenants, {len(f.stations)} stations, "
        f"{len(f.controllers)} controllers, {len(f.register_maps)} register maps, {n_points} points, "
        f"{n_rules} station alarm rules"
        + (
            f", {len(oncall.people)} on-call people, {len(oncall.policies)} escalation policies"
            if oncall
            else ""
        )
        + (f", {len(register.resources)} mobile resources" if register else "")
    )
    click.echo(_system_alarms_line(f, rules, oncall))
    for warning in rules.warnings:
        click.echo(f"pumpwatch: warning: {warning}", err=True)
    failed = coverage.problems + coverage.stale_waivers
    if failed:
        click.echo(f"{summary}: NOT SAFE TO RUN", err=False)
        for problem in failed:
            click.echo(f"pumpwatch: {problem}", err=True)
        click.echo(
            f"pumpwatch: {len(failed)} coverage problem(s): arm each function (map the point, fix the "
            "rule) or waive it with a reason (`waivers:` on the station or its type)",
            err=True,
        )
        sys.exit(1)
    click.echo(f"{summary}: OK")


def _system_alarms_line(f: Fleet, rules, oncall) -> str:
    """Where the centre's system alarms go (a fleet with on-call and no route for them is refused before)."""
    system = rules.system if rules is not None else default_system_rules()
    names = ", ".join(r.name for r in system)
    if f.centre is None:
        return (
            f"system alarms ({len(system)}: {names}): no tenant is the monitoring centre (`centre: true` in "
            "tenants.yaml): they are logged and shown in /readyz only, never journaled or notified"
        )
    if oncall is None:
        return (
            f"system alarms ({len(system)}: {names}) of centre {f.centre!r}: journaled; no on-call file, "
            "so no alarm (station or system) reaches a phone"
        )
    routes = [oncall.route(f.centre, SYSTEM_KIND, HISTORIAN, r.priority, r.name).policy for r in system]
    policies = ", ".join(sorted({p.id if p is not None else "muted" for p in routes}))
    return f"system alarms ({len(system)}: {names}) of centre {f.centre!r}: routed to {policies}: OK"
