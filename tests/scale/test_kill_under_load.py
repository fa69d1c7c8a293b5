"""A collector process killed with SIGKILL again and again while its database is away: every sample it had
spooled (fsync'd) reaches the database after it restarts, none twice, and the time it was dead stays a gap
(nothing is filled in). The checker reads each spool as the killed process left it (a copy), so it knows
exactly which samples were acknowledged to disk, and compares them with the database per point.

`PUMPWATCH_SOAK_KILLS` sets the number of kills (2 in `make test`; `make soak` runs 20)."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from pumpwatch.core.clock import SystemClock
from pumpwatch.core.config import load_fleet
from pumpwatch.core.db import make_engine, upgrade
from pumpwatch.core.db.schema import latest_value, sample
from pumpwatch.core.spool import Spool
from pumpwatch.core.writer import decode_rows
from pumpwatch.simulators.fleet import SimulatedFleet
from tests.e2e.fleets import demo_fleet_dir_on_free_ports, wait_until
from tests.services import free_port
from tests.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

KILLS = int(os.environ.get("PUMPWATCH_SOAK_KILLS", "2"))
MARGIN = timedelta(seconds=0.2)  # a poll under way when the signal came carries its start time


def spooled_rows(folder: Path, scratch: Path) -> list[tuple]:
    """Every row pending in a spool, read from a copy (the original is left for the restart to replay)."""
    if not folder.exists():
        return []
    if scratch.exists():
        shutil.rmtree(scratch)
    shutil.copytree(folder, scratch)
    sp = Spool(scratch)
    rows: list[tuple] = []
    try:
        while (data := sp.peek()) is not None:
            rows += decode_rows(data)
            sp.commit()
    finally:
        sp.close()
    return rows


def _start(fleet_dir: Path, db: str, spool: Path, log_path: Path, env: dict) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "pumpwatch.app.cli", "run", "--fleet", str(fleet_dir), "--db", db]
    cmd += ["--no-api", "--no-notify", "--spool-dir", str(spool)]
    cmd += ["--probe-host", "127.0.0.1", "--probe-port", str(free_port())]
    with open(log_path, "ab") as log:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)


async def test_sigkill_under_load_loses_no_spooled_sample(pg_url: str, tmp_path: Path) -> None:
    fleet_dir = demo_fleet_dir_on_free_ports(tmp_path)
    fleet = load_fleet(fleet_dir)
    engine = make_engine(pg_url)
    upgrade(engine)
    rng = random.Random(20)
    u = make_url(pg_url)
    env = {**os.environ, "PUMPWATCH_LOG_LEVEL": "WARNING"}
    spool = tmp_path / "spool"

    def stored(since: datetime | None = None) -> int:
        with engine.connect() as conn:
            q = select(func.count()).select_from(sample)
            if since is not None:
                q = q.where(sample.c.observed_at > since)
            return conn.execute(q).scalar_one()

    acked: dict[tuple[int, datetime], float | None] = {}
    dead: list[tuple[datetime, datetime]] = []  # (killed, restarted)
    async with SimulatedFleet(fleet, SystemClock(), seed=20), TcpProxy(u.host, u.port or 5432) as proxy:
        db = u.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)

        def start() -> subprocess.Popen:
            return _start(fleet_dir, db, spool, tmp_path / "collector.log", env)

        proc = start()
        try:
            for i in range(KILLS):
                began = datetime.now(UTC)
                await wait_until(
                    lambda began=began: stored(began) > 0, 60, f"round {i}: samples stored", 0.25
                )
                proxy.cut()  # the database goes away: the collector spools
                await asyncio.sleep(rng.uniform(1.5, 3.0))
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
                killed = datetime.now(UTC)
                rows = spooled_rows(spool / "samples", tmp_path / "scratch")
                assert rows, f"round {i}: nothing was spooled"
                for r in rows:
                    acked[(r[0], r[1])] = r[2]
                proxy.restore()
                await asyncio.sleep(rng.uniform(0.5, 2.0))
                dead.append((killed, datetime.now(UTC)))
                proc = start()
            # the last life replays what the earlier ones spooled
            await wait_until(
                lambda: not spooled_rows(spool / "samples", tmp_path / "scratch"), 60, "spool drained"
            )
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()

    # the checker, per point
    with engine.connect() as conn:
        keys = sorted(acked)
        found: dict[tuple[int, datetime], float | None] = {}
        for n in range(0, len(keys), 5000):
            chunk = keys[n : n + 5000]
            pids = sorted({k[0] for k in chunk})
            lo, hi = min(k[1] for k in chunk), max(k[1] for k in chunk)
            for pid, t, v in conn.execute(
                select(sample.c.point_id, sample.c.observed_at, sample.c.value).where(
                    sample.c.point_id.in_(pids), sample.c.observed_at.between(lo, hi)
                )
            ):
                found[(pid, t)] = v
        lost = [k for k in keys if k not in found]
        changed = [k for k in keys if k in found and found[k] != acked[k]]
        newest = dict(
            conn.execute(
                select(sample.c.point_id, func.max(sample.c.observed_at)).group_by(sample.c.point_id)
            ).all()
        )
        latest = dict(conn.execute(select(latest_value.c.point_id, latest_value.c.observed_at)).all())
        # nothing stamped while the collector was dead (a gap stays a gap: no value is made up)
        filled = sum(
            conn.execute(
                select(func.count())
                .select_from(sample)
                .where(sample.c.observed_at > k + MARGIN, sample.c.observed_at < r)
            ).scalar_one()
            for k, r in dead
        )
        # the gap each kill left in one point per station: dead time (kill → restart command) + the restart
        # (the process's start until its first poll) + at most one poll interval
        gaps = []
        for k, r in dead:
            before = conn.execute(
                select(func.max(sample.c.observed_at)).where(sample.c.observed_at <= k + MARGIN)
            ).scalar_one()
            after = conn.execute(
                select(func.min(sample.c.observed_at)).where(sample.c.observed_at >= r)
            ).scalar_one()
            gaps.append(((after - before).total_seconds(), (r - k).total_seconds()))
    points = len({k[0] for k in keys})
    print(
        f"\n{KILLS} SIGKILLs while the database was away: {len(keys)} samples spooled over {points} points; "
        f"lost {len(lost)}, changed {len(changed)}, stamped while dead {filled}; gaps "
        + ", ".join(f"{g:.1f} s ({d:.1f} s dead + {g - d:.1f} s restart and poll)" for g, d in gaps)
    )
    assert not lost, f"{len(lost)} spooled samples lost, e.g. {lost[:3]}"
    assert not changed
    assert filled == 0
    behind = [pid for pid, t in newest.items() if latest.get(pid) != t]
    assert not behind, f"latest_value older than the newest sample for {len(behind)} points (out of order)"
