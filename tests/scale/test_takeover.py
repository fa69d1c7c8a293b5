"""Takeover of a dead collector's links, with real processes: two shards (`--shard i/2`) and a standby
(`--standby`) over one PostgreSQL database, 1-s heartbeats. A shard killed with SIGKILL has its links
polled again by a live collector within three heartbeats and one poll interval (printed), its active
alarm goes on (not raised twice, cleared by the taker), and it gets its links back when it restarts; a
shard stopped with SIGSTOP is taken over too and, resumed, stops polling before it asks its links back. No
link is polled by two collectors at once."""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from pumpwatch.api.context import ApiContext
from pumpwatch.api.main import create_app
from pumpwatch.core.clock import SystemClock
from pumpwatch.core.config import load_fleet
from pumpwatch.core.db import make_engine, upgrade
from pumpwatch.core.db.schema import alarm, lease_grant, link_lease, point, sample
from pumpwatch.core.sharding import Shard, stations_of
from pumpwatch.simulators.fleet import SimulatedFleet
from tests.auth import log_in
from tests.e2e.fleets import demo_fleet_dir_on_free_ports, wait_until
from tests.services import free_port

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

HEARTBEAT_S = 1.0
SLACK_S = 2.5  # process scheduling on a loaded 2-core machine, connect time to the device


def _start(args: list[str], name: str, fleet_dir: Path, db: str, tmp: Path, env: dict) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "pumpwatch.app.cli",
        "run",
        "--fleet",
        str(fleet_dir),
        "--db",
        db,
        "--no-api",
    ]
    cmd += [*args, "--spool-dir", str(tmp / "spool"), "--no-notify"]
    cmd += ["--probe-host", "127.0.0.1", "--probe-port", str(free_port())]
    with open(tmp / f"{name}.log", "ab") as log:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)


async def test_a_dead_or_stopped_shard_is_taken_over_and_given_back(pg_url: str, tmp_path: Path) -> None:
    fleet_dir = demo_fleet_dir_on_free_ports(tmp_path)
    fleet = load_fleet(fleet_dir)
    engine = make_engine(pg_url)
    upgrade(engine)
    env = {**os.environ, "PUMPWATCH_HEARTBEAT_INTERVAL_S": str(HEARTBEAT_S), "PUMPWATCH_LOG_LEVEL": "WARNING"}
    link_of = {u.station: c.id for c in fleet.modbus_controllers() for u in c.units}
    poll_s = max(c.poll_interval_s for c in fleet.modbus_controllers())
    home = {i: sorted({link_of[s] for s in stations_of(fleet, Shard(i, 2))}) for i in (0, 1)}
    stations_of_link: dict[str, list[str]] = {}
    for s, k in link_of.items():
        stations_of_link.setdefault(k, []).append(s)
    bound = 3 * HEARTBEAT_S + poll_s

    def owners() -> dict[str, str | None]:
        with engine.connect() as conn:
            return dict(conn.execute(select(link_lease.c.link_id, link_lease.c.owner)).all())

    def first_sample_after(stations: list[str], t: datetime) -> datetime | None:
        with engine.connect() as conn:
            return conn.execute(
                select(func.min(sample.c.observed_at))
                .select_from(sample.join(point, point.c.id == sample.c.point_id))
                .where(point.c.station_id.in_(stations), sample.c.observed_at > t)
            ).scalar()

    def grants_count(link: str) -> int:
        with engine.connect() as conn:
            return conn.execute(
                select(func.count()).select_from(lease_grant).where(lease_grant.c.link_id == link)
            ).scalar_one()

    async def takeover_times(links: list[str], since: datetime, what: str) -> list[float]:
        await wait_until(
            lambda: all(first_sample_after(stations_of_link[k], since) for k in links), 40, what, step=0.25
        )
        return [(first_sample_after(stations_of_link[k], since) - since).total_seconds() for k in links]

    procs: dict[str, subprocess.Popen] = {}
    async with SimulatedFleet(fleet, SystemClock(), seed=5) as sim:
        try:
            procs["shard-0"] = _start(["--shard", "0/2"], "shard-0", fleet_dir, pg_url, tmp_path, env)
            procs["shard-1"] = _start(["--shard", "1/2"], "shard-1", fleet_dir, pg_url, tmp_path, env)
            procs["standby"] = _start(
                ["--standby", "--collector-id", "standby-a"], "standby", fleet_dir, pg_url, tmp_path, env
            )
            everything = {k: f"shard-{i}" for i in (0, 1) for k in home[i]}
            await wait_until(
                lambda: owners() == everything, 60, "each shard holding its home links", step=0.5
            )
            t_start = datetime.now(UTC)
            await takeover_times(sorted(everything), t_start, "every link sampled")

            # an alarm active on a station of shard 0 when it dies
            x = sorted(stations_of_link[home[0][0]])[0]

            def power_alarms() -> list:
                with engine.connect() as conn:
                    return conn.execute(
                        select(alarm.c.active, alarm.c.raise_count, alarm.c.cleared_at).where(
                            alarm.c.station_id == x, alarm.c.name == "power_failure"
                        )
                    ).all()

            sim.set_mains([x], False)
            await wait_until(lambda: [a.active for a in power_alarms()] == [True], 30, "power failure raised")

            # 1. SIGKILL shard 0: its links are polled again within the bound
            procs["shard-0"].send_signal(signal.SIGKILL)
            procs["shard-0"].wait(10)
            killed = datetime.now(UTC)
            times = await takeover_times(home[0], killed, "shard 0's links polled again")
            print(
                f"\ntakeover after SIGKILL ({len(times)} links, heartbeat {HEARTBEAT_S:.0f} s, "
                f"poll {poll_s:.0f} s): median {statistics.median(times):.1f} s, "
                f"max {max(times):.1f} s (bound {bound:.0f} s)"
            )
            assert max(times) <= bound + SLACK_S
            taken = owners()
            assert all(taken[k] in ("standby-a", "shard-1") for k in home[0]), taken
            # where an operator looks: shard 0 dead, its links polled, by whom
            transport = httpx.ASGITransport(
                app=create_app(ApiContext(fleet=fleet, engine=engine, clock=SystemClock(), catalog={}))
            )
            async with httpx.AsyncClient(transport=transport, base_url="http://pumpwatch.test") as client:
                await log_in(client, engine, fleet.tenants)
                status = (await client.get("/api/v1/system/status")).json()
            assert status["unpolled_links"] == []
            assert {r["link"]: r["owner"] for r in status["links"]} == taken

            # the alarm goes on with the taker: not raised again while the mains stay off, cleared when back
            await asyncio.sleep(4)  # past the on-delay: a taker that forgot would raise it again
            ((active, raises, _),) = power_alarms()
            assert active and raises == 1
            sim.set_mains([x], True)
            await wait_until(
                lambda: [a.active for a in power_alarms()] == [False],
                40,
                "power failure cleared by the taker",
            )
            ((_, raises, cleared_at),) = power_alarms()
            assert raises == 1 and cleared_at is not None

            # 2. shard 0 restarts: it gets its links back (the taker stops, stores, releases)
            before = {k: grants_count(k) for k in home[0]}
            restarted = time.monotonic()
            procs["shard-0"] = _start(["--shard", "0/2"], "shard-0", fleet_dir, pg_url, tmp_path, env)
            await wait_until(
                lambda: all(owners()[k] == "shard-0" for k in home[0]), 60, "links given back", step=0.25
            )
            print(f"give-back after restart: {time.monotonic() - restarted:.1f} s (process start included)")
            assert all(grants_count(k) == before[k] + 1 for k in home[0])  # one new grant each, no fight

            # 3. SIGSTOP shard 1: taken over; SIGCONT: it stops polling, asks back, gets them again
            procs["shard-1"].send_signal(signal.SIGSTOP)
            stopped = datetime.now(UTC)
            await wait_until(
                lambda: all(owners()[k] not in (None, "shard-1") for k in home[1]), 30, "shard 1 taken over"
            )
            times = await takeover_times(home[1], stopped, "shard 1's links polled again")
            print(f"takeover after SIGSTOP: max {max(times):.1f} s (bound {bound:.0f} s)")
            assert max(times) <= bound + SLACK_S
            await asyncio.sleep(2 * poll_s)
            procs["shard-1"].send_signal(signal.SIGCONT)
            resumed = time.monotonic()
            await wait_until(
                lambda: all(owners()[k] == "shard-1" for k in home[1]), 30, "shard 1's links back", step=0.25
            )
            print(f"give-back after SIGCONT: {time.monotonic() - resumed:.1f} s")
            await asyncio.sleep(2 * poll_s)

            # never two pollers: two collectors polling one link give samples closer than half an interval,
            # again and again; one handover may give one such gap
            interval = {u.station: c.poll_interval_s for c in fleet.modbus_controllers() for u in c.units}
            with engine.connect() as conn:
                rows = conn.execute(
                    select(point.c.station_id, sample.c.observed_at)
                    .select_from(sample.join(point, point.c.id == sample.c.point_id))
                    .where(point.c.name == "wet_well_level_m", sample.c.observed_at >= t_start)
                    .order_by(point.c.station_id, sample.c.observed_at)
                ).all()
            by_station: dict[str, list[datetime]] = {}
            for sid, t in rows:
                by_station.setdefault(sid, []).append(t)
            for sid, ts in by_station.items():
                short = sum(
                    1 for a, b in zip(ts, ts[1:], strict=False) if (b - a).total_seconds() < interval[sid] / 2
                )
                handovers = grants_count(link_of[sid])
                assert short <= handovers, f"{sid}: {short} samples closer than half a poll: polled twice?"
        finally:
            for p in procs.values():
                if p.poll() is None:
                    p.send_signal(signal.SIGCONT)
                    p.send_signal(signal.SIGTERM)
            for p in procs.values():
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
            engine.dispose()
