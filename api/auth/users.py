"""User accounts and their grants: create, grant, revoke, disable, change password, list.

A user is a named person (no shared accounts); `grants` maps tenant → role. Names are unique whatever their
case and are looked up without it (`Tanaka` signs in as `tanaka`). Changing a password or disabling a user
revokes every session of that user; taking one tenant's grant away changes nothing in the user's other
tenants (their sessions go on, without that tenant, from the next request). Each change writes its audit
records in the same transaction when an `Audit` is given (the command line and the API give one): one
record per tenant concerned, naming only that tenant's grant, so an admin of one tenant reads nothing of
another tenant's grants of a shared user.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, text, update
from sqlalchemy.engine import Connection

from pumpwatch.api.auth import passwords
from pumpwatch.api.auth.roles import RANK, rank
from pumpwatch.core.audit import Audit, write_optional
from pumpwatch.core.db.schema_security import app_user, user_grant, user_session

USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")


class UserError(ValueError):
    """A user change that cannot be done: `status` is the HTTP status it maps to."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class User:
    """The authenticated principal of a request."""

    id: int
    username: str
    display_name: str | None
    locale: str
    grants: dict[str, str] = field(default_factory=dict)  # tenant -> role, in force for this session
    session_id: int | None = None
    expires_at: datetime | None = None
    # Grants that need a second factor this session has not given yet (api.auth.mfa): not in `grants`
    withheld: dict[str, str] = field(default_factory=dict)
    second_factor: str | None = None  # "totp" | "recovery" | None (password only)
    mfa_enrolled: bool = False
    mfa_exempt: str | None = None  # "demo": a demo user in `pumpwatch demo`

    @property
    def mfa_step(self) -> str | None:
        """What this session still has to do: "verify" (give a code), "enrol" (set one up), or None."""
        if not self.withheld:
            return None
        return "verify" if self.mfa_enrolled else "enrol"

    @property
    def tenants(self) -> frozenset[str]:
        return frozenset(self.grants)

    def can(self, role: str, tenant: str) -> bool:
        held = self.grants.get(tenant)
        return held is not None and RANK[held] >= rank(role)

    def tenants_with(self, role: str) -> frozenset[str]:
        return frozenset(t for t, r in self.grants.items() if RANK[r] >= rank(role))

    @property
    def highest(self) -> int:
        return max((RANK[r] for r in self.grants.values()), default=-1)

    def public(self) -> dict[str, Any]:
        return {
            "username": self.username,
            "display_name": self.display_name,
            "locale": self.locale,
            "grants": [{"tenant": t, "role": r} for t, r in sorted(self.grants.items())],
        }

    def mfa_public(self) -> dict[str, Any]:
        return {
            "step": self.mfa_step,
            "enrolled": self.mfa_enrolled,
            "second_factor": self.second_factor,
            "exempt": self.mfa_exempt,
            "withheld": [{"tenant": t, "role": r} for t, r in sorted(self.withheld.items())],
        }


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def by_name(username: str):
    """The condition "this is user `username`", whatever the case."""
    return func.lower(app_user.c.username) == username.lower()


def _user_id(conn: Connection, username: str) -> int:
    uid = conn.execute(select(app_user.c.id).where(by_name(username))).scalar()
    if uid is None:
        raise UserError(404, f"no user {username!r}")
    return uid


def _per_tenant(
    audit: Audit | None, conn: Connection, tenants: Iterable[str], result: str = "ok", **changes: Any
) -> None:
    """One record per tenant concerned (none: one record without a tenant)."""
    if audit is None:
        return
    ts: list[str | None] = [*sorted(set(tenants))]
    for t in ts or [None]:
        audit.but(tenant_id=t).write(conn, result, **changes)


def _check_grants(grants: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    out = []
    for tenant, role in grants:
        rank(role)
        if not tenant:
            raise UserError(422, "a grant needs a tenant")
        out.append((tenant, role))
    return out


def grants_of(conn: Connection, user_id: int) -> dict[str, str]:
    rows = conn.execute(
        select(user_grant.c.tenant_id, user_grant.c.role).where(user_grant.c.user_id == user_id)
    )
    return {t: r for t, r in rows}


def create_user(
    engine: Engine,
    username: str,
    password: str,
    grants: Iterable[tuple[str, str]] = (),
    display_name: str | None = None,
    locale: str = "ja",
    *,
    demo: bool = False,
    now: datetime | None = None,
    audit: Audit | None = None,
) -> int:
    """Create a user; returns its id. Raises UserError (409 if the name is taken in any case, 422 if
    invalid or the password is too easy to guess). `demo` users keep the public demo password."""
    if not USERNAME.match(username):
        raise UserError(422, "username: letters, digits and . _ @ - only, at most 100")
    try:
        checked = _check_grants(grants)
        hashed = passwords.hash_password(
            password, [username, display_name or "", *(t for t, _ in checked)], policy=not demo
        )
    except ValueError as exc:
        raise UserError(422, str(exc)) from None
    at = _now(now)
    with engine.begin() as conn:
        if conn.execute(select(app_user.c.id).where(by_name(username))).first():
            raise UserError(409, "this username is taken: choose another")
        uid = conn.execute(
            insert(app_user)
            .values(
                username=username,
                display_name=display_name,
                locale=locale,
                password_hash=hashed,
                disabled=False,
                demo=demo,
                created_at=at,
                password_changed_at=at,
            )
            .returning(app_user.c.id)
        ).scalar_one()
        for tenant, role in checked:
            conn.execute(insert(user_grant).values(user_id=uid, tenant_id=tenant, role=role))
        if audit is not None and not checked:
            audit.write(conn, new_value="no grants")
        for tenant, role in checked:
            write_optional(audit.but(tenant_id=tenant) if audit else None, conn, new_value=f"{tenant}:{role}")
        return uid


def set_grant(
    engine: Engine, username: str, tenant: str, role: str | None, *, audit: Audit | None = None
) -> dict[str, str]:
    """Give `username` `role` in `tenant` (None: take the tenant away). Returns the user's grants. Nothing
    else of the user changes: their sessions go on with their other tenants."""
    if role is not None:
        try:
            rank(role)
        except ValueError as exc:
            raise UserError(422, str(exc)) from None
    with engine.begin() as conn:
        uid = _user_id(conn, username)
        old = grants_of(conn, uid).get(tenant)
        if role is None and old is None:
            raise UserError(404, f"user {username!r} has no grant for {tenant!r}")
        conn.execute(delete(user_grant).where(user_grant.c.user_id == uid, user_grant.c.tenant_id == tenant))
        if role is not None:
            conn.execute(insert(user_grant).values(user_id=uid, tenant_id=tenant, role=role))
        write_optional(audit, conn, old_value=old, new_value=role)
        return grants_of(conn, uid)


def set_disabled(
    engine: Engine,
    username: str,
    disabled: bool,
    *,
    now: datetime | None = None,
    audit: Audit | None = None,
    demo_mode: bool = False,
) -> None:
    """Disable (every session revoked at once) or enable a user; enabling also lifts a login lockout."""
    from pumpwatch.api.auth import throttle

    at = _now(now)
    with engine.begin() as conn:
        uid = _user_id(conn, username)
        old, demo = conn.execute(
            select(app_user.c.disabled, app_user.c.demo).where(app_user.c.id == uid)
        ).one()
        if demo and not disabled and not demo_mode:
            raise UserError(
                409,
                f"{username} is a demo user with the public password: give it a password of its own first",
            )
        conn.execute(update(app_user).where(app_user.c.id == uid).values(disabled=disabled))
        if disabled:
            _revoke_all(conn, uid, at, "user disabled")
        else:
            throttle.clear(conn, username)
        _per_tenant(
            audit,
            conn,
            grants_of(conn, uid),
            old_value="disabled" if old else "enabled",
            new_value="disabled" if disabled else "enabled",
        )


def set_password(
    engine: Engine, username: str, password: str, *, now: datetime | None = None, audit: Audit | None = None
) -> None:
    """Change a password (it must pass the policy); every session of the user is revoked (log in again).
    A demo user given a password of its own is no longer a demo user."""
    at = _now(now)
    with engine.connect() as conn:
        row = conn.execute(
            select(app_user.c.username, app_user.c.display_name).where(by_name(username))
        ).first()
    if row is None:
        raise UserError(404, f"no user {username!r}")
    try:
        hashed = passwords.hash_password(password, [row.username, row.display_name or ""])
    except ValueError as exc:
        raise UserError(422, str(exc)) from None
    with engine.begin() as conn:
        uid = _user_id(conn, username)
        conn.execute(
            update(app_user)
            .where(app_user.c.id == uid)
            .values(password_hash=hashed, password_changed_at=at, demo=False)
        )
        _revoke_all(conn, uid, at, "password changed")
        _per_tenant(audit, conn, grants_of(conn, uid))


def revoke_sessions(
    engine: Engine,
    username: str,
    *,
    now: datetime | None = None,
    reason: str = "revoked by an admin",
    audit: Audit | None = None,
) -> int:
    at = _now(now)
    with engine.begin() as conn:
        uid = _user_id(conn, username)
        n = _revoke_all(conn, uid, at, reason)
        _per_tenant(audit, conn, grants_of(conn, uid), new_value=f"{n} sessions revoked")
        return n


def unlock(
    engine: Engine, username: str, *, audit: Audit | None = None, tenants: Iterable[str] | None = None
) -> int:
    """Lift every sign-in backoff of the user (an admin's call after checking with them); returns how many
    failures were forgotten. Recorded in the user's tenants (`tenants`: only those, the admin's own)."""
    from pumpwatch.api.auth import throttle

    with engine.begin() as conn:
        uid = _user_id(conn, username)
        n = throttle.clear(conn, username)
        held = set(grants_of(conn, uid))
        _per_tenant(
            audit,
            conn,
            held & set(tenants) if tenants is not None else held,
            new_value=f"{n} failures forgotten",
        )
        return n


def reset_mfa(
    engine: Engine, username: str, *, now: datetime | None = None, audit: Audit | None = None
) -> bool:
    """Forget the user's second factor and recovery codes (a lost phone); their sessions end and they enrol
    again at the next sign-in. True if they had one."""
    from pumpwatch.api.auth import mfa

    at = _now(now)
    with engine.begin() as conn:
        uid = _user_id(conn, username)
        had = mfa.reset(conn, uid)
        _revoke_all(conn, uid, at, "second factor reset")
        _per_tenant(
            audit, conn, grants_of(conn, uid), old_value="enrolled" if had else "none", new_value="none"
        )
        return had


def _revoke_all(conn: Connection, user_id: int, at: datetime, reason: str) -> int:
    res = conn.execute(
        update(user_session)
        .where(user_session.c.user_id == user_id, user_session.c.revoked_at.is_(None))
        .values(revoked_at=at, revoked_reason=reason)
    )
    return res.rowcount or 0


def list_users(
    engine: Engine,
    tenants: Iterable[str] | None = None,
    *,
    cfg: Any = None,
    now: datetime | None = None,
    grantless: bool = True,
) -> list[dict[str, Any]]:
    """Users with their grants; `tenants`: only users holding one of them, showing only those grants (and,
    with `grantless`, the users holding none, for a centre admin). With `cfg`: until when each one's
    sign-in backs off (`locked_until`)."""
    from pumpwatch.api.auth import mfa, throttle

    only = set(tenants) if tenants is not None else None
    with engine.connect() as conn:
        users = conn.execute(select(app_user).order_by(app_user.c.username)).all()
        grants = conn.execute(select(user_grant)).all()
        held = {g.user_id for g in grants}
        locked = {
            u.id: throttle.lock_state(conn, cfg, u.username, _now(now)) for u in users if cfg is not None
        }
    by_user: dict[int, dict[str, str]] = {}
    for g in grants:
        if only is None or g.tenant_id in only:
            by_user.setdefault(g.user_id, {})[g.tenant_id] = g.role
    out = []
    for u in users:
        roles = by_user.get(u.id, {})
        if only is not None and not roles and not (grantless and u.id not in held):
            continue
        out.append(
            {
                "username": u.username,
                "display_name": u.display_name,
                "locale": u.locale,
                "disabled": u.disabled,
                "demo": u.demo,
                "grants": [{"tenant": t, "role": r} for t, r in sorted(roles.items())],
                "locked_until": locked.get(u.id),
                "mfa_enrolled": mfa.status(u)["enrolled"],
            }
        )
    return out


def tenants_of(engine: Engine, username: str) -> set[str] | None:
    """Every tenant `username` holds a grant in (None: no such user), even those row-level security hides
    from the asking connection (PostgreSQL: the SECURITY DEFINER function of migration 0004)."""
    with engine.connect() as conn:
        if conn.execute(select(app_user.c.id).where(by_name(username))).first() is None:
            return None
        if conn.dialect.name == "postgresql":
            rows = conn.execute(text("SELECT pumpwatch_user_tenants(:n)"), {"n": username}).scalars()
            return set(rows)
        uid = conn.execute(select(app_user.c.id).where(by_name(username))).scalar_one()
        return set(grants_of(conn, uid))


def demo_users_present(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(select(app_user.c.username).where(app_user.c.demo, ~app_user.c.disabled)).scalars()
        )
