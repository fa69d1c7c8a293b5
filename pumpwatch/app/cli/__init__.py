"""The `pumpwatch` command line: demo, run, simulate, migrate, check-config, user."""

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

from pumpwatch.api.auth.config import auth_config
from pumpwatch.api.webconfig import web_config
from pumpwatch.core.clock import Clock, ScaledClock, SystemClock
from pumpwatch.core.config import ConfigError, Fleet, load_fleet
from pumpwatch.core.settings import Settings

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


def _is_loopback(host: str) -> bool:
    try:
        addrs = {ai[4][0] for ai in socket.getaddrinfo(host, None)}
    except socket.gaierror:
        raise click.BadParameter(f"cannot resolve {host!r}", param_hint="--api-host") from None
    return all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addrs)


def _loopback_only(host: str) -> None:
    """The demo has well-known users and secret: it serves this machine only."""
    if not _is_loopback(host):
        raise click.BadParameter(
            f"{host} is not a loopback address: the demo's users and secret are public, so it refuses to "
            "listen beyond this machine (use `pumpwatch run` with your own users, secret and TLS)",
            param_hint="--api-host",
        )


def exposure_problems(settings: Settings, host: str) -> list[str]:
    """Why the API must not listen on `host` (empty: it may): beyond loopback it needs TLS. The secret and
    demo users are refused whatever the host (`Settings.unsafe_problems`)."""
    if _is_loopback(host):
        return []
    if not (settings.api_ssl_certfile and settings.api_ssl_keyfile) and not settings.api_behind_tls_proxy:
        return [
            "no TLS: set PUMPWATCH_API_SSL_CERTFILE and PUMPWATCH_API_SSL_KEYFILE "
            "(or PUMPWATCH_API_BEHIND_TLS_PROXY=true behind a TLS-terminating proxy on this host)"
        ]
    return []


def _check_auth_settings(settings: Settings) -> None:
    try:
        auth_config(settings)
    except ValueError as exc:
        raise click.ClickException(f"PUMPWATCH_MFA_ROLES: {exc}") from None


def _refuse_unsafe_secret(settings: Settings, what: str) -> None:
    """Outside the demo a process that signs sessions or ack links never starts with a public secret."""
    problems = settings.secret_problems()
    if problems:
        raise click.ClickException(f"refusing to start {what}: " + "; ".join(problems))


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
@click.option("--per-station", is_flag=True, help="the coverage table of every station, not per station type")
def check_config(fleet: Path, per_station: bool) -> None:
    """Validate a fleet (and its alarm rules), print its safety coverage and a summary. Exit status: 0 OK,
    1 a safety function is neither armed nor waived (or a waiver is stale), 2 invalid configuration."""
    from pumpwatch.alarms.analyzers.build import all_analyzers
    from pumpwatch.alarms.coverage import check_fleet, format_station, format_summary

    f = _load(fleet)
    try:
        rules, coverage = check_fleet(f, all_analyzers(f))
    except ConfigError as exc:
        click.echo(f"pumpwatch: {exc}", err=True)
        sys.exit(2)
    oncall = None
    if f.oncall:
        from pumpwatch.alarms.notify.config import load_oncall

        try:
            oncall = load_oncall(f.oncall, f)
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
    from pumpwatch.alarms.rules import default_system_rules
    from pumpwatch.alarms.system_monitor import HISTORIAN, SYSTEM_KIND

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


@main.command()
@db_option
def migrate(database_url: str | None) -> None:
    """Create or upgrade the database schema."""
    from pumpwatch.core.db.engine import make_engine
    from pumpwatch.core.db.migrate import upgrade

    settings = Settings()
    _setup_logging(settings.log_level)
    engine = make_engine(database_url or settings.database_url)
    upgrade(engine)
    click.echo("database is at the latest schema")
    from pumpwatch.app.system import historian_setup

    features = historian_setup(engine)  # TimescaleDB where the server offers it (every start does it too)
    if features.shape == "timescaledb":
        click.echo(f"TimescaleDB {features.version}: {', '.join(features.present)}")
    for line in features.problems:
        click.echo(line, err=True)
    engine.dispose()


@main.command()
@fleet_option
@click.option("--seed", default=7, show_default=True, help="random seed of the simulation")
@click.option("--speed", default=1.0, show_default=True, help="simulated seconds per real second")
def simulate(fleet: Path | None, seed: int, speed: float) -> None:
    """Serve a fleet's simulated stations over Modbus TCP until Ctrl-C."""
    from pumpwatch.simulators.fleet import SimulatedFleet

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
    settings: Settings,
    demo: bool = False,
    notify: bool = True,
    spool_dir: Path | None = None,
    spool_capacity_mb: int = 4096,
    shard: str | None = None,
    probe: tuple[str, int] | None = None,
) -> None:
    from pumpwatch.api.auth.demo import seed_demo_users
    from pumpwatch.api.auth.users import demo_users_present
    from pumpwatch.app.serve import serve_api, serve_probes
    from pumpwatch.app.system import System
    from pumpwatch.core.sharding import parse_shard

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
    if shard:
        system.shard = parse_shard(shard)
        if spool_dir is not None:
            spool_dir = spool_dir / f"shard-{system.shard.index}"
    system.spool_dir = spool_dir
    system.heartbeat_interval_s = settings.heartbeat_interval_s
    system.dead_letter_keep = settings.dead_letter_keep
    system.spool_capacity_bytes = spool_capacity_mb * 1024**2
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
            problems = settings.unsafe_problems(demo=demo, demo_users=present)
            problems += exposure_problems(settings, api[0])
            if problems:
                raise click.ClickException(f"refusing to serve the API on {api[0]}: " + "; ".join(problems))
            try:
                web = web_config(settings)
            except ValueError as exc:
                raise click.ClickException(f"refusing to serve the API: {exc}") from None
        if collect:
            await system.start_collecting()
        if notify and system.notifier is not None:
            system.start_notifying()
            log.info("on-call notification running (%s)", f.oncall)
        if collect and system.shard is not None:
            log.info("shard %s: %d stations", system.shard, system.station_count())
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
    from pumpwatch.simulators.fleet import SimulatedFleet

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
            await _run_system(f, url, clock, collect=True, api=(host, port), settings=settings, demo=True)

    with contextlib.suppress(KeyboardInterrupt), _demo_broker(f):
        asyncio.run(body())


@contextlib.contextmanager
def _demo_broker(f: Fleet):
    """A fleet with MQTT devices needs a broker: use the configured one if it answers, else start a
    private Mosquitto on a free loopback port for the demo."""
    from pumpwatch.app import mosquitto

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
@click.option("--notify/--no-notify", default=True, help="run the on-call notifier in this process")
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
    notify: bool,
    api_host: str | None,
    api_port: int | None,
    shard: str | None,
    spool_dir: Path | None,
    probe_port: int | None,
    probe_host: str,
) -> None:
    """Run against real devices: collector, alarms and/or API."""
    from pumpwatch.core.sharding import parse_shard

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
    if api or (notify and f.oncall is not None):
        _refuse_unsafe_secret(settings, "the API" if api else "the notifier (it signs the ack links)")
    _check_auth_settings(settings)
    host, port = api_host or settings.api_host, api_port or settings.api_port
    probe_port = probe_port or settings.probe_port
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            _run_system(
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
            )
        )


@main.group()
def notify() -> None:
    """On-call notification: run the notifier alone, send a test message."""


async def _notifier(f: Fleet, database_url: str, clock: Clock):  # type: ignore[no-untyped-def]
    from pumpwatch.app.system import System

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
    _setup_logging(settings.log_level)
    _refuse_unsafe_secret(settings, "the notifier (it signs the ack links)")
    f = _load(fleet or settings.fleet)

    async def body() -> None:
        system = await _notifier(f, database_url or settings.database_url, SystemClock())
        system.start_notifying()
        log.info("notifier running (%s); Ctrl-C stops", f.oncall)
        try:
            await _until_signal()
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
    from pumpwatch.alarms.notify import queries

    settings = Settings()
    _setup_logging(settings.log_level)
    f = _load(fleet or settings.fleet)

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


@main.command("mqtt-credentials")
@click.argument("fleet", type=click.Path(path_type=Path))
@click.argument("outdir", type=click.Path(path_type=Path))
def mqtt_credentials(fleet: Path, outdir: Path) -> None:
    """Per-device MQTT passwords and topic ACLs for Mosquitto (deploy/mosquitto/mosquitto.conf)."""
    from pumpwatch.app.mqtt_acl import write_credentials

    f = _load(fleet)
    made = write_credentials(f, outdir)
    click.echo(f"{len(made)} accounts: {outdir / 'acl'}, {outdir / 'passwd'}, {outdir / 'credentials.txt'}")


# --- users ------------------------------------------------------------------------------------------------


def _engine(database_url: str | None):
    from pumpwatch.core.db.engine import make_engine
    from pumpwatch.core.db.migrate import upgrade

    engine = make_engine(database_url or Settings().database_url)
    upgrade(engine)
    _warn_demo_users(engine)
    return engine


def _cli_audit(action: str, target: str, tenant: str | None = None):
    import getpass
    from datetime import UTC, datetime

    from pumpwatch.core.audit import Audit

    return Audit(
        at=datetime.now(UTC),
        action=action,
        username=f"cli:{getpass.getuser()}",
        tenant_id=tenant,
        target=f"user:{target}",
    )


def _read_password() -> str:
    if sys.stdin.isatty():
        first = click.prompt("password", hide_input=True, confirmation_prompt=True)
        return first
    line = sys.stdin.readline().rstrip("\n")
    if not line:
        raise click.UsageError("give the password on standard input")
    return line


def _user_errors(fn):
    import functools

    @functools.wraps(fn)
    def wrapper(*a, **kw):
        from pumpwatch.api.auth.users import UserError

        try:
            return fn(*a, **kw)
        except (UserError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


@main.group()
def user() -> None:
    """Accounts: add, list, grant, revoke, disable, enable, passwd, unlock, mfa-reset (every change is
    audited). Each says so when demo users with the public password are enabled in this database."""


def _warn_demo_users(engine) -> None:  # type: ignore[no-untyped-def]
    from pumpwatch.api.auth.users import demo_users_present

    present = demo_users_present(engine)
    if present:
        click.echo(
            f"pumpwatch: WARNING: demo users with the public password are enabled here "
            f"({', '.join(sorted(present))}); `pumpwatch run` refuses to serve the API until each is "
            "disabled (`pumpwatch user disable NAME`) or has a password of its own "
            "(`pumpwatch user passwd NAME`)",
            err=True,
        )


@user.command("add")
@click.argument("name")
@click.option("--grant", "grants", multiple=True, help="TENANT:ROLE (repeatable), e.g. kita:operator")
@click.option("--display-name", default=None)
@click.option("--locale", default="ja", show_default=True)
@db_option
@_user_errors
def user_add(name: str, grants: tuple[str, ...], display_name, locale: str, database_url) -> None:
    """Create user NAME; the password is read from standard input."""
    from pumpwatch.api.auth.roles import parse_grant
    from pumpwatch.api.auth.users import create_user

    parsed = [parse_grant(g) for g in grants]
    engine = _engine(database_url)
    create_user(
        engine,
        name,
        _read_password(),
        parsed,
        display_name=display_name,
        locale=locale,
        audit=_cli_audit("user.create", name, parsed[0][0] if parsed else None),
    )
    click.echo(f"user {name} created" + (f" with {', '.join(grants)}" if grants else " (no grants yet)"))


@user.command("list")
@db_option
def user_list(database_url) -> None:
    from pumpwatch.api.auth.users import list_users

    for u in list_users(_engine(database_url)):
        grants = " ".join(f"{g['tenant']}:{g['role']}" for g in u["grants"]) or "-"
        flags = "".join([" (disabled)" if u["disabled"] else "", " (demo)" if u["demo"] else ""])
        click.echo(f"{u['username']}\t{grants}{flags}")


@user.command("grant")
@click.argument("name")
@click.argument("grant")
@db_option
@_user_errors
def user_grant(name: str, grant: str, database_url) -> None:
    """Give NAME a role in a tenant: pumpwatch user grant tanaka kita:operator"""
    from pumpwatch.api.auth.roles import parse_grant
    from pumpwatch.api.auth.users import set_grant

    tenant, role = parse_grant(grant)
    set_grant(_engine(database_url), name, tenant, role, audit=_cli_audit("user.grant", name, tenant))
    click.echo(f"{name} is {role} in {tenant}")


@user.command("revoke")
@click.argument("name")
@click.argument("tenant")
@db_option
@_user_errors
def user_revoke(name: str, tenant: str, database_url) -> None:
    """Take TENANT away from NAME (their sessions end)."""
    from pumpwatch.api.auth.users import revoke_sessions, set_grant

    engine = _engine(database_url)
    set_grant(engine, name, tenant, None, audit=_cli_audit("user.revoke", name, tenant))
    revoke_sessions(engine, name, reason="grant revoked")
    click.echo(f"{name} has no grant in {tenant}")


@user.command("disable")
@click.argument("name")
@db_option
@_user_errors
def user_disable(name: str, database_url) -> None:
    """Disable NAME: no login, every session ends."""
    from pumpwatch.api.auth.users import set_disabled

    set_disabled(_engine(database_url), name, True, audit=_cli_audit("user.disable", name))
    click.echo(f"{name} disabled")


@user.command("enable")
@click.argument("name")
@db_option
@_user_errors
def user_enable(name: str, database_url) -> None:
    """Enable NAME again (also lifts a sign-in backoff). A demo user needs a password of its own first."""
    from pumpwatch.api.auth.users import set_disabled

    set_disabled(_engine(database_url), name, False, audit=_cli_audit("user.enable", name))
    click.echo(f"{name} enabled")


@user.command("unlock")
@click.argument("name")
@db_option
@_user_errors
def user_unlock(name: str, database_url) -> None:
    """Lift NAME's sign-in backoff after repeated failures (check with them first: it may be an attack)."""
    from pumpwatch.api.auth.users import unlock

    n = unlock(_engine(database_url), name, audit=_cli_audit("user.unlock", name))
    click.echo(f"{name} unlocked ({n} failures forgotten)")


@user.command("mfa-reset")
@click.argument("name")
@db_option
@_user_errors
def user_mfa_reset(name: str, database_url) -> None:
    """Forget NAME's second factor and recovery codes (a lost phone): their sessions end, and they set up a
    new one at the next sign-in. For the centre's administrators, who hold this command line."""
    from pumpwatch.api.auth.users import reset_mfa

    had = reset_mfa(_engine(database_url), name, audit=_cli_audit("user.mfa_reset", name))
    click.echo(f"second factor of {name} reset" if had else f"{name} had no second factor; sessions ended")


@user.command("passwd")
@click.argument("name")
@db_option
@_user_errors
def user_passwd(name: str, database_url) -> None:
    """Set NAME's password from standard input (every session of theirs ends)."""
    from pumpwatch.api.auth.users import set_password

    set_password(_engine(database_url), name, _read_password(), audit=_cli_audit("user.password", name))
    click.echo(f"password of {name} changed")


if __name__ == "__main__":
    main()
