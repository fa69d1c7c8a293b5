"""Logins and sessions.

A session token is 256 random bits handed to the client once; the table keeps only HMAC-SHA256(secret_key,
token). A session ends at `min(last_seen + idle, max_expires_at)`, or when revoked (logout, an admin,
a password change, the user disabled). See `AuthConfig` for why an operator's session does not end while
handling an alarm.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, insert, select, update

from api.auth import passwords, throttle
from api.auth.config import AuthConfig
from api.auth.users import User, grants_of
from pumpwatch.audit import Audit
from pumpwatch.db import rls
from pumpwatch.db.schema_security import app_user, user_session


class LoginRefused(Exception):
    def __init__(self, status: int, detail: str, retry_after_s: int | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.retry_after_s = status, detail, retry_after_s


@dataclass(frozen=True)
class Login:
    token: str
    user: User
    expires_at: datetime


def token_hash(cfg: AuthConfig, token: str) -> str:
    return hmac.new(cfg.secret_key.encode(), token.encode(), hashlib.sha256).hexdigest()


def _expires(cfg: AuthConfig, last_seen: datetime, max_expires: datetime) -> datetime:
    return min(last_seen + timedelta(seconds=cfg.idle_timeout_s), max_expires)


def login(
    engine: Engine, cfg: AuthConfig, username: str, password: str, *, ip: str | None, now: datetime
) -> Login:
    """Check the password (throttled, locked out, audited); open a session. Raises LoginRefused."""
    audit = Audit(
        at=now, action="login", username=username[:100], source_ip=ip, target=f"user:{username[:100]}"
    )
    with engine.begin() as conn:
        refusal = throttle.check(conn, cfg, username, ip, now)
        if refusal is None:
            row = conn.execute(
                select(app_user.c.id, app_user.c.password_hash, app_user.c.disabled).where(
                    app_user.c.username == username
                )
            ).first()
    if refusal is not None:
        result = "locked" if refusal.status == 423 else "throttled"
        audit.record(engine, result, detail=refusal.reason)
        raise LoginRefused(refusal.status, refusal.reason, refusal.retry_after_s)
    # Argon2 outside the transaction: it takes tens of milliseconds and must not hold SQLite's write lock.
    ok = (
        passwords.verify(row.password_hash if row else None, password)
        and row is not None
        and not row.disabled
    )
    if not ok:
        with engine.begin() as conn:
            throttle.record(conn, username[:100], ip, now)
            audit.write(conn, "failed", detail="disabled user" if row is not None and row.disabled else None)
        raise LoginRefused(401, "wrong username or password")
    token = secrets.token_urlsafe(32)
    max_expires = now + timedelta(seconds=cfg.max_age_s)
    tok = rls.set_scope((), row.id)
    try:
        with engine.begin() as conn:
            throttle.clear(conn, username)
            sid = conn.execute(
                insert(user_session)
                .values(
                    token_hash=token_hash(cfg, token),
                    user_id=row.id,
                    created_at=now,
                    last_seen_at=now,
                    max_expires_at=max_expires,
                    source_ip=ip,
                )
                .returning(user_session.c.id)
            ).scalar_one()
            audit.write(conn, "ok", new_value=f"session {sid}")
            user = _user(conn, row.id, sid, _expires(cfg, now, max_expires))
    finally:
        rls.scope.reset(tok)
    return Login(token, user, user.expires_at)  # type: ignore[arg-type]


def _user(conn, user_id: int, session_id: int, expires_at: datetime) -> User:
    u = conn.execute(select(app_user).where(app_user.c.id == user_id)).one()
    return User(
        id=u.id,
        username=u.username,
        display_name=u.display_name,
        locale=u.locale,
        grants=grants_of(conn, u.id),
        session_id=session_id,
        expires_at=expires_at,
    )


def authenticate(
    engine: Engine, cfg: AuthConfig, token: str, *, now: datetime, activity: bool = False
) -> User | None:
    """The user of a live session, or None (unknown, expired, revoked, user disabled).

    Renews the idle timeout (writing at most every `touch_every_s`); `activity` (an operator action)
    also pushes the session's end to at least `action_grace_s` ahead."""
    with engine.connect() as conn:
        s = conn.execute(
            select(user_session, app_user.c.disabled)
            .join(app_user, app_user.c.id == user_session.c.user_id)
            .where(user_session.c.token_hash == token_hash(cfg, token))
        ).first()
    if s is None or s.revoked_at is not None or s.disabled:
        return None
    if now >= _expires(cfg, s.last_seen_at, s.max_expires_at):
        return None
    changes: dict = {}
    max_expires = s.max_expires_at
    if activity:
        cap = s.created_at + timedelta(seconds=cfg.max_age_s + cfg.action_grace_cap_s)
        wanted = min(now + timedelta(seconds=cfg.action_grace_s), cap)
        if wanted > max_expires:
            max_expires = changes["max_expires_at"] = wanted
    if changes or (now - s.last_seen_at).total_seconds() >= cfg.touch_every_s:
        changes["last_seen_at"] = now
    last_seen = changes.get("last_seen_at", s.last_seen_at)
    tok = rls.set_scope((), s.user_id)
    try:
        if changes:
            with engine.begin() as conn:
                conn.execute(
                    update(user_session)
                    .where(user_session.c.id == s.id, user_session.c.revoked_at.is_(None))
                    .values(**changes)
                )
                return _user(conn, s.user_id, s.id, _expires(cfg, last_seen, max_expires))
        with engine.connect() as conn:
            return _user(conn, s.user_id, s.id, _expires(cfg, last_seen, max_expires))
    finally:
        rls.scope.reset(tok)


def session_alive(engine: Engine, cfg: AuthConfig, session_id: int, *, now: datetime) -> bool:
    """For long-lived responses (the live stream): is the session still valid? Counts as activity for
    the idle timeout (the console is on screen)."""
    with engine.begin() as conn:
        s = conn.execute(
            select(user_session, app_user.c.disabled)
            .join(app_user, app_user.c.id == user_session.c.user_id)
            .where(user_session.c.id == session_id)
        ).first()
        if s is None or s.revoked_at is not None or s.disabled:
            return False
        if now >= _expires(cfg, s.last_seen_at, s.max_expires_at):
            return False
        if (now - s.last_seen_at).total_seconds() >= cfg.touch_every_s:
            conn.execute(update(user_session).where(user_session.c.id == s.id).values(last_seen_at=now))
        return True


def logout(engine: Engine, session_id: int, *, now: datetime, audit: Audit | None = None) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(user_session)
            .where(user_session.c.id == session_id, user_session.c.revoked_at.is_(None))
            .values(revoked_at=now, revoked_reason="logout")
        )
        if audit is not None:
            audit.write(conn)
