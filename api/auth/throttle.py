"""Login throttling and lockout from the `login_failure` table (shared by every API process).

Per username: `max_failures` failures within `lock_s` lock the name for `lock_s` after the last of them;
a locked name is refused (423) without checking the password, and its refusals are not counted, so an
attacker cannot keep it locked for ever by hammering it. Unknown names lock the same way (no
enumeration). A successful login or an admin enabling the user clears the name's failures.
Per source address: `ip_max_failures` within `ip_window_s` → 429 with Retry-After.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Connection

from api.auth.config import AuthConfig
from pumpwatch.db.schema_security import login_failure

KEEP = timedelta(days=1)


@dataclass(frozen=True)
class Refusal:
    status: int  # 423 locked, 429 throttled
    retry_after_s: int
    reason: str


def check(conn: Connection, cfg: AuthConfig, username: str, ip: str | None, now: datetime) -> Refusal | None:
    if ip is not None:
        since = now - timedelta(seconds=cfg.ip_window_s)
        n, oldest = conn.execute(
            select(func.count(), func.min(login_failure.c.at)).where(
                login_failure.c.source_ip == ip, login_failure.c.at > since
            )
        ).one()
        if n >= cfg.ip_max_failures:
            wait = (oldest + timedelta(seconds=cfg.ip_window_s) - now).total_seconds()
            return Refusal(429, max(1, math.ceil(wait)), "too many failed logins from this address")
    since = now - timedelta(seconds=cfg.lock_s)
    recent = (
        conn.execute(
            select(login_failure.c.at)
            .where(login_failure.c.username == username, login_failure.c.at > since)
            .order_by(login_failure.c.at.desc())
            .limit(cfg.max_failures)
        )
        .scalars()
        .all()
    )
    if len(recent) >= cfg.max_failures:
        wait = (recent[0] + timedelta(seconds=cfg.lock_s) - now).total_seconds()
        return Refusal(423, max(1, math.ceil(wait)), "account locked after repeated failed logins")
    return None


def record(conn: Connection, username: str, ip: str | None, now: datetime) -> None:
    conn.execute(insert(login_failure).values(at=now, username=username, source_ip=ip))
    conn.execute(delete(login_failure).where(login_failure.c.at < now - KEEP))


def clear(conn: Connection, username: str) -> None:
    conn.execute(delete(login_failure).where(login_failure.c.username == username))
