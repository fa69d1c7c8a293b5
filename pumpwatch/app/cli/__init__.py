"""The `pumpwatch` command line: the click group and its commands, one module per job.

- `run.py`: `pumpwatch run` and the process lifecycle every command that runs the System shares;
- `demo.py`: `pumpwatch demo` (loopback only, a private Mosquitto when the fleet needs one; `--scenario`
  runs a drill), `simulate`;
- `drill.py`: `pumpwatch drill check | run | stop | report` (drills through a running demo's API);
- `checks.py`: `pumpwatch check-config`;
- `provision.py`: `pumpwatch migrate`, `mqtt-credentials`;
- `notify.py`: `pumpwatch notify run | test`;
- `users.py`: `pumpwatch user …`;
- `report.py`: `pumpwatch report`, `report-schedule` (operation reports, pumpwatch.reports);
- `common.py`: logging, loading a fleet, the clock, the shared options and refusals.

The exposure policy (who may serve the API where) is `pumpwatch/app/policy.py`.
"""

from __future__ import annotations

import click

from pumpwatch.app.cli.checks import check_config
from pumpwatch.app.cli.demo import demo, simulate
from pumpwatch.app.cli.drill import drill
from pumpwatch.app.cli.notify import notify
from pumpwatch.app.cli.provision import migrate, mqtt_credentials
from pumpwatch.app.cli.report import report, report_schedule
from pumpwatch.app.cli.run import run
from pumpwatch.app.cli.users import user

__all__ = ["main"]


@click.group()
@click.version_option(package_name="pumpwatch")
def main() -> None:
    """pumpwatch: monitoring for sewer pump stations, treatment plants and their controllers."""


for command in (
    check_config,
    migrate,
    simulate,
    demo,
    drill,
    run,
    notify,
    mqtt_credentials,
    user,
    report,
    report_schedule,
):
    main.add_command(command)
