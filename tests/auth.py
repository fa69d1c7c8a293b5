"""Logging tests in: a user with grants, and a client carrying its Bearer token."""

from __future__ import annotations

from collections.abc import Iterable

import httpx
from sqlalchemy import Engine

from api.auth import passwords
from api.auth.config import AuthConfig
from api.auth.users import create_user

PASSWORD = "test-password-123"

# Argon2id still, at a test cost (8 MiB, one pass): the default (64 MiB, 3 passes) is ~0.1-0.3 s a hash,
# and every test creates users. tests/security/test_auth.py checks the production parameters.
passwords.configure(time_cost=1, memory_cost=8192, parallelism=1)


def add_user(engine: Engine, name: str, grants: Iterable[tuple[str, str]], password: str = PASSWORD) -> None:
    create_user(engine, name, password, list(grants))


async def token(client: httpx.AsyncClient, name: str, password: str = PASSWORD) -> str:
    r = await client.post("/api/v1/auth/login", json={"username": name, "password": password})
    assert r.status_code == 200, r.text
    return r.json()["token"]


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
