"""The second factor: TOTP (RFC 6238, pyotp) from an authenticator app, and single-use recovery codes.

- Enrolment: `start_enrolment` keeps a new secret as pending (the console shows it as a QR code, `qr_svg`,
  rendered here by segno: no CDN, no outside service); `confirm_enrolment` activates it once a code from
  the app matches, and hands out `RECOVERY_CODES` recovery codes, shown once, stored as SHA-256 (each is 80
  random bits, so a fast hash is enough; the secret key is not involved, so rotating it loses nothing).
- Verification (`verify`): a code of the current 30-s step or one step either side (a phone's clock drifts)
  is accepted once: the step is recorded and a code of that step or an earlier one is refused (replay).
  A recovery code is crossed off when used.
- `reset` (the centre admin's `pumpwatch user mfa-reset`): the user enrols again at the next sign-in.
Which users need it is `required()`: a grant whose role is in `AuthConfig.mfa_roles` (engineer, admin) or
in a tenant with `require_mfa: true`; in `pumpwatch demo` the demo users are exempt, and the console says so.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import secrets
from datetime import datetime

import pyotp
import segno
from sqlalchemy import Engine, select, update
from sqlalchemy.engine import Connection

from pumpwatch.api.auth.config import AuthConfig
from pumpwatch.core.db.schema_security import app_user

ISSUER = "pumpwatch"
WINDOW = 1  # steps either side
RECOVERY_CODES = 10
_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read off paper at 3 a.m.


class MfaError(ValueError):
    pass


def required(cfg: AuthConfig, grants: dict[str, str], *, demo_user: bool = False) -> bool:
    if demo_user and cfg.demo:
        return False
    return any(cfg.needs_mfa(t, r) for t, r in grants.items())


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, username: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)


def qr_svg(uri: str) -> bytes:
    buf = io.BytesIO()
    segno.make(uri, error="m").save(buf, kind="svg", scale=5, border=2, xmldecl=True, svgns=True)
    return buf.getvalue()


def code_at(secret: str, at: datetime, offset: int = 0) -> str:
    return pyotp.TOTP(secret).at(at, counter_offset=offset)


def _step_of(secret: str, code: str, now: datetime) -> int | None:
    totp = pyotp.TOTP(secret)
    code = code.strip().replace(" ", "")
    if len(code) != totp.digits or not code.isdigit():
        return None
    base = totp.timecode(now)
    for off in range(-WINDOW, WINDOW + 1):
        if hmac.compare_digest(totp.at(now, counter_offset=off), code):
            return base + off
    return None


def _normalise_recovery(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


def _recovery_hash(code: str) -> str:
    return hashlib.sha256(b"pumpwatch-recovery:" + _normalise_recovery(code).encode()).hexdigest()


def new_recovery_codes(n: int = RECOVERY_CODES) -> list[str]:
    out = []
    for _ in range(n):
        raw = "".join(secrets.choice(_ALPHABET) for _ in range(16))  # 16 × 5 bits = 80 bits
        out.append("-".join(raw[i : i + 4] for i in range(0, 16, 4)))
    return out


def status(row) -> dict:
    codes = [c for c in (row.recovery_codes or "").split("\n") if c]
    return {
        "enrolled": row.totp_secret is not None,
        "enrolled_at": row.mfa_enrolled_at,
        "recovery_codes_left": len(codes),
    }


def start_enrolment(engine: Engine, user_id: int) -> str:
    """A new pending secret (an enrolled factor stays in force until the new one is confirmed)."""
    secret = new_secret()
    with engine.begin() as conn:
        conn.execute(update(app_user).where(app_user.c.id == user_id).values(totp_pending=secret))
    return secret


def pending_secret(engine: Engine, user_id: int) -> str | None:
    with engine.connect() as conn:
        return conn.execute(select(app_user.c.totp_pending).where(app_user.c.id == user_id)).scalar()


def activate(conn: Connection, user_id: int, secret: str, now: datetime, last_step: int | None = None):
    """Make `secret` the user's factor with fresh recovery codes; returns the codes (shown once)."""
    codes = new_recovery_codes()
    conn.execute(
        update(app_user)
        .where(app_user.c.id == user_id)
        .values(
            totp_secret=secret,
            totp_pending=None,
            totp_last_step=last_step,
            recovery_codes="\n".join(_recovery_hash(c) for c in codes),
            mfa_enrolled_at=now,
        )
    )
    return codes


def confirm_enrolment(conn: Connection, user_id: int, code: str, now: datetime) -> list[str]:
    secret = conn.execute(select(app_user.c.totp_pending).where(app_user.c.id == user_id)).scalar()
    if secret is None:
        raise MfaError("no enrolment is under way: start it again")
    step = _step_of(secret, code, now)
    if step is None:
        raise MfaError("that code does not match: check the phone's clock and type the current code")
    return activate(conn, user_id, secret, now, last_step=step)


def verify(conn: Connection, user_id: int, code: str, now: datetime) -> str | None:
    """ "totp" or "recovery" if `code` is a valid, unused second factor of the user (and uses it up)."""
    row = conn.execute(
        select(app_user.c.totp_secret, app_user.c.totp_last_step, app_user.c.recovery_codes).where(
            app_user.c.id == user_id
        )
    ).first()
    if row is None or row.totp_secret is None or len(code) > 64:
        return None
    step = _step_of(row.totp_secret, code, now)
    if step is not None:
        done = conn.execute(
            update(app_user)
            .where(
                app_user.c.id == user_id,
                (app_user.c.totp_last_step.is_(None)) | (app_user.c.totp_last_step < step),
            )
            .values(totp_last_step=step)
        )
        return "totp" if done.rowcount == 1 else None  # a replay, or a race with the same code
    hashes = [h for h in (row.recovery_codes or "").split("\n") if h]
    wanted = _recovery_hash(code)
    if not any(hmac.compare_digest(h, wanted) for h in hashes):
        return None
    left = "\n".join(h for h in hashes if not hmac.compare_digest(h, wanted))
    done = conn.execute(
        update(app_user)
        .where(app_user.c.id == user_id, app_user.c.recovery_codes == row.recovery_codes)
        .values(recovery_codes=left)
    )
    return "recovery" if done.rowcount == 1 else None


def reset(conn: Connection, user_id: int) -> bool:
    """Forget the user's factor and recovery codes; True if there was one."""
    had = conn.execute(select(app_user.c.totp_secret).where(app_user.c.id == user_id)).scalar() is not None
    conn.execute(
        update(app_user)
        .where(app_user.c.id == user_id)
        .values(
            totp_secret=None,
            totp_pending=None,
            totp_last_step=None,
            recovery_codes=None,
            mfa_enrolled_at=None,
        )
    )
    return had
