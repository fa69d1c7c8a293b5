"""`pumpwatch run`, and the lifecycle of a process every command that runs the System shares: prepare
(rules, coverage, migrations), refuse what is unsafe, start collecting and notifying, serve, stop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
import threading
from pathlib import Path
from typing import Any

import click

from pumpwatch.api.auth.config import auth_config
from pumpwatch.api.auth.demo import seed_demo_users
from pumpwatch.api.auth.users import demo_users_present
from pumpwatch.api.webconfig import web_config
from pumpwatch.app import backfill
from pumpwatch.app.cli.common import (
    check_auth_settings,
    db_option,
    fleet_option,
    load_or_exit,
    log,
    refuse_unsafe_secret,
    setup_logging,
    until_signal,
)
from pumpwatch.app.drills import DrillRunner
from pumpwatch.app.policy import api_refusals
from pumpwatch.app.serve import serve_api, serve_probes
from pumpwatch.app.system import System
from pumpwatch.core.clock import Clock, SystemClock
from pumpwatch.core.config import ConfigError, Fleet
from pumpwatch.core.drills import DrillConflict
from pumpwatch.core.settings import Settings
from pumpwatch.core.sharding import parse_shard
from pumpwatch.simulators.fleet import SimulatedFleet


async def run_system(
    f: Fleet,
    database_url: str,
    clock: Clock,
    *,
    collect: bool,
    api: tuple[str, int] | None,
    settings: Settings,
    demo: bool = False,
    notify: bool = True,
    spool_dir: Path | None = None,
    spool_capacity_mb: int = 4096,
    shard: str | None = None,
    probe: tuple[str, int] | None = None,
    sim: SimulatedFleet | None = None,
    scenario: Path | None = None,
    backfill_hours: float = 0.0,
    seed: int = 7,
    standby: bool = False,
    collector_id: str | None = None,
) -> None:
    """Run the System. With `sim` (the demo's simulated fleet): first `backfill_hours` of its past into the
    historian (pumpwatch.app.backfill); the drill engine runs, and starts the drill in `scenario` once
    everything is up."""
    try:
        system = await System.prepare(
            f,
            database_url,
            clock,
            settings.secret_key,
            api_database_url=settings.api_database_url,
            require_coverage=True,  # never run a station that could not raise a safety alarm
        )
    except ConfigError as exc:
        click.echo(f"pumpwatch: {exc}", err=True)
        sys.exit(2)
    # What is loaded now (the fleet, its register maps and rules: ~60 objects a station) lives as long as
    # the process. Out of the cyclic garbage collector's sight it is not walked by every full collection,
    # which stops every thread, the event loop's too: 2 s at 10,000 stations on this 2-core machine.
    gc.collect()
    gc.freeze()
    if shard:
        system.shard = parse_shard(shard)
        if spool_dir is not None:
            spool_dir = spool_dir / f"shard-{system.shard.index}"
    system.standby = standby
    system.collector_id = collector_id
    if standby and spool_dir is not None:
        spool_dir = spool_dir / system.owner_id()
    system.spool_dir = spool_dir
    system.heartbeat_interval_s = settings.heartbeat_interval_s
    system.dead_letter_keep = settings.dead_letter_keep
    system.spool_capacity_bytes = spool_capacity_mb * 1024**2
    drill_task: asyncio.Task[None] | None = None
    history_task: asyncio.Task[Any] | None = None
    history_cancel = threading.Event()
    try:
        if demo:
            made = await asyncio.to_thread(seed_demo_users, system.engine, sorted(f.tenants))
            if made:
                log.info("demo users %s, password 'pumpwatch-demo' (loopback only)", ", ".join(made))
            log.warning(
                "DEMO MODE: public secret and demo users, no second factor for them; never for real stations"
            )
        if api is not None:
            present = await asyncio.to_thread(demo_users_present, system.engine)
            try:
                problems = api_refusals(settings, api[0], demo=demo, demo_users=present)
            except ValueError as exc:  # the host does not resolve
                raise click.BadParameter(str(exc), param_hint="--api-host") from None
            if problems:
                raise click.ClickException(f"refusing to serve the API on {api[0]}: " + "; ".join(problems))
            try:
                web = web_config(settings)
            except ValueError as exc:
                raise click.ClickException(f"refusing to serve the API: {exc}") from None
        fill = (
            backfill.plan(system.engine, clock.now(), backfill_hours) if sim and backfill_hours > 0 else None
        )
        if sim is not None and fill is not None and fill.learn is not None:
            log.info("simulating the last %g h into the historian (trends, learned inflow)", backfill_hours)
            models = await asyncio.to_thread(
                backfill.simulate_into,
                f,
                system.engine,
                system.catalog,
                start=fill.learn[0],
                end=fill.learn[1],
                every_s=60.0,
                analyzers=system.analyzers,
                seed=seed,
            )
            backfill.continue_live(sim, models)
            if fill.history is not None:  # the older part while the demo runs: history only
                history_task = asyncio.create_task(
                    asyncio.to_thread(
                        backfill.simulate_into,
                        f,
                        system.engine,
                        system.catalog,
                        start=fill.history[0],
                        end=fill.history[1],
                        every_s=300.0,
                        seed=seed + 1,
                        cancel=history_cancel,
                    ),
                    name="pumpwatch.backfill",
                )
        if collect:
            await system.start_collecting()
        if notify and system.notifier is not None:
            system.start_notifying()
            log.info("on-call notification running (%s)", f.oncall)
        if collect and system.shard is not None:
            log.info("shard %s: %d stations", system.shard, system.station_count())
        if sim is not None:
            system.drills = DrillRunner(sim, clock, system.engine, f)
            drill_task = asyncio.create_task(system.drills.run(), name="pumpwatch.drills")
            if scenario is not None:
                try:
                    text = await asyncio.to_thread(scenario.read_text, encoding="utf-8")
                    did = await system.drills.start(text, "pumpwatch demo --scenario", name=str(scenario))
                except (ConfigError, OSError, DrillConflict) as exc:
                    raise click.ClickException(f"drill {scenario}: {exc}") from None
                log.warning("drill %d from %s is running: the console shows DRILL", did, scenario)
        if collect and standby:
            log.info("standby %s: polls the links whose lease lapses", system.owner_id())
        if api is not None:
            ctx = system.api_context(in_process_live=collect, auth=auth_config(settings, demo=demo), web=web)
            tls = settings.api_ssl_certfile is not None
            log.info("API and live page at http%s://%s:%d/", "s" if tls else "", api[0], api[1])
            await serve_api(
                ctx, *api, ssl_certfile=settings.api_ssl_certfile, ssl_keyfile=settings.api_ssl_keyfile
            )
        elif probe is not None:
            log.info("probes at http://%s:%d/healthz, /readyz, /metrics", *probe)
            await serve_probes(system.api_context(in_process_live=collect), *probe)
        else:
            await until_signal()
    finally:
        if history_task is not None and not history_task.done():
            history_cancel.set()  # stopped early: what it wrote stays, the rest of the day is a gap
            with contextlib.suppress(Exception):
                await history_task
        if drill_task is not None:
            drill_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drill_task
        log.info("stopping: storing what was read")
        await system.stop()
        log.info("stopped")


@click.command()
@fleet_option
@db_option
@click.option("--api/--no-api", default=True, help="serve the API in this process")
@click.option("--collect/--no-collect", default=True, help="poll the field devices in this process")
@click.option("--notify/--no-notify", default=True, help="run the on-call notifier in this process")
@click.option("--api-host", default=None)
@click.option("--api-port", type=int, default=None)
@click.option(
    "--shard", default=None, help="I/N or ordinal/N: poll only this shard's stations (env PUMPWATCH_SHARD)"
)
@click.option(
    "--standby",
    is_flag=True,
    help="poll no stations of its own; take over the links of a collector whose lease lapses",
)
@click.option(
    "--collector-id",
    default=None,
    help="this collector's name in the link leases (default shard-I, or standby-<host> with --standby)",
)
@click.option("--spool-dir", type=click.Path(path_type=Path), default=None, help="default var/spool")
@click.option("--probe-port", type=int, default=None, help="with --no-api: serve /healthz /readyz /metrics")
@click.option("--probe-host", default="0.0.0.0", show_default=True)
def run(
    fleet: Path | None,
    database_url: str | None,
    api: bool,
    collect: bool,
    notify: bool,
    api_host: str | None,
    api_port: int | None,
    shard: str | None,
    standby: bool,
    collector_id: str | None,
    spool_dir: Path | None,
    probe_port: int | None,
    probe_host: str,
) -> None:
    """Run against real devices: collector, alarms and/or API."""
    settings = Settings()
    setup_logging(settings.log_level)
    if not (api or collect):
        raise click.UsageError("nothing to run: give --api or --collect")
    shard = shard or settings.shard
    if standby and shard:
        raise click.UsageError("--standby polls no shard of its own: give --standby or --shard, not both")
    if standby and not collect:
        raise click.UsageError("--standby needs --collect")
    if shard:
        try:
            parse_shard(shard)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--shard") from None
    f = load_or_exit(fleet or settings.fleet)
    if api or (notify and f.oncall is not None):
        refuse_unsafe_secret(settings, "the API" if api else "the notifier (it signs the ack links)")
    check_auth_settings(settings)
    host, port = api_host or settings.api_host, api_port or settings.api_port
    probe_port = probe_port or settings.probe_port
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            run_system(
                f,
                database_url or settings.database_url,
                SystemClock(),
                collect=collect,
                api=(host, port) if api else None,
                settings=settings,
                notify=notify,
                spool_dir=spool_dir or settings.spool_dir,
                spool_capacity_mb=settings.spool_capacity_mb,
                shard=shard,
                probe=(probe_host, probe_port) if probe_port and not api else None,
                standby=standby,
                collector_id=collector_id,
            )
        )
