"""Logins and sessions.

A session token is 256 random bits handed to the client once; the table keeps only HMAC-SHA256(secret_key,
token). A session ends at `min(last_seen + idle, max_expires_at)`, or when revoked (logout, an admin,
a password change, the user disabled, the second factor reset). See `AuthConfig` for why an operator's
session does not end while handling an alarm.

Sign-in is one or two steps. The password opens the session; if one of the user's grants needs a second
factor (`mfa.required`), those grants are withheld until the session gives a TOTP code or a recovery code
(`second_factor`), or enrols one (the console's enrolment view), and a session that gives none ends after
`mfa_step_s`. A client may also send the code with the password (`otp`) and be done in one request.
Failures of each step back off per account (api.auth.throttle); when a name goes into backoff that is an
audit record in each of its tenants (their admins see it) and a warning in the log.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.engine import Connection

from pumpwatch.api.auth import mfa, passwords, throttle
from pumpwatch.api.auth.config import AuthConfig
from pumpwatch.api.auth.users import User, by_name, grants_of
from pumpwatch.core.audit import Audit
from pumpwatch.core.db import rls
from pumpwatch.core.db.schema_security import app_user, user_session

log = logging.getLogger(__name__)


class LoginRefused(Exception):
    def __init__(self, status: int, detail: str, retry_after_s: int | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.retry_after_s = status, detail, retry_after_s


@dataclass(frozen=True)
class Login:
    token: str
    user: User
    expires_at: datetime
    device_cookie: str  # the trusted-device cookie to set (this browser signed in as this user)


def token_hash(cfg: AuthConfig, token: str) -> str:
    return hmac.new(cfg.secret_key.encode(), token.encode(), hashlib.sha256).hexdigest()


def _expires(cfg: AuthConfig, last_seen: datetime, max_expires: datetime) -> datetime:
    return min(last_seen + timedelta(seconds=cfg.idle_timeout_s), max_expires)


def announce_backoff(engine: Engine, audit: Audit, username: str, what: str) -> None:
    """A name went into backoff: one audit record per tenant it holds (its admins read them) and a warning."""
    log.warning("%s of %r backs off after repeated failures (%s)", what, username, audit.source_ip)
    with engine.connect() as conn:
        uid = conn.execute(select(app_user.c.id).where(by_name(username))).scalar()
    tenants: list[str | None] = [None]
    if uid is not None:
        from pumpwatch.api.auth.users import tenants_of

        found: list[str | None] = [*sorted(tenants_of(engine, username) or ())]
        tenants = found or [None]
    # The system writes about this user into the user's own tenants (row-level security admits them).
    tok = rls.set_scope([t for t in tenants if t], uid)
    try:
        with engine.begin() as conn:
            for t in tenants:
                audit.but(action=f"{audit.action}.backoff", tenant_id=t).write(
                    conn, "locked", detail=f"{what} backs off after repeated failures"
                )
    finally:
        rls.scope.reset(tok)


def login(
    engine: Engine,
    cfg: AuthConfig,
    username: str,
    password: str,
    *,
    ip: str | None,
    now: datetime,
    device_cookie: str | None = None,
    otp: str | None = None,
) -> Login:
    """Check the password (backoff, throttled, audited); open a session, with the second factor if `otp`
    is given. Raises LoginRefused."""
    name = username[:100]
    devices = throttle.DeviceCookie(cfg.secret_key)
    device = devices.device_for(device_cookie, name)
    audit = Audit(at=now, action="login", username=name, source_ip=ip, target=f"user:{name}")
    with engine.begin() as conn:
        refusal = throttle.check(conn, cfg, name, ip, now, device=device)
        if refusal is None:
            row = conn.execute(
                select(app_user.c.id, app_user.c.password_hash, app_user.c.disabled).where(by_name(name))
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
            started = throttle.record(conn, cfg, name, ip, now, device=device)
            audit.write(conn, "failed", detail="disabled user" if row is not None and row.disabled else None)
        if started:
            announce_backoff(
                engine, audit, name, "sign-in" if device is None else "sign-in on a trusted device"
            )
        raise LoginRefused(401, "wrong username or password")
    assert row is not None  # (ok above)
    token = secrets.token_urlsafe(32)
    max_expires = now + timedelta(seconds=cfg.max_age_s)
    tok = rls.set_scope((), row.id)
    try:
        with engine.begin() as conn:
            throttle.clear(conn, name, kind="login", device=device)
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
            user = _user(conn, cfg, row.id, sid, _expires(cfg, now, max_expires), None, now)
    finally:
        rls.scope.reset(tok)
    if otp is not None and user.mfa_step == "verify":
        user = second_factor(engine, cfg, user, otp, ip=ip, now=now)
    # (a signed-in user always has its session's expiry)
    return Login(token, user, user.expires_at, devices.issue(device_cookie, name))  # type: ignore[arg-type]


def second_factor(
    engine: Engine, cfg: AuthConfig, user: User, code: str, *, ip: str | None, now: datetime
) -> User:
    """Give the session its second factor (a TOTP code or a recovery code). Raises LoginRefused: 423 while
    backing off, 401 for a wrong or replayed code."""
    audit = Audit(
        at=now, action="login.mfa", username=user.username, source_ip=ip, target=f"user:{user.username}"
    )
    with engine.connect() as conn:
        refusal = throttle.check(conn, cfg, user.username, ip, now, kind="mfa")
    if refusal is not None:
        audit.record(engine, "locked", detail=refusal.reason)
        raise LoginRefused(refusal.status, refusal.reason, refusal.retry_after_s)
    tok = rls.set_scope((), user.id)
    try:
        with engine.begin() as conn:
            how = mfa.verify(conn, user.id, code, now)
            if how is None:
                started = throttle.record(conn, cfg, user.username, ip, now, kind="mfa")
                audit.write(conn, "failed")
            else:
                throttle.clear(conn, user.username, kind="mfa")
                conn.execute(
                    update(user_session).where(user_session.c.id == user.session_id).values(second_factor=how)
                )
                audit.write(conn, "ok", new_value=how)
                return _session_user(conn, cfg, user.session_id, now)  # type: ignore[arg-type]  # signed in: a session
    finally:
        rls.scope.reset(tok)
    if started:
        announce_backoff(engine, audit, user.username, "the second factor")
    raise LoginRefused(401, "that code is wrong, expired or already used")


def enrolled(engine: Engine, cfg: AuthConfig, user: User, code: str, *, ip: str | None, now: datetime):
    """Confirm the pending enrolment with a code from the app: the session counts as having given its
    second factor. Returns (user, recovery codes). Raises LoginRefused (423, 401) like `second_factor`."""
    audit = Audit(
        at=now, action="user.mfa_enrol", username=user.username, source_ip=ip, target=f"user:{user.username}"
    )
    with engine.connect() as conn:
        refusal = throttle.check(conn, cfg, user.username, ip, now, kind="mfa")
    if refusal is not None:
        raise LoginRefused(refusal.status, refusal.reason, refusal.retry_after_s)
    tok = rls.set_scope(user.tenants | set(user.withheld), user.id)
    try:
        with engine.begin() as conn:
            try:
                codes = mfa.confirm_enrolment(conn, user.id, code, now)
            except mfa.MfaError as exc:
                throttle.record(conn, cfg, user.username, ip, now, kind="mfa")
                raise LoginRefused(401, str(exc)) from None
            conn.execute(
                update(user_session).where(user_session.c.id == user.session_id).values(second_factor="totp")
            )
            concerned: list[str | None] = [*sorted(user.tenants | set(user.withheld))]
            for t in concerned or [None]:
                audit.but(tenant_id=t).write(conn, "ok", new_value="enrolled")
            return _session_user(conn, cfg, user.session_id, now), codes  # type: ignore[arg-type]
    finally:
        rls.scope.reset(tok)


def _session_user(conn: Connection, cfg: AuthConfig, session_id: int, now: datetime) -> User:
    s = conn.execute(select(user_session).where(user_session.c.id == session_id)).one()
    return _user(
        conn, cfg, s.user_id, s.id, _expires(cfg, s.last_seen_at, s.max_expires_at), s.second_factor, now
    )


def _user(
    conn: Connection,
    cfg: AuthConfig,
    user_id: int,
    session_id: int,
    expires_at: datetime,
    second: str | None,
    now: datetime,
) -> User:
    u = conn.execute(select(app_user).where(app_user.c.id == user_id)).one()
    grants = grants_of(conn, u.id)
    exempt = "demo" if u.demo and cfg.demo else None
    withheld: dict[str, str] = {}
    if second is None and exempt is None:
        if u.totp_secret is not None:  # whoever set up a second factor is protected by it everywhere
            withheld = grants
        elif mfa.required(cfg, grants, demo_user=u.demo):
            withheld = {t: r for t, r in grants.items() if cfg.needs_mfa(t, r)}
        grants = {t: r for t, r in grants.items() if t not in withheld}
    return User(
        id=u.id,
        username=u.username,
        display_name=u.display_name,
        locale=u.locale,
        grants=grants,
        session_id=session_id,
        expires_at=expires_at,
        withheld=withheld,
        second_factor=second,
        mfa_enrolled=u.totp_secret is not None,
        mfa_exempt=exempt,
    )


def authenticate(
    engine: Engine, cfg: AuthConfig, token: str, *, now: datetime, activity: bool = False
) -> User | None:
    """The user of a live session, or None (unknown, expired, revoked, user disabled, or the second
    factor not given in time).

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
                user = _user(
                    conn, cfg, s.user_id, s.id, _expires(cfg, last_seen, max_expires), s.second_factor, now
                )
        else:
            with engine.connect() as conn:
                user = _user(
                    conn, cfg, s.user_id, s.id, _expires(cfg, last_seen, max_expires), s.second_factor, now
                )
    finally:
        rls.scope.reset(tok)
    # A session waiting for its second factor does not wait for ever.
    if user.withheld and not user.grants and (now - s.created_at).total_seconds() > cfg.mfa_step_s:
        return None
    return user


def session_alive(
    engine: Engine,
    cfg: AuthConfig,
    session_id: int,
    *,
    now: datetime,
    tenants: frozenset[str] | None = None,
) -> bool:
    """For long-lived responses (the live stream): is the session still valid, and does it still hold every
    one of `tenants` (a grant taken away ends the stream, which reconnects with what is left)? Counts as
    activity for the idle timeout (the console is on screen)."""
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
    if tenants is not None:
        tok = rls.set_scope((), s.user_id)  # before the transaction: the scoped engine sets it at its start
        try:
            with engine.connect() as conn:
                user = _user(conn, cfg, s.user_id, s.id, s.max_expires_at, s.second_factor, now)
        finally:
            rls.scope.reset(tok)
        return tenants <= user.tenants
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
