"""`pumpwatch notify run | test`: the on-call notifier alone, a test message to one person."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

import click

from pumpwatch.alarms.notify import queries
from pumpwatch.app.cli.common import (
    db_option,
    fleet_option,
    load_or_exit,
    log,
    refuse_unsafe_secret,
    setup_logging,
    until_signal,
)
from pumpwatch.app.system import System
from pumpwatch.core.clock import Clock, SystemClock
from pumpwatch.core.config import ConfigError, Fleet
from pumpwatch.core.settings import Settings


@click.group()
def notify() -> None:
    """On-call notification: run the notifier alone, send a test message."""


async def _notifier(f: Fleet, database_url: str, clock: Clock) -> System:
    settings = Settings()
    if f.oncall is None:
        click.echo(f"pumpwatch: fleet {f.name!r} has no `oncall:` file", err=True)
        sys.exit(2)
    try:
        system = await System.prepare(f, database_url, clock, settings.secret_key)
    except ConfigError as exc:
        click.echo(f"pumpwatch: {exc}", err=True)
        sys.exit(2)
    return system


@notify.command("run")
@fleet_option
@db_option
def notify_run(fleet: Path | None, database_url: str | None) -> None:
    """Only the notifier (no collector, no API): a stateless replica; run as many as you like."""
    settings = Settings()
    setup_logging(settings.log_level)
    refuse_unsafe_secret(settings, "the notifier (it signs the ack links)")
    f = load_or_exit(fleet or settings.fleet)

    async def body() -> None:
        system = await _notifier(f, database_url or settings.database_url, SystemClock())
        system.start_notifying()
        log.info("notifier running (%s); Ctrl-C stops", f.oncall)
        try:
            await until_signal()
        finally:
            await system.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(body())


@notify.command("test")
@click.argument("person")
@click.option("--channel", default=None, help="only this channel (default: every contact of the person)")
@fleet_option
@db_option
def notify_test(person: str, channel: str | None, fleet: Path | None, database_url: str | None) -> None:
    """Send a test message to PERSON now and report the outcome of each contact."""
    settings = Settings()
    setup_logging(settings.log_level)
    f = load_or_exit(fleet or settings.fleet)

    async def body() -> int:
        system = await _notifier(f, database_url or settings.database_url, SystemClock())
        svc = system.notifier
        assert svc is not None
        try:
            ids = await asyncio.to_thread(svc.queue_test, person, channel)
        except (KeyError, ValueError) as exc:
            click.echo(f"pumpwatch: {exc.args[0]}", err=True)
            return 2
        for _ in range(3):  # the sender's own retries are minutes apart; here one try per contact is the test
            await svc.send_once()
        rows = {r["id"]: r for r in queries.deliveries(system.engine, person=person, kind="test", limit=50)}
        bad = 0
        for i in ids:
            r = rows[i]
            ok = r["state"] == "sent"
            bad += not ok
            why = "" if ok else f": {r['last_error']}"
            click.echo(f"{r['channel']:<16} {r['recipient']:<32} {r['state']}{why}")
        system.engine.dispose()
        return 1 if bad else 0

    sys.exit(asyncio.run(body()))
