"""Three collector processes (`pumpwatch run --shard i/3 --no-api`) over one PostgreSQL database poll every
station of the demo fleet exactly once between them, a power outage of an area spanning the three shards
opens one incident, and a shard killed with SIGKILL is noticed."""

from __future__ import annotations

import asyncio
import os
import signal
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
from pumpwatch.core.db.schema import collector_shard, incident, incident_station, point, sample, station_owner
from pumpwatch.core.sharding import Shard, parse_shard, shard_health, stations_of
from pumpwatch.simulators.fleet import SimulatedFleet
from tests.auth import log_in
from tests.e2e.fleets import demo_fleet_dir_on_free_ports, wait_until
from tests.services import free_port

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


def test_parse_shard() -> None:
    assert parse_shard("2/3") == Shard(2, 3)
    assert parse_shard("ordinal/4", hostname="pumpwatch-collector-3") == Shard(3, 4)
    for bad in ("3/3", "x/2", "1", "ordinal/2"):
        with pytest.raises(ValueError):
            parse_shard(bad, hostname="no-number-here-x")


def test_shards_partition_the_city_fleet() -> None:
    from tests.conftest import REPO

    fleet = load_fleet(REPO / "deploy" / "config" / "city")
    parts = [stations_of(fleet, Shard(i, 4)) for i in range(4)]
    assert set().union(*parts) == set(fleet.stations)
    assert sum(len(p) for p in parts) == len(fleet.stations)  # disjoint
    for c in fleet.modbus_controllers():  # a gateway's units stay together (one request at a time)
        owners = {i for i, p in enumerate(parts) if any(u.station in p for u in c.units)}
        assert len(owners) == 1, c.id


def _start_shard(i: int, fleet_dir: Path, db: str, tmp: Path, env: dict) -> subprocess.Popen:
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
    cmd += ["--shard", f"{i}/3", "--spool-dir", str(tmp / "spool")]
    cmd += ["--probe-host", "127.0.0.1", "--probe-port", str(free_port())]
    with open(tmp / f"shard{i}.log", "wb") as log:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)


async def test_three_collector_processes_share_the_fleet_and_a_dead_one_is_noticed(
    pg_both_url: str, tmp_path: Path
) -> None:
    fleet_dir = demo_fleet_dir_on_free_ports(tmp_path)
    fleet = load_fleet(fleet_dir)
    engine = make_engine(pg_both_url)
    upgrade(engine)
    env = {
        **os.environ,
        "PUMPWATCH_HEARTBEAT_INTERVAL_S": "1",
        "PUMPWATCH_LOG_LEVEL": "WARNING",
    }
    procs: list[subprocess.Popen] = []
    async with SimulatedFleet(fleet, SystemClock(), seed=3) as sim:
        try:
            procs += [_start_shard(i, fleet_dir, pg_both_url, tmp_path, env) for i in range(3)]

            def stations_sampled() -> int:
                with engine.connect() as conn:
                    return conn.execute(
                        select(func.count(func.distinct(point.c.station_id))).select_from(
                            sample.join(point, point.c.id == sample.c.point_id)
                        )
                    ).scalar_one()

            def beats() -> int:
                with engine.connect() as conn:
                    return conn.execute(select(func.count()).select_from(collector_shard)).scalar_one()

            await wait_until(
                lambda: beats() == 3 and stations_sampled() == len(fleet.stations),
                60,
                "three shards beating and every station sampled",
                step=0.5,
            )
            await asyncio.sleep(6)  # a few poll cycles of every shard

            with engine.connect() as conn:
                owners = dict(conn.execute(select(station_owner.c.station_id, station_owner.c.shard)).all())
                # instants per station for one point: one poller gives one per poll interval
                per_station = {
                    sid: (n, lo, hi)
                    for sid, n, lo, hi in conn.execute(
                        select(
                            point.c.station_id,
                            func.count(),
                            func.min(sample.c.observed_at),
                            func.max(sample.c.observed_at),
                        )
                        .select_from(sample.join(point, point.c.id == sample.c.point_id))
                        .where(point.c.name == "wet_well_level_m")
                        .group_by(point.c.station_id)
                    )
                }
            assert set(owners) == set(fleet.stations)  # none missed
            for sid, shard in owners.items():
                assert sid in stations_of(fleet, Shard(shard, 3))  # each by the shard the hash names
            interval = {u.station: c.poll_interval_s for c in fleet.modbus_controllers() for u in c.units}
            assert set(per_station) == set(fleet.stations)
            for sid, (n, lo, hi) in per_station.items():
                span = (hi - lo).total_seconds()
                assert n <= span / interval[sid] + 2, f"{sid}: {n} polls in {span:.0f} s: polled twice?"

            # kita-feeder-1 loses mains: its three stations belong to three shards, each raising its own
            # station's power failure; together they are one incident.
            area = [sid for sid, st in fleet.stations.items() if st.power_area == "kita-feeder-1"]
            assert {owners[sid] for sid in area} == {0, 1, 2}, "the demo area no longer spans the shards"

            def area_incidents() -> list:
                with engine.connect() as conn:
                    return conn.execute(
                        select(incident.c.id, incident.c.restored_at).where(
                            incident.c.power_area == "kita-feeder-1"
                        )
                    ).all()

            def members() -> set[str]:
                with engine.connect() as conn:
                    return set(conn.execute(select(incident_station.c.station_id)).scalars())

            sim.set_mains(area, False)
            await wait_until(lambda: members() == set(area), 30, "one incident of the whole area", step=0.5)
            await asyncio.sleep(2)  # a second incident would have been opened by now
            ((_, restored),) = area_incidents()
            assert restored is None  # restoring across shards: tests/alarms/test_incidents_across_shards.py
            sim.set_mains(area, True)

            # SIGKILL shard 1: no goodbye, its heartbeat just stops.
            procs[1].send_signal(signal.SIGKILL)
            procs[1].wait(10)
            killed_at = time.monotonic()
            transport = httpx.ASGITransport(
                app=create_app(ApiContext(fleet=fleet, engine=engine, clock=SystemClock(), catalog={}))
            )
            async with httpx.AsyncClient(transport=transport, base_url="http://pumpwatch.test") as client:
                await log_in(client, engine, fleet.tenants)
                deadline = time.monotonic() + 20
                while True:
                    dead = (await client.get("/api/v1/system/status")).json()["dead_shards"]
                    if dead == [1]:
                        break
                    assert time.monotonic() < deadline, f"dead shard not noticed; dead={dead}"
                    await asyncio.sleep(0.5)
            assert time.monotonic() - killed_at <= 10  # three 1-s heartbeats, plus scheduling slack
            health = {r["shard"]: r["alive"] for r in shard_health(engine, datetime.now(UTC))}
            assert health == {0: True, 1: False, 2: True}
        finally:
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
            engine.dispose()
