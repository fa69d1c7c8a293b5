"""The live stream when the API reads through PostgreSQL's app role (row-level security): the publisher
reads every tenant in its own scope, not in the scope of the client whose request started it, and each
client still gets only its own tenants."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from pumpwatch.alarms import store
from pumpwatch.api.auth.config import AuthConfig
from pumpwatch.api.context import ApiContext
from pumpwatch.api.streamhub import StreamHub
from pumpwatch.core import historian
from pumpwatch.core.clock import FakeClock
from pumpwatch.core.config import load_fleet
from pumpwatch.core.db import rls
from pumpwatch.core.db.engine import make_engine
from pumpwatch.core.db.migrate import upgrade
from tests.conftest import DEMO_FLEET
from tests.security.conftest import T0

pytestmark = pytest.mark.postgres


def raise_outage(engine: Engine, sid: str, seconds: float = 0) -> None:
    store.raise_alarm(
        engine,
        tenant_id=sid.split("-")[0].lower(),
        station_id=sid,
        name="power_failure",
        priority="critical",
        message="outage",
        value=1.0,
        at=T0 + timedelta(seconds=seconds),
    )


@pytest.fixture
def owner(pg_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_url)
    upgrade(engine)
    yield engine
    engine.dispose()


async def wait_for(pred, limit_s: float, what: str) -> None:
    deadline = time.monotonic() + limit_s
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_publisher_reads_every_tenant_through_the_app_role(pg_url: str, owner: Engine) -> None:
    fleet = load_fleet(DEMO_FLEET)
    catalog = historian.sync_catalog(owner, fleet)
    raise_outage(owner, "KITA-MP-01")
    raise_outage(owner, "MINAMI-MP-01")
    app_engine = rls.app_engine(pg_url + "?options=-c%20role%3D" + rls.APP_ROLE)
    ctx = ApiContext(fleet=fleet, engine=app_engine, clock=FakeClock(T0), catalog=catalog, auth=AuthConfig())
    hub = StreamHub(ctx, poll_s=0.1)
    try:
        rls.set_scope({"kita"})  # the first client's request scope: the publisher starts inside it
        kita = hub.subscribe({"kita"}, None)
        rls.set_scope({"minami"})
        minami = hub.subscribe({"minami"}, None)
        await wait_for(lambda: kita.queue and minami.queue, 15, "both snapshots")
        (_, k_kind, k_snap), (_, m_kind, m_snap) = kita.queue.popleft(), minami.queue.popleft()
        assert k_kind == m_kind == "snapshot"
        assert '"MINAMI-MP-01"' in m_snap and '"power_failure"' in m_snap
        assert '"KITA-MP-01"' not in m_snap
        assert '"KITA-MP-01"' in k_snap and '"MINAMI-MP-01"' not in k_snap
        # a new alarm of tenant B reaches B's client (the publisher's reads are not A's)
        raise_outage(owner, "MINAMI-MP-02", 5)
        await wait_for(lambda: any(k == "alarm" for _, k, _ in minami.queue), 15, "B's new alarm")
        assert not any(k == "alarm" for _, k, _ in kita.queue)
    finally:
        hub.close()
        app_engine.dispose()


async def test_a_stream_started_while_the_database_is_away_recovers(owner: Engine) -> None:
    """The first client arrives during a database outage (a session the API remembers): the publisher
    keeps trying to start and serves the snapshot once the database answers again."""
    from tests.services import free_port

    fleet = load_fleet(DEMO_FLEET)
    catalog = historian.sync_catalog(owner, fleet)
    raise_outage(owner, "KITA-MP-01")
    away = make_engine(f"postgresql://pumpwatch:x@127.0.0.1:{free_port()}/gone?connect_timeout=2")
    ctx = ApiContext(fleet=fleet, engine=away, clock=FakeClock(T0), catalog=catalog, auth=AuthConfig())
    hub = StreamHub(ctx, poll_s=0.1)
    try:
        sub = hub.subscribe(None, None)
        await asyncio.sleep(1.5)  # a start attempt or two fail meanwhile
        assert not sub.queue and hub._task is not None and not hub._task.done()
        ctx.engine = owner  # the database is back
        await wait_for(lambda: sub.queue, 15, "the snapshot after the database came back")
        _, kind, snap = sub.queue.popleft()
        assert kind == "snapshot" and '"power_failure"' in snap
    finally:
        hub.close()
        away.dispose()
