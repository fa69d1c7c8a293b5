"""What the commands share: logging, loading a fleet, the clock, the options, the refusals at start."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

import click

from pumpwatch.api.auth.config import auth_config
from pumpwatch.core.clock import Clock, ScaledClock, SystemClock
from pumpwatch.core.config import ConfigError, Fleet, load_fleet
from pumpwatch.core.settings import Settings

log = logging.getLogger("pumpwatch")


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # we log device problems ourselves, once
    logging.getLogger("alembic").setLevel(logging.WARNING)


def load_or_exit(fleet_path: Path) -> Fleet:
    try:
        return load_fleet(fleet_path)
    except ConfigError as exc:
        click.echo(f"pumpwatch: {exc}", err=True)
        sys.exit(2)


def check_auth_settings(settings: Settings) -> None:
    try:
        auth_config(settings)
    except ValueError as exc:
        raise click.ClickException(f"PUMPWATCH_MFA_ROLES: {exc}") from None


def refuse_unsafe_secret(settings: Settings, what: str) -> None:
    """Outside the demo a process that signs sessions or ack links never starts with a public secret."""
    problems = settings.secret_problems()
    if problems:
        raise click.ClickException(f"refusing to start {what}: " + "; ".join(problems))


def clock_for(speed: float) -> Clock:
    return SystemClock() if speed == 1 else ScaledClock(speed=speed)


fleet_option = click.option(
    "--fleet", type=click.Path(path_type=Path), default=None, help="fleet folder or fleet.yaml"
)


db_option = click.option("--db", "database_url", default=None, help="sqlite:///file.db or postgresql://…")


async def until_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
