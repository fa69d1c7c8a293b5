"""The database goes away for 60 s (of simulated time at 1 Hz) while the demo fleet runs: every sample the
collector read is stored exactly once, written in order, and alarm events raised during the outage reach
the journal in order; the operator already signed in keeps a live overview. The database is cut for real
by a loopback TCP proxy in front of PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from pumpwatch.api.main import create_app
from pumpwatch.api.webconfig import WebConfig
from pumpwatch.app.system import System
from pumpwatch.core import historian
from pumpwatch.core.clock import FakeClock
from pumpwatch.core.db.engine import make_engine
from pumpwatch.core.db.schema import alarm, alarm_event, point, sample
from pumpwatch.core.sample import Sample
from pumpwatch.simulators.fleet import SimulatedFleet
from tests.auth import LONG_SESSIONS, add_user, token
from tests.e2e.fleets import demo_fleet_on_free_ports, wait_until
from tests.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

START = datetime(2026, 7, 1, 1, 0, tzinfo=UTC)
OUTAGE_S = int(os.environ.get("PUMPWATCH_SOAK_OUTAGE_S", "60"))  # `make soak`: much longer


async def test_sixty_seconds_without_the_database_lose_nothing(pg_both_url: str, tmp_path: Path) -> None:
    fleet = demo_fleet_on_free_ports()
    fleet.controllers = {
        cid: c.model_copy(update={"poll_interval_s": 1}) for cid, c in fleet.controllers.items()
    }
    url = make_url(pg_both_url)
    clock = FakeClock(START)
    read: list[Sample] = []
    writes: list[list[tuple]] = []

    def recording_write(engine, rows: Sequence[tuple]) -> int:
        n = historian.write_samples(engine, rows)
        writes.append(list(rows))  # only batches the database took
        return n

    async with (
        TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy,
        SimulatedFleet(fleet, clock, seed=5) as sim,
    ):
        via_proxy = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        system = await System.prepare(fleet, via_proxy, clock)
        system.spool_dir = tmp_path / "spool"
        inner_emit = system.emit

        def emit(samples: list[Sample]) -> None:
            read.extend(samples)
            inner_emit(samples)

        system.emit = emit  # type: ignore[method-assign]
        await system.start_collecting()
        assert system.writer is not None and system.alarms is not None
        system.writer._write = recording_write
        system.writer.flush_interval_s = 0.2
        system.writer.retry_max_s = 0.5
        units = sum(len(s.units) for s in system.sources)

        def polls() -> int:
            return sum(s.stats.answered + s.stats.missed for s in system.sources)

        async def advance(seconds: int) -> None:
            for _ in range(seconds):
                before = polls()
                clock.advance(1.0)
                await wait_until(lambda b=before: polls() >= b + units, 10, "a poll of every unit")

        ctx = system.api_context(auth=LONG_SESSIONS, web=WebConfig(metrics_token="scrape-token"))
        transport = httpx.ASGITransport(app=create_app(ctx))
        async with httpx.AsyncClient(transport=transport, base_url="http://pumpwatch.test") as client:
            # the user is made straight in the database: the proxy runs on this event loop, so a blocking
            # call through it from here would wait on itself
            direct = make_engine(pg_both_url)
            try:
                add_user(direct, "tanaka", [(t, "admin") for t in fleet.tenants])
            finally:
                direct.dispose()
            client.headers["Authorization"] = f"Bearer {await token(client, 'tanaka')}"
            try:
                await wait_until(lambda: polls() >= units, 10, "the first poll of every unit")
                await advance(5)
                await wait_until(
                    lambda: not system.writer.delayed and system.writer.pending == 0, 10, "a write"
                )

                # the operator's session is checked (and remembered by this API process) before the cut
                assert (await client.get("/api/v1/overview")).json()["alarms_from"] == "database"
                proxy.cut()
                sim.set_mains(["KITA-MP-01"], False)  # an alarm raised while the journal is away
                await advance(OUTAGE_S // 2)
                await wait_until(lambda: system.writer.delayed, 10, "the writer noticing the outage")
                # The signed-in operator keeps a live wall: values from the collector, alarms from the
                # alarm engine's memory (the store is away), said so; never an old snapshot as if live.
                r = await client.get("/api/v1/overview")
                assert r.status_code == 200, r.text
                wall = r.json()
                assert wall["alarms_from"] == "collector memory"
                assert abs((datetime.fromisoformat(wall["at"]) - clock.now()).total_seconds()) <= 2
                kita1 = next(s for s in wall["data"] if s["id"] == "KITA-MP-01")
                assert kita1["status"] == "power_failure" and "power_failure" in kita1["active_alarms"]
                assert kita1["data_age_s"] <= 2
                # Nobody new gets in: a login, or a token this process never checked, is told why.
                r = await client.post("/api/v1/auth/login", json={"username": "tanaka", "password": "x" * 12})
                assert r.status_code == 503, r.text
                r = await client.get("/api/v1/overview", headers={"Authorization": "Bearer not-a-session"})
                assert r.status_code == 503 and "database is unreachable" in r.json()["detail"]
                r = await client.get("/readyz")
                assert r.status_code == 503
                body = r.json()
                assert body["checks"]["historian_current"] is False
                assert body["detail"]["historian"]["state"] == "delayed"
                sim.set_mains(["KITA-MP-01"], True)
                await advance(OUTAGE_S - OUTAGE_S // 2)
                await wait_until(lambda: system.writer.pending == 0, 10, "rows moved to the spool")
                assert system.spools[0].status().pending_rows > 0
                assert system.spools[1].status().pending_records > 0  # alarm events spooled
                metrics = (
                    await client.get("/metrics", headers={"Authorization": "Bearer scrape-token"})
                ).text
                assert "pumpwatch_historian_delayed 1.0" in metrics
                spooled = system.spools[0].status().pending_rows
                assert f"pumpwatch_spool_rows {float(spooled)}" in metrics
                assert 'pumpwatch_poll_latency_seconds_bucket{le="+Inf"}' in metrics
                # the system status answers from this process: the historian delayed, rows in the spool
                r = await client.get("/api/v1/system/status")
                assert r.status_code == 200, r.text
                hist = r.json()["process"]["historian"]
                assert hist["state"] == "delayed" and hist["spool"]["rows"] == spooled
                # a route that needs the database says why it cannot answer now (not a bare 500)
                r = await client.get("/api/v1/alarms")
                assert r.status_code == 503 and "database is unreachable" in r.json()["detail"], r.text

                proxy.restore()
                status = (await client.get("/api/v1/system/status")).json()
                assert status["process"]["historian"]["spool"]["rows"] <= spooled
                await wait_until(
                    lambda: not system.writer.delayed and not system.alarms.delayed, 30, "the spool drained"
                )
                await system.alarms.drain()
                await system.writer.flush()
            finally:
                await system.stop()

    # Every sample the collector read, exactly once, with its value and quality.
    engine = make_engine(pg_both_url)
    try:
        with engine.connect() as conn:
            ids = {
                (sid, name): pid
                for pid, sid, name in conn.execute(select(point.c.id, point.c.station_id, point.c.name))
            }
            measured = {pid for key, pid in ids.items() if key[1] in fleet.points.get(key[0], {})}
            stored = {
                (pid, t): (v, q)
                for pid, t, v, q in conn.execute(
                    select(sample.c.point_id, sample.c.observed_at, sample.c.value, sample.c.quality)
                )
                if pid in measured
            }
            journal = conn.execute(
                select(alarm_event.c.kind, alarm_event.c.at, alarm.c.name)
                .join(alarm, alarm.c.id == alarm_event.c.alarm_id)
                .where(alarm.c.station_id == "KITA-MP-01")
                .order_by(alarm_event.c.id)
            ).all()
    finally:
        engine.dispose()
    expected = {(ids[(s.station, s.point)], s.observed_at): (s.value, int(s.quality)) for s in read}
    assert len(expected) == len(read)  # the log itself has one sample per point and instant
    polls_during = OUTAGE_S * units
    assert len(read) >= (OUTAGE_S + 5) * 20 * units // 2  # the fleet really ran through the outage
    assert stored == expected, (
        f"{len(set(expected) - set(stored))} missing, {len(set(stored) - set(expected))} extra"
    )
    assert polls_during > 0
    # Written in the order read: per point, each write carries only newer instants than the one before.
    last: dict[int, datetime] = {}
    for batch in writes:
        for pid, t, _v, _q in batch:
            assert t > last.get(pid, datetime.min.replace(tzinfo=UTC)), f"point {pid} written out of order"
            last[pid] = t
    # The power failure raised and cleared during the outage is in the journal, in order.
    pf = [(k, at) for k, at, name in journal if name == "power_failure"]
    assert [k for k, _ in pf][:2] == ["raise", "clear"], journal
    assert pf[0][1] < pf[1][1]
