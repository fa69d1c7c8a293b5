"""Setting a site up: `pumpwatch migrate` (the schema, TimescaleDB where offered), `mqtt-credentials`."""

from __future__ import annotations

from pathlib import Path

import click

from pumpwatch.app.cli.common import db_option, load_or_exit, setup_logging
from pumpwatch.app.mqtt_acl import write_credentials
from pumpwatch.app.system import historian_setup
from pumpwatch.core.db.engine import make_engine
from pumpwatch.core.db.migrate import upgrade
from pumpwatch.core.settings import Settings


@click.command()
@db_option
def migrate(database_url: str | None) -> None:
    """Create or upgrade the database schema."""
    settings = Settings()
    setup_logging(settings.log_level)
    engine = make_engine(database_url or settings.database_url)
    upgrade(engine)
    click.echo("database is at the latest schema")
    features = historian_setup(engine)  # TimescaleDB where the server offers it (every start does it too)
    if features.shape == "timescaledb":
        click.echo(f"TimescaleDB {features.version}: {', '.join(features.present)}")
    for line in features.problems:
        click.echo(line, err=True)
    engine.dispose()


@click.command("mqtt-credentials")
@click.argument("fleet", type=click.Path(path_type=Path))
@click.argument("outdir", type=click.Path(path_type=Path))
def mqtt_credentials(fleet: Path, outdir: Path) -> None:
    """Per-device MQTT passwords and topic ACLs for Mosquitto (deploy/mosquitto/mosquitto.conf)."""
    f = load_or_exit(fleet)
    made = write_credentials(f, outdir)
    click.echo(f"{len(made)} accounts: {outdir / 'acl'}, {outdir / 'passwd'}, {outdir / 'credentials.txt'}")
