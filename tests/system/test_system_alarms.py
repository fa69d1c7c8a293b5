"""Degraded parts alarm (issue 12, part 6): each condition raises its system alarm of the centre (journal,
the API's alarm list for a centre user, `/readyz` detail, an outbox message to the centre's on-call person)
and clears when it recovers; a municipality's user never sees the alarms, only a neutral banner saying
which part of the system is degraded.

The conditions are made for real where a real part can be: the database cut by a TCP proxy (spool,
historian lag), a shard that stops beating, no notifier running and then one running, rejected input. The
historian's set-up problems are the `historian_problems` field that set-up fills (System.prepare)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from pumpwatch.core.sharding import Shard, beat
from tests.e2e.fleets import wait_until
from tests.system.centre import Centre, centre_stack
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration

HIST = "system:historian"


async def assert_raised(c: Centre, station: str, name: str, *, priority: str) -> None:
    assert (await c.journal(station, name))[-1] == "raise"
    assert (station, name) in await c.listed("ctr-op")  # the centre's operator sees it with the others
    assert (station, name) in await c.listed("ctr-view")
    assert (station, name) in await c.ready()  # /readyz detail (public, for the orchestrator)
    sent = await c.notified(name)
    assert sent, f"no outbox message about {name}"
    assert {(m["tenant_id"], m["person"]) for m in sent} == {("centre", c.on_call())}  # the centre's staff
    a = next(
        a for a in (await c.client.get("/api/v1/alarms", headers=c.h())).json()["data"] if a["name"] == name
    )
    assert a["priority"] == priority and a["tenant"] == "centre"
    # a municipality's user: none of it in the list; the banner names the part only
    assert not {s for s, _ in await c.listed("kita-op") if s.startswith("system:")}
    b = (await c.client.get("/api/v1/system/banner", headers=c.h("kita-op"))).json()
    assert b["degraded"] is True and b["centre"] is False and b["alarms"] == [] and b["parts"]
    mine = (await c.client.get("/api/v1/system/banner", headers=c.h())).json()
    assert mine["centre"] is True and (station, name) in {(x["station"], x["name"]) for x in mine["alarms"]}


async def assert_cleared(c: Centre, station: str, name: str) -> None:
    assert (await c.journal(station, name))[-1] == "clear"
    assert (station, name) not in await c.listed("ctr-op")
    assert (station, name) not in await c.ready()


async def test_historian_set_up_incomplete(sqlite_url: str, tmp_path: Path) -> None:
    async with centre_stack(tmp_path, sqlite_url) as c:
        await c.check()
        assert await c.journal(HIST, "historian_setup_incomplete") == []  # all well: nothing
        assert (await c.client.get("/api/v1/system/banner", headers=c.h("kita-op"))).json()[
            "degraded"
        ] is False
        c.system.historian_problems = ["continuous aggregate sample_hourly: permission denied"]
        await c.check()
        await assert_raised(c, HIST, "historian_setup_incomplete", priority="high")
        r = await c.client.get("/api/v1/alarms", headers=c.h())
        msg = next(a["message"] for a in r.json()["data"] if a["name"] == "historian_setup_incomplete")
        assert "sample_hourly: permission denied" in msg  # which feature, said with the alarm
        b = (await c.client.get("/api/v1/system/banner", headers=c.h("kita-op"))).json()
        assert b["parts"] == ["history"] and "sample_hourly" not in str(b)
        c.system.historian_problems = []
        await c.check()
        await assert_cleared(c, HIST, "historian_setup_incomplete")


async def test_set_up_failure_fills_historian_problems(pg_url: str, monkeypatch) -> None:
    """Where ensure_timescale is called: a half set-up is caught into the field, not only logged."""
    from pumpwatch.app import system as system_module
    from pumpwatch.core.clock import FakeClock
    from pumpwatch.core.config import load_fleet
    from tests.conftest import DEMO_FLEET

    def half_set_up(engine):
        raise RuntimeError("create continuous aggregate sample_daily: function time_bucket does not exist")

    monkeypatch.setattr(system_module, "ensure_timescale", half_set_up)
    s = await system_module.System.prepare(load_fleet(DEMO_FLEET), pg_url, FakeClock(datetime.now(UTC)))
    try:
        assert len(s.historian_problems) == 1 and "sample_daily" in s.historian_problems[0]
        assert s.status()["historian_problems"] == s.historian_problems
    finally:
        await s.stop()


async def test_notifier_stopped_and_running_again(sqlite_url: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    async with centre_stack(tmp_path, sqlite_url) as c:
        await c.check()
        c.clock.advance(119)  # no notifier replica has run since the monitor started
        await c.check()
        assert await c.journal("system:notifier", "notifier_stopped") == []
        c.clock.advance(2)
        await c.check()
        await assert_raised(c, "system:notifier", "notifier_stopped", priority="critical")
        # a notifier runs (both loops pass): its heartbeat in the database clears the alarm
        assert c.system.notifier is not None
        await c.system.notifier.step()
        await c.system.notifier.step()
        c.clock.advance(6)  # past the monitor's 5-s reading cache
        await c.check()
        await assert_cleared(c, "system:notifier", "notifier_stopped")


async def test_rejected_input_rate(sqlite_url: str, tmp_path: Path) -> None:
    async with centre_stack(tmp_path, sqlite_url) as c:
        rj = c.system.rejections
        assert rj is not None
        station = "system:collector"
        for _ in range(9):  # 60 rejected per minute for 90 s; the rule wants > 30/min for 60 s
            for _ in range(10):
                rj.record("lte-1", "scada/v1/X/level", "not finite", "level: nan", b'{"v": NaN}')
            await c.check()
            c.clock.advance(10)
        await c.check()
        await assert_raised(c, station, "dead_letter_rate", priority="medium")
        c.clock.advance(61)  # nothing rejected for a minute: the rate falls below the deadband
        await c.check()
        await assert_cleared(c, station, "dead_letter_rate")


async def test_a_silent_shard(sqlite_url: str, tmp_path: Path) -> None:
    """Shard 0 of 2 watches shard 1's heartbeat (real heartbeats every 0.2 s, dead after 3 missed)."""
    async with centre_stack(tmp_path, sqlite_url, shard=Shard(0, 2), heartbeat_interval_s=0.2) as c:
        hb = c.system.heartbeat
        assert hb is not None
        now = datetime.now(UTC)
        row = {
            "shard": 1, "shard_count": 2, "host": "collector-1", "pid": 4242, "started_at": now,
            "heartbeat_at": now, "interval_s": 0.2, "stations": 6, "polls": 0, "late_polls": 0,
            "spool_rows": 0, "historian_state": "current",
        }  # fmt: skip
        await asyncio.to_thread(beat, c.system.engine, row)
        await wait_until(lambda: any(r["shard"] == 1 and r["alive"] for r in hb.last), 5, "shard 1 alive")
        await c.check()
        assert await c.journal("system:shard-1", "shard_dead") == []
        await wait_until(lambda: any(r["shard"] == 1 and not r["alive"] for r in hb.last), 5, "shard 1 dead")
        await wait_until(
            lambda: any(r["shard"] == 1 and r["age_s"] > 3 * 0.2 * 1.2 for r in hb.last), 5, "missed beats"
        )
        await c.check()
        await assert_raised(c, "system:shard-1", "shard_dead", priority="critical")
        r = await c.client.get("/api/v1/alarms", headers=c.h())
        msg = next(a["message"] for a in r.json()["data"] if a["name"] == "shard_dead")
        assert "shard 1/2 on collector-1 (pid 4242)" in msg
        # it comes back
        await asyncio.to_thread(beat, c.system.engine, {**row, "heartbeat_at": datetime.now(UTC)})
        await wait_until(lambda: any(r["shard"] == 1 and r["alive"] for r in hb.last), 5, "shard 1 back")
        await c.check()
        await assert_cleared(c, "system:shard-1", "shard_dead")
        assert await c.journal("system:shard-0", "shard_dead") == []  # a shard never declares itself dead


@pytest.mark.postgres
async def test_database_outage_fills_the_spool_and_lags_the_historian(pg_url: str, tmp_path: Path) -> None:
    url = make_url(pg_url)
    async with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        via = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        async with centre_stack(tmp_path, via, spool_bytes=256 * 1024) as c:
            w = c.system.writer
            assert w is not None and w.spool is not None
            w.flush_interval_s, w.retry_max_s = 0.1, 0.3
            station = "system:collector"
            pids = sorted(c.system.catalog.values())[:50]
            from pumpwatch.core.sample import Quality, Sample

            names = {pid: key for key, pid in c.system.catalog.items()}

            def feed(n: int) -> None:
                t = c.clock.now()
                for i in range(n):
                    batch = []
                    for pid in pids:
                        sid, point = names[pid]
                        batch.append(
                            Sample(sid, point, float(i) * 1.37 + pid, t + timedelta(seconds=i), Quality.GOOD)
                        )
                    w.accept(batch)

            await c.check()
            proxy.cut()
            feed(40)
            await wait_until(lambda: w.delayed and w.pending == 0, 10, "rows in the spool")
            c.clock.advance(30)
            await c.system.monitor.check()
            assert (station, "historian_lagging") not in {
                (a["station"], a["name"]) for a in c.system.monitor.active()
            }
            n = 40
            while w.spool.status().fill_pct < 81:  # keep reading while the database is away
                feed(30)
                n += 30
                await wait_until(lambda: w.pending == 0, 10, "rows spooled")
                assert n < 5_000 and not w.spool.status().dropped_rows, w.spool.status()
            c.clock.advance(31)  # rows have now waited 61 s
            await c.system.monitor.check()  # raised in memory; stored when the database answers
            held = {(a["station"], a["name"]) for a in c.system.monitor.active()}
            assert {(station, "spool_high"), (station, "historian_lagging")} <= held
            ready = (await c.client.get("/readyz")).json()
            assert {(a["station"], a["name"]) for a in ready["detail"]["system_alarms"]} >= held
            proxy.restore()
            await wait_until(lambda: not w.delayed and w.queue_age_s() == 0, 30, "the spool drained")
            await c.system.alarms.drain()
            await assert_raised(c, station, "spool_high", priority="high")
            await assert_raised(c, station, "historian_lagging", priority="high")
            await c.check()
            await assert_cleared(c, station, "spool_high")
            await assert_cleared(c, station, "historian_lagging")


async def test_system_alarms_survive_a_restart_and_clear_after(sqlite_url: str, tmp_path: Path) -> None:
    """Raised by one process, cleared by the next (restored like station alarms)."""
    from tests.system.centre import centre_fleet_dir

    fleet_dir = centre_fleet_dir(tmp_path)
    async with centre_stack(tmp_path, sqlite_url, fleet_dir=fleet_dir) as c:
        c.system.historian_problems = ["hypertable sample: not created"]
        await c.check()
        assert await c.journal(HIST, "historian_setup_incomplete") == ["raise"]
    async with centre_stack(tmp_path, sqlite_url, fleet_dir=fleet_dir) as c:
        await c.check()  # this time the set-up is complete
        assert await c.journal(HIST, "historian_setup_incomplete") == ["raise", "clear"]
