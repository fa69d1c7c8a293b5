"""The `pumpwatch` command line: demo, run, simulate, migrate, check-config."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import signal
import socket
import sys
from pathlib import Path

import click

from pumpwatch.clock import Clock, ScaledClock, SystemClock
from pumpwatch.config import ConfigError, Fleet, load_fleet
from pumpwatch.settings import Settings

log = logging.getLogger("pumpwatch")


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # we log device problems ourselves, once
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _load(fleet_path: Path) -> Fleet:
    try:
        return load_fleet(fleet_path)
    except ConfigError as exc:
        click.echo(f"pumpwatch: {exc}", err=True)
        sys.exit(2)


def _loopback_only(host: str) -> None:
    """Until accounts and TLS exist, the API serves this machine only."""
    try:
        addrs = {ai[4][0] for ai in socket.getaddrinfo(host, None)}
    except socket.gaierror:
        raise click.BadParameter(f"cannot resolve {host!r}", param_hint="--api-host") from None
    if not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addrs):
        raise click.BadParameter(
            f"{host} is not a loopback address: the API has no authentication yet, so it refuses to "
            "listen beyond this machine",
            param_hint="--api-host",
        )


def _clock(speed: float) -> Clock:
    return SystemClock() if speed == 1 else ScaledClock(speed=speed)


@click.group()
@click.version_option(package_name="pumpwatch")
def main() -> None:
    """pumpwatch: monitoring for sewer pump stations, treatment plants and their controllers."""


fleet_option = click.option(
    "--fleet", type=click.Path(path_type=Path), default=None, help="fleet folder or fleet.yaml"
)
db_option = click.option("--db", "database_url", default=None, help="sqlite:///file.db or postgresql://…")


@main.command("check-config")
@click.argument("fleet", type=click.Path(path_type=Path), default=Path("deploy/config/demo"))
def check_config(fleet: Path) -> None:
    """Validate a fleet (and its alarm rules); print a summary or every problem found."""
    from alarms.analyzers.build import all_analyzers
    from alarms.rules import load_rules

    f = _load(fleet)
    derived = {sid: {p.name for a in an for p in a.outputs} for sid, an in all_analyzers(f).items()}
    try:
        rules = load_rules(f.alarm_rules, f, derived) if f.alarm_rules else None
    except ConfigError as exc:
        click.echo(f"pumpwatch: {exc}", err=True)
        sys.exit(2)
    n_points = sum(len(p) for p in f.points.values())
    n_rules = sum(len(r) for r in rules.stations.values()) if rules else 0
    click.echo(
        f"fleet {f.name!r}: {len(f.tenants)} tenants, {len(f.stations)} stations, "
        f"{len(f.controllers)} controllers, {len(f.register_maps)} register maps, {n_points} points, "
        f"{n_rules} station alarm rules: OK"
    )


@main.command()
@db_option
def migrate(database_url: str | None) -> None:
    """Create or upgrade the database schema."""
    from pumpwatch.db.engine import make_engine
    from pumpwatch.db.migrate import upgrade

    settings = Settings()
    _setup_logging(settings.log_level)
    engine = make_engine(database_url or settings.database_url)
    upgrade(engine)
    click.echo("database is at the latest schema")


@main.command()
@fleet_option
@click.option("--seed", default=7, show_default=True, help="random seed of the simulation")
@click.option("--speed", default=1.0, show_default=True, help="simulated seconds per real second")
def simulate(fleet: Path | None, seed: int, speed: float) -> None:
    """Serve a fleet's simulated stations over Modbus TCP until Ctrl-C."""
    from simulators.fleet import SimulatedFleet

    settings = Settings()
    _setup_logging(settings.log_level)
    f = _load(fleet or settings.fleet)

    async def body() -> None:
        async with SimulatedFleet(f, _clock(speed), seed=seed):
            log.info("simulating %d stations; Ctrl-C stops", len(f.stations))
            await _until_signal()

    asyncio.run(body())


async def _until_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def _run_system(
    f: Fleet,
    database_url: str,
    clock: Clock,
    *,
    collect: bool,
    api: tuple[str, int] | None,
    spool_dir: Path | None = None,
    spool_capacity_mb: int = 4096,
    shard: str | None = None,
    probe: tuple[str, int] | None = None,
) -> None:
    from pumpwatch.sharding import parse_shard
    from pumpwatch.system import System, serve_api, serve_probes

    system = await System.prepare(f, database_url, clock)
    if shard:
        system.shard = parse_shard(shard)
        if spool_dir is not None:
            spool_dir = spool_dir / f"shard-{system.shard.index}"
    system.spool_dir = spool_dir
    system.heartbeat_interval_s = Settings().heartbeat_interval_s
    system.spool_capacity_bytes = spool_capacity_mb * 1024**2
    try:
        if collect:
            await system.start_collecting()
            if system.shard is not None:
                log.info("shard %s: %d stations", system.shard, system.station_count())
        if api is not None:
            ctx = system.api_context(in_process_live=collect)
            log.info("API and live page at http://%s:%d/", api[0], api[1])
            await serve_api(ctx, *api)
        elif probe is not None:
            log.info("probes at http://%s:%d/healthz, /readyz, /metrics", *probe)
            await serve_probes(system.api_context(in_process_live=collect), *probe)
        else:
            await _until_signal()
    finally:
        log.info("stopping: storing what was read")
        await system.stop()
        log.info("stopped")


@main.command()
@fleet_option
@db_option
@click.option("--api-host", default=None, help="default 127.0.0.1")
@click.option("--api-port", type=int, default=None, help="default 8000")
@click.option("--seed", default=7, show_default=True)
@click.option("--speed", default=1.0, show_default=True, help="simulated seconds per real second")
def demo(
    fleet: Path | None,
    database_url: str | None,
    api_host: str | None,
    api_port: int | None,
    seed: int,
    speed: float,
) -> None:
    """Everything in one process on simulated stations: simulator, collector, alarms, API (SQLite)."""
    from simulators.fleet import SimulatedFleet

    settings = Settings()
    _setup_logging(settings.log_level)
    f = _load(fleet or settings.fleet)
    host, port = api_host or settings.api_host, api_port or settings.api_port
    _loopback_only(host)
    url = database_url or settings.database_url
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    clock = _clock(speed)

    async def body() -> None:
        async with SimulatedFleet(f, clock, seed=seed):
            log.info("simulating %d stations (seed %d, speed ×%g)", len(f.stations), seed, speed)
            await _run_system(f, url, clock, collect=True, api=(host, port))

    with contextlib.suppress(KeyboardInterrupt), _demo_broker(f):
        asyncio.run(body())


@contextlib.contextmanager
def _demo_broker(f: Fleet):
    """A fleet with MQTT devices needs a broker: use the configured one if it answers, else start a
    private Mosquitto on a free loopback port for the demo."""
    from pumpwatch import mosquitto

    if f.mqtt is None or not f.mqtt_controllers() or mosquitto.reachable(f.mqtt.host, f.mqtt.port):
        yield
        return
    binary = mosquitto.find_mosquitto()
    if binary is None:
        click.echo(
            f"pumpwatch: fleet {f.name!r} has MQTT devices, no broker answers at "
            f"{f.mqtt.host}:{f.mqtt.port}, and mosquitto is not installed (apt-get install mosquitto)",
            err=True,
        )
        sys.exit(2)
    with mosquitto.private_broker(binary) as port:
        log.info("started a private mosquitto on 127.0.0.1:%d for the demo", port)
        f.mqtt = f.mqtt.model_copy(update={"host": "127.0.0.1", "port": port})
        yield


@main.command()
@fleet_option
@db_option
@click.option("--api/--no-api", default=True, help="serve the API in this process")
@click.option("--collect/--no-collect", default=True, help="poll the field devices in this process")
@click.option("--api-host", default=None)
@click.option("--api-port", type=int, default=None)
@click.option(
    "--shard", default=None, help="I/N or ordinal/N: poll only this shard's stations (env PUMPWATCH_SHARD)"
)
@click.option("--spool-dir", type=click.Path(path_type=Path), default=None, help="default var/spool")
@click.option("--probe-port", type=int, default=None, help="with --no-api: serve /healthz /readyz /metrics")
@click.option("--probe-host", default="0.0.0.0", show_default=True)
def run(
    fleet: Path | None,
    database_url: str | None,
    api: bool,
    collect: bool,
    api_host: str | None,
    api_port: int | None,
    shard: str | None,
    spool_dir: Path | None,
    probe_port: int | None,
    probe_host: str,
) -> None:
    """Run against real devices: collector, alarms and/or API."""
    from pumpwatch.sharding import parse_shard

    settings = Settings()
    _setup_logging(settings.log_level)
    if not (api or collect):
        raise click.UsageError("nothing to run: give --api or --collect")
    shard = shard or settings.shard
    if shard:
        try:
            parse_shard(shard)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--shard") from None
    f = _load(fleet or settings.fleet)
    host, port = api_host or settings.api_host, api_port or settings.api_port
    if api:
        _loopback_only(host)
    probe_port = probe_port or settings.probe_port
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            _run_system(
                f,
                database_url or settings.database_url,
                SystemClock(),
                collect=collect,
                api=(host, port) if api else None,
                spool_dir=spool_dir or settings.spool_dir,
                spool_capacity_mb=settings.spool_capacity_mb,
                shard=shard,
                probe=(probe_host, probe_port) if probe_port and not api else None,
            )
        )


if __name__ == "__main__":
    main()
