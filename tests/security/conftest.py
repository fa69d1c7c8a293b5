"""An API on the demo fleet with a FakeClock and users of both tenants (kita: A, minami: B)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import Engine

from api.auth.config import AuthConfig
from api.context import ApiContext
from api.main import create_app
from pumpwatch import historian
from pumpwatch.clock import FakeClock
from pumpwatch.config import Fleet, load_fleet
from pumpwatch.db.engine import make_engine
from pumpwatch.db.migrate import upgrade
from tests.auth import PASSWORD, add_user
from tests.conftest import DEMO_FLEET

T0 = datetime(2026, 9, 1, 0, 0, tzinfo=UTC)

USERS = {
    "boss": [("kita", "admin"), ("minami", "admin")],
    "kita-admin": [("kita", "admin")],
    "kita-op": [("kita", "operator")],
    "kita-eng": [("kita", "engineer")],
    "kita-view": [("kita", "viewer")],
    "minami-op": [("minami", "operator")],
    "centre": [("kita", "operator"), ("minami", "operator")],
}


@dataclass
class Api:
    client: httpx.AsyncClient
    engine: Engine
    clock: FakeClock
    fleet: Fleet
    cfg: AuthConfig

    async def login(self, name: str, password: str = PASSWORD, ip: str | None = None) -> httpx.Response:
        return await self.client.post("/api/v1/auth/login", json={"username": name, "password": password})

    async def token(self, name: str) -> str:
        r = await self.login(name)
        assert r.status_code == 200, r.text
        self.client.cookies.clear()
        return r.json()["token"]


async def make_api(url: str, cfg: AuthConfig | None = None) -> tuple[Api, ApiContext]:
    fleet = load_fleet(DEMO_FLEET)
    engine = make_engine(url)
    upgrade(engine)
    catalog = historian.sync_catalog(engine, fleet)
    clock = FakeClock(T0)
    cfg = cfg or AuthConfig()
    for name, grants in USERS.items():
        add_user(engine, name, grants)
    ctx = ApiContext(fleet=fleet, engine=engine, clock=clock, catalog=catalog, auth=cfg)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(ctx)), base_url="http://t")
    return Api(client, engine, clock, fleet, cfg), ctx


@pytest.fixture
async def api(sqlite_url: str) -> AsyncIterator[Api]:
    a, _ = await make_api(sqlite_url)
    async with a.client:
        yield a
    a.engine.dispose()
