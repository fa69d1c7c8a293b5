"""Logging tests in: a user with grants, and a client carrying its Bearer token.

Users whose grants need a second factor (engineer, admin: api.auth.config.AuthConfig.mfa_roles) are enrolled
with a TOTP secret derived from their name (`totp_secret`), and the helpers sign them in in two steps, as
the console does, with the code of the API's own clock."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime

import httpx
from sqlalchemy import Engine, select

from pumpwatch.api.auth import mfa, passwords
from pumpwatch.api.auth.config import AuthConfig
from pumpwatch.api.auth.users import create_user
from pumpwatch.core.db.schema_security import app_user

PASSWORD = "test-password-123"
# A strong secret for every process the tests start (tests/conftest.py puts it in the environment).
SECRET = "f3c9a1e07b5d4c2e9a8b7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c"

# Argon2id still, at a test cost (8 MiB, one pass): the default (64 MiB, 3 passes) is ~0.1-0.3 s a hash,
# and every test creates users. tests/security/test_auth.py checks the production parameters.
passwords.configure(time_cost=1, memory_cost=8192, parallelism=1)

_last_step: dict[tuple[int, str], int] = {}  # (app, user) -> the step of the last code a helper sent


def totp_secret(name: str) -> str:
    return base64.b32encode(hashlib.sha256(f"totp:{name}".encode()).digest()[:20]).decode()


def add_user(
    engine: Engine,
    name: str,
    grants: Iterable[tuple[str, str]],
    password: str = PASSWORD,
    *,
    enrol: bool | None = None,
) -> None:
    """Create `name`; enrol its second factor when its grants need one (or when `enrol` says so)."""
    grants = list(grants)
    create_user(engine, name, password, grants)
    if enrol is None:
        enrol = mfa.required(AuthConfig(), dict(grants))
    if enrol:
        with engine.begin() as conn:
            uid = conn.execute(select(app_user.c.id).where(app_user.c.username == name)).scalar_one()
            mfa.activate(conn, uid, totp_secret(name), datetime.now(UTC))


def _app_clock_now(client: httpx.AsyncClient) -> datetime:
    app = getattr(getattr(client, "_transport", None), "app", None)
    ctx = getattr(getattr(app, "state", None), "ctx", None)
    return ctx.clock.now() if ctx is not None else datetime.now(UTC)


def next_code(client: httpx.AsyncClient, name: str) -> str:
    """The TOTP code of `name` at the API's clock; a later step than the last one sent (never a replay),
    within the one step of drift the API accepts."""
    import pyotp

    now = _app_clock_now(client)
    app = getattr(getattr(client, "_transport", None), "app", None)
    # the used steps live in the database: a second process (app) over the same one must not replay
    ctx = getattr(getattr(app, "state", None), "ctx", None)
    key = (str(ctx.engine.url) if ctx is not None else id(app), name)
    step = pyotp.TOTP(totp_secret(name)).timecode(now)
    if key in _last_step and _last_step[key] >= step:
        step = _last_step[key] + 1
    if step > pyotp.TOTP(totp_secret(name)).timecode(now) + mfa.WINDOW:
        raise AssertionError(f"{name} signed in three times within 30 s of the API's clock: advance it")
    _last_step[key] = step
    return mfa.code_at(totp_secret(name), now, step - pyotp.TOTP(totp_secret(name)).timecode(now))


async def token(client: httpx.AsyncClient, name: str, password: str = PASSWORD) -> str:
    r = await client.post("/api/v1/auth/login", json={"username": name, "password": password})
    assert r.status_code == 200, r.text
    t = r.json()["token"]
    if r.json()["mfa"]["step"] == "verify":
        r = await client.post(
            "/api/v1/auth/mfa/verify", json={"code": next_code(client, name)}, headers=bearer(t)
        )
        assert r.status_code == 200, r.text
    return t


async def log_in(
    client: httpx.AsyncClient,
    engine: Engine,
    tenants: Iterable[str],
    name: str = "tanaka",
    role: str = "admin",
) -> None:
    """Create `name` with `role` in every one of `tenants` and make `client` send its token."""
    add_user(engine, name, [(t, role) for t in tenants])
    client.headers["Authorization"] = f"Bearer {await token(client, name)}"
    client.cookies.clear()  # the Bearer header alone authenticates


def bearer(t: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {t}"}


# For tests whose fake clock jumps hours between requests: sessions that outlive the simulated run.
LONG_SESSIONS = AuthConfig(idle_timeout_s=30 * 86400.0, max_age_s=30 * 86400.0)
