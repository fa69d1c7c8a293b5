"""User accounts and their grants: create, grant, revoke, disable, change password, list.

A user is a named person (no shared accounts); `grants` maps tenant → role. Changing a password or disabling
a user revokes every session of that user. Each change writes its audit record in the same transaction
when an `Audit` is given (the command line and the API give one).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.engine import Connection

from api.auth import passwords
from api.auth.roles import RANK, rank
from pumpwatch.audit import Audit, write_optional
from pumpwatch.db.schema_security import app_user, user_grant, user_session

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
    grants: dict[str, str] = field(default_factory=dict)  # tenant -> role
    session_id: int | None = None
    expires_at: datetime | None = None

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


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def _user_id(conn: Connection, username: str) -> int:
    uid = conn.execute(select(app_user.c.id).where(app_user.c.username == username)).scalar()
    if uid is None:
        raise UserError(404, f"no user {username!r}")
    return uid


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
    """Create a user; returns its id. Raises UserError (409 if the name is taken, 422 if invalid)."""
    if not USERNAME.match(username):
        raise UserError(422, f"username {username!r}: letters, digits and . _ @ - only, at most 100")
    try:
        hashed = passwords.hash_password(password)
        checked = _check_grants(grants)
    except ValueError as exc:
        raise UserError(422, str(exc)) from None
    at = _now(now)
    with engine.begin() as conn:
        if conn.execute(select(app_user.c.id).where(app_user.c.username == username)).first():
            raise UserError(409, f"user {username!r} exists")
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
        write_optional(audit, conn, new_value=",".join(f"{t}:{r}" for t, r in checked))
        return uid


def set_grant(
    engine: Engine, username: str, tenant: str, role: str | None, *, audit: Audit | None = None
) -> dict[str, str]:
    """Give `username` `role` in `tenant` (None: take the tenant away). Returns the user's grants."""
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
    engine: Engine, username: str, disabled: bool, *, now: datetime | None = None, audit: Audit | None = None
) -> None:
    """Disable (every session revoked at once) or enable a user; enabling also lifts a login lockout."""
    from api.auth import throttle

    at = _now(now)
    with engine.begin() as conn:
        uid = _user_id(conn, username)
        old = conn.execute(select(app_user.c.disabled).where(app_user.c.id == uid)).scalar()
        conn.execute(update(app_user).where(app_user.c.id == uid).values(disabled=disabled))
        if disabled:
            _revoke_all(conn, uid, at, "user disabled")
        else:
            throttle.clear(conn, username)
        write_optional(
            audit,
            conn,
            old_value="disabled" if old else "enabled",
            new_value="disabled" if disabled else "enabled",
        )


def set_password(
    engine: Engine, username: str, password: str, *, now: datetime | None = None, audit: Audit | None = None
) -> None:
    """Change a password; every session of the user is revoked (log in again)."""
    try:
        hashed = passwords.hash_password(password)
    except ValueError as exc:
        raise UserError(422, str(exc)) from None
    at = _now(now)
    with engine.begin() as conn:
        uid = _user_id(conn, username)
        conn.execute(
            update(app_user).where(app_user.c.id == uid).values(password_hash=hashed, password_changed_at=at)
        )
        _revoke_all(conn, uid, at, "password changed")
        write_optional(audit, conn)


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
        n = _revoke_all(conn, _user_id(conn, username), at, reason)
        write_optional(audit, conn, new_value=f"{n} sessions revoked")
        return n


def _revoke_all(conn: Connection, user_id: int, at: datetime, reason: str) -> int:
    res = conn.execute(
        update(user_session)
        .where(user_session.c.user_id == user_id, user_session.c.revoked_at.is_(None))
        .values(revoked_at=at, revoked_reason=reason)
    )
    return res.rowcount or 0


def list_users(engine: Engine, tenants: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Users with their grants; `tenants`: only users holding one of them, showing only those grants."""
    only = set(tenants) if tenants is not None else None
    with engine.connect() as conn:
        users = conn.execute(select(app_user).order_by(app_user.c.username)).all()
        grants = conn.execute(select(user_grant)).all()
    by_user: dict[int, dict[str, str]] = {}
    for g in grants:
        if only is None or g.tenant_id in only:
            by_user.setdefault(g.user_id, {})[g.tenant_id] = g.role
    out = []
    for u in users:
        g = by_user.get(u.id, {})
        if only is not None and not g:
            continue
        out.append(
            {
                "username": u.username,
                "display_name": u.display_name,
                "locale": u.locale,
                "disabled": u.disabled,
                "demo": u.demo,
                "grants": [{"tenant": t, "role": r} for t, r in sorted(g.items())],
            }
        )
    return out


def all_grants(engine: Engine, username: str) -> dict[str, str] | None:
    """Every grant of `username` (None: no such user), for admin checks across tenants."""
    with engine.connect() as conn:
        uid = conn.execute(select(app_user.c.id).where(app_user.c.username == username)).scalar()
        return None if uid is None else grants_of(conn, uid)


def demo_users_present(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(select(app_user.c.username).where(app_user.c.demo, ~app_user.c.disabled)).scalars()
        )
