from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from string import Template

import httpx
import pytest
import pytest_asyncio

from pumpwatch.alarms import store
from pumpwatch.alarms.notify.config import Oncall, load_oncall
from pumpwatch.alarms.notify.service import NotifierService
from pumpwatch.api.context import ApiContext
from pumpwatch.api.main import create_app
from pumpwatch.core import historian
from pumpwatch.core.clock import FakeClock
from pumpwatch.core.config import Fleet, load_fleet
from pumpwatch.core.db.engine import make_engine
from pumpwatch.core.db.migrate import upgrade
from tests.auth import LONG_SESSIONS, log_in
from tests.conftest import DEMO_FLEET
from tests.notify.receivers import HttpReceiver, SmtpServer
from tests.services import create_database, drop_database

BOTH_DATABASES = pytest.mark.parametrize("world", ["sqlite", "postgres"], indirect=True)

SECRET_KEY = "test-secret-key-for-ack-links"
HOOK_SECRET = "whsec-9f8e7d6c5b4a"
START = datetime(2026, 7, 1, 0, 0, tzinfo=UTC)  # Wednesday 09:00 in Tokyo

ONCALL = Template((Path(__file__).parent / "oncall.yaml.in").read_text(encoding="utf-8"))


def write_oncall(
    tmp: Path, *, smtp_port: int, hook_url: str, group_interval_s: float = 300, text: str | None = None
) -> Path:
    p = tmp / "oncall.yaml"
    p.write_text(
        text
        or ONCALL.substitute(
            smtp_port=smtp_port, hook_url=hook_url, hook_secret=HOOK_SECRET, group_interval_s=group_interval_s
        ),
        encoding="utf-8",
    )
    return p


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    s = SmtpServer()
    s.start()
    yield s
    s.stop()


@pytest.fixture
def hook() -> Iterator[HttpReceiver]:
    r = HttpReceiver(secret=HOOK_SECRET).start()
    yield r
    r.stop()


@pytest.fixture(scope="session")
def demo_fleet() -> Fleet:
    return load_fleet(DEMO_FLEET)


@dataclass
class World:
    engine: object
    fleet: Fleet
    oncall: Oncall
    clock: FakeClock
    svc: NotifierService
    smtp: SmtpServer
    hook: HttpReceiver
    client: httpx.AsyncClient

    def raise_(
        self, station: str = "KITA-MP-01", name: str = "power_failure", priority: str = "critical"
    ) -> int:
        r = store.raise_alarm(
            self.engine, tenant_id=self.fleet.stations[station].tenant, station_id=station, name=name,
            priority=priority, message=f"{name} at {station}", value=1.0, at=self.clock.now(),
        )  # fmt: skip
        assert r is not None
        return r.id

    def clear(self, station: str = "KITA-MP-01", name: str = "power_failure") -> None:
        store.clear_alarm(self.engine, station_id=station, name=name, at=self.clock.now(), value=0.0)

    async def run(self, seconds: float, step: float = 1.0) -> None:
        """Let simulated time pass, one notifier pass per step."""
        t = 0.0
        while t < seconds:
            self.clock.advance(step)
            t += step
            await self.svc.step()


@pytest_asyncio.fixture
async def world(
    request: pytest.FixtureRequest, tmp_path: Path, smtp: SmtpServer, hook: HttpReceiver, demo_fleet: Fleet
) -> AsyncIterator[World]:
    """SQLite; `@BOTH_DATABASES` runs a test on PostgreSQL too (where claiming and locking differ)."""
    if getattr(request, "param", "sqlite") == "postgres":
        name, db_url = create_database()
        request.addfinalizer(lambda: drop_database(name))
    else:
        db_url = f"sqlite:///{tmp_path / 'pumpwatch.db'}"
    engine = make_engine(db_url)
    upgrade(engine)
    catalog = historian.sync_catalog(engine, demo_fleet)
    oncall = load_oncall(write_oncall(tmp_path, smtp_port=smtp.port, hook_url=hook.url), demo_fleet)
    clock = FakeClock(START)
    svc = NotifierService(engine, oncall, demo_fleet, clock, SECRET_KEY)
    ctx = ApiContext(
        fleet=demo_fleet, engine=engine, clock=clock, catalog=catalog, notify=svc, auth=LONG_SESSIONS
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(ctx)), base_url="http://test"
    ) as c:
        await log_in(c, engine, demo_fleet.tenants, name="centre-admin", role="admin")
        yield World(engine, demo_fleet, oncall, clock, svc, smtp, hook, c)
    engine.dispose()
