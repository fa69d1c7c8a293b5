"""`pumpwatch user …`: accounts from the command line (every change audited as `cli:<login>`)."""

from __future__ import annotations

import functools
import getpass
import sys
from datetime import UTC, datetime

import click
from sqlalchemy import Engine

from pumpwatch.api.auth.roles import parse_grant
from pumpwatch.api.auth.users import (
    UserError,
    create_user,
    demo_users_present,
    list_users,
    reset_mfa,
    revoke_sessions,
    set_disabled,
    set_grant,
    set_password,
    unlock,
)
from pumpwatch.app.cli.common import db_option
from pumpwatch.core.audit import Audit
from pumpwatch.core.db.engine import make_engine
from pumpwatch.core.db.migrate import upgrade
from pumpwatch.core.settings import Settings


def _engine(database_url: str | None) -> Engine:
    engine = make_engine(database_url or Settings().database_url)
    upgrade(engine)
    _warn_demo_users(engine)
    return engine


def _cli_audit(action: str, target: str, tenant: str | None = None) -> Audit:
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
    @functools.wraps(fn)
    def wrapper(*a, **kw):
        try:
            return fn(*a, **kw)
        except (UserError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


@click.group()
def user() -> None:
    """Accounts: add, list, grant, revoke, disable, enable, passwd, unlock, mfa-reset (every change is
    audited). Each says so when demo users with the public password are enabled in this database."""


def _warn_demo_users(engine: Engine) -> None:
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
    set_disabled(_engine(database_url), name, True, audit=_cli_audit("user.disable", name))
    click.echo(f"{name} disabled")


@user.command("enable")
@click.argument("name")
@db_option
@_user_errors
def user_enable(name: str, database_url) -> None:
    """Enable NAME again (also lifts a sign-in backoff). A demo user needs a password of its own first."""
    set_disabled(_engine(database_url), name, False, audit=_cli_audit("user.enable", name))
    click.echo(f"{name} enabled")


@user.command("unlock")
@click.argument("name")
@db_option
@_user_errors
def user_unlock(name: str, database_url) -> None:
    """Lift NAME's sign-in backoff after repeated failures (check with them first: it may be an attack)."""
    n = unlock(_engine(database_url), name, audit=_cli_audit("user.unlock", name))
    click.echo(f"{name} unlocked ({n} failures forgotten)")


@user.command("mfa-reset")
@click.argument("name")
@db_option
@_user_errors
def user_mfa_reset(name: str, database_url) -> None:
    """Forget NAME's second factor and recovery codes (a lost phone): their sessions end, and they set up a
    new one at the next sign-in. For the centre's administrators, who hold this command line."""
    had = reset_mfa(_engine(database_url), name, audit=_cli_audit("user.mfa_reset", name))
    click.echo(f"second factor of {name} reset" if had else f"{name} had no second factor; sessions ended")


@user.command("passwd")
@click.argument("name")
@db_option
@_user_errors
def user_passwd(name: str, database_url) -> None:
    """Set NAME's password from standard input (every session of theirs ends)."""
    set_password(_engine(database_url), name, _read_password(), audit=_cli_audit("user.password", name))
    click.echo(f"password of {name} changed")
