"""`pumpwatch demo` (everything on simulated stations, loopback only) and `pumpwatch simulate`."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

import click

from pumpwatch.app import mosquitto
from pumpwatch.app.cli.common import (
    clock_for,
    db_option,
    fleet_option,
    load_or_exit,
    log,
    setup_logging,
    until_signal,
)
from pumpwatch.app.cli.run import run_system
from pumpwatch.app.policy import demo_host_problem
from pumpwatch.core.config import ConfigError, Fleet
from pumpwatch.core.config.scenario import load_scenario
from pumpwatch.core.settings import Settings
from pumpwatch.simulators.fleet import SimulatedFleet


def _loopback_only(host: str) -> None:
    try:
        problem = demo_host_problem(host)
    except ValueError as exc:  # the host does not resolve
        raise click.BadParameter(str(exc), param_hint="--api-host") from None
    if problem:
        raise click.BadParameter(problem, param_hint="--api-host")


@click.command()
@fleet_option
@click.option("--seed", default=7, show_default=True, help="random seed of the simulation")
@click.option("--speed", default=1.0, show_default=True, help="simulated seconds per real second")
def simulate(fleet: Path | None, seed: int, speed: float) -> None:
    """Serve a fleet's simulated stations over Modbus TCP until Ctrl-C."""
    settings = Settings()
    setup_logging(settings.log_level)
    f = load_or_exit(fleet or settings.fleet)

    async def body() -> None:
        async with SimulatedFleet(f, clock_for(speed), seed=seed):
            log.info("simulating %d stations; Ctrl-C stops", len(f.stations))
            await until_signal()

    asyncio.run(body())


@click.command()
@fleet_option
@db_option
@click.option("--api-host", default=None, help="default 127.0.0.1")
@click.option("--api-port", type=int, default=None, help="default 8000")
@click.option("--seed", default=7, show_default=True)
@click.option("--speed", default=1.0, show_default=True, help="simulated seconds per real second")
@click.option(
    "--scenario",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="run this drill (deploy/config/scenarios/*.yaml) once everything is up",
)
@click.option(
    "--backfill-hours",
    default=24.0,
    show_default=True,
    help="simulate this much of the past into the historian first (0: none)",
)
def demo(
    fleet: Path | None,
    database_url: str | None,
    api_host: str | None,
    api_port: int | None,
    seed: int,
    speed: float,
    scenario: Path | None,
    backfill_hours: float,
) -> None:
    """Everything in one process on simulated stations: simulator, collector, alarms, API (SQLite)."""
    settings = Settings()
    setup_logging(settings.log_level)
    f = load_or_exit(fleet or settings.fleet)
    if scenario is not None:
        try:
            load_scenario(scenario, f)  # every problem now, before anything starts
        except ConfigError as exc:
            raise click.ClickException(f"drill {scenario}: {exc}") from None
    host, port = api_host or settings.api_host, api_port or settings.api_port
    _loopback_only(host)
    url = database_url or settings.database_url
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    clock = clock_for(speed)

    async def body() -> None:
        async with SimulatedFleet(f, clock, seed=seed) as sim:
            log.info("simulating %d stations (seed %d, speed ×%g)", len(f.stations), seed, speed)
            n_mqtt = len(f.mqtt_controllers())
            if n_mqtt and f.mqtt is not None:
                log.info(
                    "%d MQTT devices (JSON and Sparkplug B) publish to %s:%d",
                    n_mqtt,
                    f.mqtt.host,
                    f.mqtt.port,
                )
            else:
                log.info("every station over Modbus TCP (no MQTT device in fleet %s)", f.name)
            await run_system(
                f,
                url,
                clock,
                collect=True,
                api=(host, port),
                settings=settings,
                demo=True,
                sim=sim,
                scenario=scenario,
                backfill_hours=backfill_hours,
                seed=seed,
            )

    with contextlib.suppress(KeyboardInterrupt), demo_broker(f):
        asyncio.run(body())


@contextlib.contextmanager
def demo_broker(f: Fleet):
    """A fleet with MQTT devices needs a broker: use the configured one if it answers, else start a
    private Mosquitto on a free loopback port for the demo."""
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
