"""`pumpwatch drill check | run | stop | report`: drills against a running simulated fleet (`pumpwatch
demo`), through its API, as a user with the trainer role (or higher) in the drill's tenant.

    pumpwatch drill check deploy/config/scenarios/typhoon.yaml --fleet deploy/config/demo/full
    pumpwatch drill run deploy/config/scenarios/typhoon.yaml --user trainer   # password: prompt or env
    pumpwatch drill report 3 --user trainer

The password comes from PUMPWATCH_DRILL_PASSWORD or a prompt (never an option: it would be in the shell's
history and the process list).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import click
import httpx

from pumpwatch.app.cli.common import fleet_option, load_or_exit
from pumpwatch.core.config import ConfigError
from pumpwatch.core.config.scenario import load_scenario
from pumpwatch.core.settings import Settings

__all__ = ["drill"]


@click.group()
def drill() -> None:
    """Drills: scenario files played on a simulated fleet (deploy/config/scenarios/)."""


@drill.command("check")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@fleet_option
def check(file: Path, fleet: Path | None) -> None:
    """Validate a scenario file against a fleet (every problem as file:line key: why)."""
    f = load_or_exit(fleet or Settings().fleet)
    try:
        s = load_scenario(file, f)
    except ConfigError as exc:
        click.echo(f"pumpwatch: {exc}", err=True)
        sys.exit(2)
    click.echo(
        f"scenario {s.name!r} ({s.title}): {len(s.events)} events over {s.length}, tenant {s.tenant}: OK"
    )


def _url_option(fn):
    return click.option(
        "--url", default="http://127.0.0.1:8000", show_default=True, help="the running demo's API"
    )(fn)


def _user_option(fn):
    return click.option("--user", "username", required=True, help="a user with the trainer role or higher")(
        fn
    )


def _session(url: str, username: str) -> httpx.Client:
    password = os.environ.get("PUMPWATCH_DRILL_PASSWORD") or click.prompt(
        f"password for {username}", hide_input=True
    )
    client = httpx.Client(base_url=url, timeout=30.0, headers={"X-Pumpwatch-CSRF": "1"})
    try:
        r = client.post("/api/v1/auth/login", json={"username": username, "password": password})
    except httpx.HTTPError as exc:
        raise click.ClickException(f"no API answers at {url}: {exc} (is `pumpwatch demo` running?)") from None
    if r.status_code != 200:
        raise click.ClickException(f"login as {username} refused: {_detail(r)}")
    if r.json().get("mfa", {}).get("step") == "verify":
        raise click.ClickException(f"{username} needs a second factor: use a trainer account without one")
    client.headers["Authorization"] = f"Bearer {r.json()['token']}"
    client.cookies.clear()
    return client


def _detail(r: httpx.Response) -> str:
    try:
        body: Any = r.json()
    except ValueError:
        return f"HTTP {r.status_code}"
    if isinstance(body, dict) and body.get("problems"):
        return f"{body.get('detail')}:\n  " + "\n  ".join(body["problems"])
    return f"HTTP {r.status_code}: {body.get('detail') if isinstance(body, dict) else body}"


@drill.command("run")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_url_option
@_user_option
def run(file: Path, url: str, username: str) -> None:
    """Start the drill in FILE on the running demo; prints its id."""
    text = file.read_text(encoding="utf-8")
    with contextlib.closing(_session(url, username)) as client:
        r = client.post("/api/v1/drills", json={"scenario": text})
        if r.status_code != 201:
            raise click.ClickException(f"drill {file} not started: {_detail(r)}")
        d = r.json()
    click.echo(f"drill {d['id']} running: {d['title']} (tenant {d['tenant']}, until {d['ends_at']})")


@drill.command("stop")
@click.argument("drill_id", type=int)
@_url_option
@_user_option
def stop(drill_id: int, url: str, username: str) -> None:
    """Stop a running drill now (its faults are put right)."""
    with contextlib.closing(_session(url, username)) as client:
        r = client.post(f"/api/v1/drills/{drill_id}/stop")
        if r.status_code != 200:
            raise click.ClickException(f"drill {drill_id} not stopped: {_detail(r)}")
    click.echo(f"drill {drill_id} stopped")


@drill.command("report")
@click.argument("drill_id", type=int)
@_url_option
@_user_option
def report(drill_id: int, url: str, username: str) -> None:
    """The drill's report as JSON."""
    with contextlib.closing(_session(url, username)) as client:
        r = client.get(f"/api/v1/drills/{drill_id}/report")
        if r.status_code != 200:
            raise click.ClickException(f"no report for drill {drill_id}: {_detail(r)}")
    click.echo(json.dumps(r.json(), indent=2, ensure_ascii=False))
