"""Accounts, sessions, login throttling and the audit log (on `base.metadata`; `schema` imports this).

- `app_user`: named users (no shared accounts); `password_hash` is Argon2id (argon2-cffi's encoded form).
  Names are unique whatever their case (`ADMIN` cannot sit beside `admin`: a unique index on lower(username)).
  TOTP (api.auth.mfa): `totp_secret` once confirmed, `totp_pending` while enrolling, `totp_last_step` the
  30-s step of the last code accepted (a code is never accepted twice), `recovery_codes` the SHA-256 of each
  unused recovery code, one per line.
- `user_grant`: what a user may do where, one role per (user, tenant); a user may hold several tenants.
- `user_session`: a login. Only an HMAC of the token is stored, so a copy of the table logs nobody in.
  It expires after `idle` without a request, or at `max_expires_at` (pushed out by operator actions).
- `login_failure`: failed logins (and wrong current passwords, wrong second factors: `kind`) by username,
  source address and trusted device, for throttling and backoff (api.auth.throttle).
- `audit_log`: append-only record of logins, operator actions, configuration and user changes, exports and
  field writes. Triggers refuse UPDATE and DELETE on both dialects (migration 0004).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, ForeignKey, Index, Integer, Table, Text, func

from pumpwatch.core.db.base import metadata, sa_false
from pumpwatch.core.db.types import UTCDateTime

app_user = Table(
    "app_user",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", Text, nullable=False, unique=True),
    Column("display_name", Text, nullable=True),
    Column("locale", Text, nullable=False, server_default="ja"),
    Column("password_hash", Text, nullable=False),
    Column("disabled", Boolean, nullable=False, server_default=sa_false()),
    Column("demo", Boolean, nullable=False, server_default=sa_false()),  # seeded by `pumpwatch demo`
    Column("created_at", UTCDateTime, nullable=False),
    Column("password_changed_at", UTCDateTime, nullable=False),
    Column("totp_secret", Text, nullable=True),  # base32; None: no second factor enrolled
    Column("totp_pending", Text, nullable=True),  # shown for enrolment, active once a code confirms it
    Column("totp_last_step", BigInteger, nullable=True),
    Column("recovery_codes", Text, nullable=True),
    Column("mfa_enrolled_at", UTCDateTime, nullable=True),
)
Index("uq_app_user_username_lower", func.lower(app_user.c.username), unique=True)

user_grant = Table(
    "user_grant",
    metadata,
    Column("user_id", Integer, ForeignKey("app_user.id"), primary_key=True),
    Column("tenant_id", Text, primary_key=True),
    Column("role", Text, nullable=False),  # viewer | operator | trainer | engineer | admin
    Index("ix_user_grant_tenant_id", "tenant_id"),
)

user_session = Table(
    "user_session",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("token_hash", Text, nullable=False, unique=True),
    Column("user_id", Integer, ForeignKey("app_user.id"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("max_expires_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
    Column("revoked_reason", Text, nullable=True),
    Column("source_ip", Text, nullable=True),
    # None: signed in with the password only; "totp" | "recovery": the second factor was given
    Column("second_factor", Text, nullable=True),
    Index("ix_user_session_user_id", "user_id"),
)

login_failure = Table(
    "login_failure",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("username", Text, nullable=False),  # lower case
    Column("source_ip", Text, nullable=True),
    Column("kind", Text, nullable=False, server_default="login"),  # login | password | mfa
    Column("device", Text, nullable=True),  # the trusted-device cookie's id the attempt came with
    Index("ix_login_failure_username_at", "username", "at"),
    Index("ix_login_failure_source_ip_at", "source_ip", "at"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("username", Text, nullable=True),  # None: the system, or an unknown name at login
    Column("tenant_id", Text, nullable=True),  # None: not about one tenant (login, logout)
    Column("source_ip", Text, nullable=True),
    Column("action", Text, nullable=False),  # login, logout, alarm.ack, station.out_of_service, user.grant…
    Column("target", Text, nullable=True),  # alarm:12, station:KITA-MP-01, user:tanaka
    Column("old_value", Text, nullable=True),
    Column("new_value", Text, nullable=True),
    Column("result", Text, nullable=False),  # ok | denied | failed | locked | throttled
    Column("detail", Text, nullable=True),
    Index("ix_audit_log_at", "at"),
    Index("ix_audit_log_tenant_id_at", "tenant_id", "at"),
    # No INSERT … RETURNING: the app role may append records it may not read back (logins: no tenant).
    implicit_returning=False,
)
