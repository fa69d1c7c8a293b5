"""Login throttling and per-account backoff from the `login_failure` table (shared by every API process).

Lockout that an attacker cannot turn into a denial of service during a storm:
- Per account, exponential backoff with a cap: after `max_failures` failures of one name, each further
  failure makes the name wait `backoff_base_s × 2^(n - max_failures)` (30 s, 1 min, 2 min, …) but never
  more than `lock_s` (15 min). A locked name is refused (423, Retry-After) without checking the password,
  and refusals are not counted, so hammering it does not lengthen the wait.
- A trusted device (a browser holding a signed `pumpwatch_device` cookie naming this user, given at a
  successful sign-in: `DeviceCookie`) has a backoff of its own: the control room's console still signs in
  while an attacker elsewhere keeps the name in backoff.
- Per client address: `ip_max_failures` within `ip_window_s` → 429 with Retry-After, whatever the names.
Unknown names back off the same way (no enumeration). `kind` keeps logins, wrong current passwords
(`/auth/password`) and wrong second factors apart: each has its own backoff, none locks the others.
A success clears its own key's failures; an admin's unlock (or enable) clears the name's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, func, insert, select
from sqlalchemy.engine import Connection

from pumpwatch.api.auth.config import AuthConfig
from pumpwatch.core.backoff import exponential
from pumpwatch.core.db.schema_security import login_failure

KEEP = timedelta(days=2)
MAX_DEVICE_USERS = 20  # names one device cookie may vouch for (a shared control-room PC)


@dataclass(frozen=True)
class Refusal:
    status: int  # 423 backing off, 429 throttled
    retry_after_s: int
    reason: str


def _key(conn_username: str) -> str:
    return conn_username[:100].lower()


def _backoff_until(cfg: AuthConfig, times: list[datetime]) -> datetime | None:
    """`times` newest first; when the key may try again (None: it may now)."""
    n = len(times)
    if n < cfg.max_failures:
        return None
    wait = exponential(n - cfg.max_failures + 1, cfg.backoff_base_s, cfg.lock_s)  # base, 2×, 4× … lock_s
    return times[0] + timedelta(seconds=wait)


def _failures(conn: Connection, cfg: AuthConfig, username: str, kind: str, device: str | None, now):
    q = select(login_failure.c.at).where(
        login_failure.c.username == _key(username),
        login_failure.c.kind == kind,
        login_failure.c.at > now - timedelta(seconds=cfg.window_s),
        login_failure.c.device == device if device is not None else login_failure.c.device.is_(None),
    )
    # enough rows to know the step, bounded: the cap is reached after a few dozen
    limit = cfg.max_failures + 40
    return list(conn.execute(q.order_by(login_failure.c.at.desc()).limit(limit)).scalars())


def check(
    conn: Connection,
    cfg: AuthConfig,
    username: str,
    ip: str | None,
    now: datetime,
    *,
    kind: str = "login",
    device: str | None = None,
) -> Refusal | None:
    if ip is not None and device is None and kind == "login":
        since = now - timedelta(seconds=cfg.ip_window_s)
        n, oldest = conn.execute(
            select(func.count(), func.min(login_failure.c.at)).where(
                login_failure.c.source_ip == ip, login_failure.c.at > since, login_failure.c.kind == "login"
            )
        ).one()
        if n >= cfg.ip_max_failures:
            wait = (oldest + timedelta(seconds=cfg.ip_window_s) - now).total_seconds()
            return Refusal(429, max(1, math.ceil(wait)), "too many failed logins from this address")
    until = _backoff_until(cfg, _failures(conn, cfg, username, kind, device, now))
    if until is not None and now < until:
        wait = max(1, math.ceil((until - now).total_seconds()))
        what = {"login": "sign-in", "password": "password change", "mfa": "second factor"}.get(kind, kind)
        return Refusal(423, wait, f"{what} paused after repeated failures: try again in {wait} s")
    return None


def record(
    conn: Connection,
    cfg: AuthConfig,
    username: str,
    ip: str | None,
    now: datetime,
    *,
    kind: str = "login",
    device: str | None = None,
) -> bool:
    """Count one failure; True when it puts the key into backoff for the first time (say so: audit)."""
    conn.execute(
        insert(login_failure).values(at=now, username=_key(username), source_ip=ip, kind=kind, device=device)
    )
    conn.execute(delete(login_failure).where(login_failure.c.at < now - KEEP))
    return len(_failures(conn, cfg, username, kind, device, now)) == cfg.max_failures


def clear(conn: Connection, username: str, *, kind: str | None = None, device: str | None = None) -> int:
    """Forget failures of `username` (of one `kind` and `device`; None: every kind, or untrusted only when
    `kind` is given). An admin's unlock calls it with no kind: everything."""
    cond = [login_failure.c.username == _key(username)]
    if kind is not None:
        cond.append(login_failure.c.kind == kind)
        cond.append(login_failure.c.device == device if device else login_failure.c.device.is_(None))
    return conn.execute(delete(login_failure).where(and_(*cond))).rowcount or 0


def lock_state(conn: Connection, cfg: AuthConfig, username: str, now: datetime) -> datetime | None:
    """Until when sign-in of `username` from untrusted clients backs off (None: it does not)."""
    until = _backoff_until(cfg, _failures(conn, cfg, username, "login", None, now))
    return until if until is not None and until > now else None


# --- trusted devices ----------------------------------------------------------------------------------


class DeviceCookie:
    """`v1.<device id>.<base64url(json names)>.<HMAC>`: which names signed in on this browser before.
    Only a key for throttling, never a credential: it lets nobody in by itself."""

    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"pumpwatch-device:" + secret.encode()).digest()

    def _sig(self, body: str) -> str:
        return base64.urlsafe_b64encode(
            hmac.new(self._key, body.encode(), hashlib.sha256).digest()[:18]
        ).decode()

    def parse(self, value: str | None) -> tuple[str, list[str]] | None:
        if not value or len(value) > 4096:
            return None
        try:
            v, device, names64, sig = value.split(".")
            body = f"{v}.{device}.{names64}"
            if v != "v1" or not hmac.compare_digest(sig, self._sig(body)):
                return None
            names = json.loads(base64.urlsafe_b64decode(names64 + "=" * (-len(names64) % 4)))
        except (ValueError, TypeError):
            return None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            return None
        return device, names

    def device_for(self, value: str | None, username: str) -> str | None:
        """The device id if the cookie is genuine and names `username`."""
        parsed = self.parse(value)
        if parsed is None or _key(username) not in parsed[1]:
            return None
        return parsed[0]

    def issue(self, value: str | None, username: str) -> str:
        """The cookie after `username` signed in on this browser."""
        parsed = self.parse(value)
        device, names = parsed if parsed is not None else (secrets.token_urlsafe(12), [])
        names = [n for n in names if n != _key(username)][-(MAX_DEVICE_USERS - 1) :] + [_key(username)]
        names64 = base64.urlsafe_b64encode(json.dumps(names).encode()).rstrip(b"=").decode()
        body = f"v1.{device}.{names64}"
        return f"{body}.{self._sig(body)}"
