"""Backup and restore drill (issue 20 part 4): a primary with WAL archiving (`archive_command`, an
`archive_timeout` that bounds the RPO), a base backup with `pg_basebackup`, samples written after it, the
primary lost at once (`pg_ctl stop -m immediate`, its data directory gone), and a fresh cluster restored
from the base backup and the archived WAL (`restore_command`, `recovery.signal`). The restored system
starts (migrations, catalogue) and serves the stations' latest values. Printed: the backup's duration, the
RPO (samples committed on the primary but not restored: at most one `archive_timeout` of them) and the RTO
(from the start of the restore until the API answers).

The clusters are private to the test (initdb in a temporary folder, loopback, a free port), run as the
`postgres` system user; the test skips where the PostgreSQL server binaries or that user are missing."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, text

from pumpwatch.api.main import create_app
from pumpwatch.app.system import System
from pumpwatch.core import historian
from pumpwatch.core.clock import SystemClock
from pumpwatch.core.config import load_fleet
from pumpwatch.core.db import make_engine, upgrade
from pumpwatch.core.db.schema import latest_value, sample
from tests.auth import log_in
from tests.e2e.fleets import demo_fleet_dir_on_free_ports
from tests.services import free_port

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

ARCHIVE_TIMEOUT_S = 2  # production: 60 s (README); the RPO bound is this plus the archive copy


def _bindir() -> Path | None:
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    d = Path(out.strip())
    return d if (d / "initdb").exists() and (d / "pg_ctl").exists() else None


BIN = _bindir()


def _as_postgres(*cmd: str) -> subprocess.CompletedProcess:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run([*prefix, *cmd], capture_output=True, text=True, check=True, timeout=300)


def _conf(datadir: Path, port: int, sock: Path, archive: Path, extra: str = "") -> None:
    with open(datadir / "postgresql.conf", "a") as f:
        f.write(
            f"\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{sock}'\n"
            "wal_level = replica\narchive_mode = on\n"
            f"archive_command = 'test ! -f {archive}/%f && cp %p {archive}/%f'\n"
            f"archive_timeout = {ARCHIVE_TIMEOUT_S}\nfsync = on\nmax_wal_senders = 4\n{extra}"
        )


@pytest.fixture
def drill_dir():
    if BIN is None:
        pytest.skip("PostgreSQL server binaries (pg_config --bindir: initdb, pg_ctl) are not installed")
    try:
        pw = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no `postgres` system user to run a private cluster as")
    d = Path(tempfile.mkdtemp(prefix="pumpwatch-drill-", dir="/tmp"))
    for sub in ("primary", "archive", "base", "restored", "sock"):
        (d / sub).mkdir()
    for p in [d, *d.iterdir()]:
        os.chown(p, pw.pw_uid, pw.pw_gid)
        os.chmod(p, 0o700)
    yield d
    for datadir in ("primary", "restored"):
        if (d / datadir / "postmaster.pid").exists():
            subprocess.run(
                [
                    "runuser",
                    "-u",
                    "postgres",
                    "--",
                    str(BIN / "pg_ctl"),
                    "-D",
                    str(d / datadir),
                    "stop",
                    "-m",
                    "immediate",
                ],
                capture_output=True,
            )
    shutil.rmtree(d, ignore_errors=True)


async def test_backup_and_restore_drill(drill_dir: Path, tmp_path: Path) -> None:
    assert BIN is not None
    d = drill_dir
    port, port2 = free_port(), free_port()
    _as_postgres(
        str(BIN / "initdb"), "-D", str(d / "primary"), "-U", "postgres", "--auth=trust", "-E", "UTF8"
    )
    _conf(d / "primary", port, d / "sock", d / "archive")
    _as_postgres(str(BIN / "pg_ctl"), "-D", str(d / "primary"), "-l", str(d / "primary.log"), "-w", "start")
    _as_postgres(str(BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "pumpwatch")
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/pumpwatch"
    fleet = load_fleet(demo_fleet_dir_on_free_ports(tmp_path))
    engine = make_engine(url)
    upgrade(engine)
    catalog = historian.sync_catalog(engine, fleet, {})
    pids = sorted(catalog.values())

    # an hour of history for every point (every 30 s), then the base backup
    t0 = datetime.now(UTC) - timedelta(hours=1)
    rows = [(pid, t0 + timedelta(seconds=s), float(s % 97), 0) for s in range(0, 3600, 30) for pid in pids]
    historian.write_samples(engine, rows)
    started = time.monotonic()
    _as_postgres(
        str(BIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
        "-D", str(d / "base"), "-X", "stream", "-c", "fast",
    )  # fmt: skip
    backup_s = time.monotonic() - started
    _as_postgres(str(BIN / "pg_verifybackup"), "-n", str(d / "base"))

    # samples keep coming after the backup: one batch every 0.5 s, each stamped with its commit
    committed: list[datetime] = []
    for _ in range(16):
        at = datetime.now(UTC)
        historian.write_samples(engine, [(pid, at, 1.0, 0) for pid in pids])
        committed.append(at)
        await asyncio.sleep(0.5)
    engine.dispose()
    lost_at = datetime.now(UTC)
    _as_postgres(str(BIN / "pg_ctl"), "-D", str(d / "primary"), "stop", "-m", "immediate")  # the disaster
    shutil.rmtree(d / "primary")

    # restore into a fresh cluster: the base backup, then the archived WAL
    restore_started = time.monotonic()
    shutil.rmtree(d / "restored")
    shutil.copytree(d / "base", d / "restored")
    pw = pwd.getpwnam("postgres")
    for root, dirs, files in os.walk(d / "restored"):
        for n in [*dirs, *files]:
            os.chown(os.path.join(root, n), pw.pw_uid, pw.pw_gid)
    os.chown(d / "restored", pw.pw_uid, pw.pw_gid)
    os.chmod(d / "restored", 0o700)
    _conf(d / "restored", port2, d / "sock", d / "archive", f"restore_command = 'cp {d / 'archive'}/%f %p'\n")
    (d / "restored" / "recovery.signal").touch()
    os.chown(d / "restored" / "recovery.signal", pw.pw_uid, pw.pw_gid)
    _as_postgres(
        str(BIN / "pg_ctl"),
        "-D",
        str(d / "restored"),
        "-l",
        str(d / "restored.log"),
        "-w",
        "-t",
        "600",
        "start",
    )
    url2 = f"postgresql+psycopg://postgres@127.0.0.1:{port2}/pumpwatch"
    engine2 = make_engine(url2)
    deadline = time.monotonic() + 600
    while True:
        with engine2.connect() as conn:
            if not conn.execute(text("SELECT pg_is_in_recovery()")).scalar():
                break
        assert time.monotonic() < deadline, "recovery did not finish"
        await asyncio.sleep(0.2)
    system = await System.prepare(fleet, url2, SystemClock())  # migrations (a no-op) and the catalogue
    try:
        transport = httpx.ASGITransport(app=create_app(system.api_context()))
        async with httpx.AsyncClient(transport=transport, base_url="http://pumpwatch.test") as client:
            await log_in(client, system.engine, fleet.tenants)
            r = await client.get("/api/v1/stations")
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["count"] == len(fleet.stations)
            latest = await client.get(f"/api/v1/stations/{body['data'][0]['id']}")
            assert latest.status_code == 200, latest.text
        rto_s = time.monotonic() - restore_started
        with engine2.connect() as conn:
            newest = conn.execute(select(func.max(sample.c.observed_at))).scalar_one()
            newest_latest = conn.execute(select(func.max(latest_value.c.observed_at))).scalar_one()
            history = conn.execute(
                select(func.count()).select_from(sample).where(sample.c.observed_at < committed[0])
            ).scalar_one()
    finally:
        await system.stop()
        engine2.dispose()
    assert history == len(rows)  # everything up to the backup, and before
    assert newest_latest == newest  # the latest values as the last restored transaction left them
    missing = [t for t in committed if t > newest]
    rpo_s = (lost_at - newest).total_seconds()
    print(
        f"\nbackup/restore drill: base backup {backup_s:.1f} s ({len(rows)} rows of history); "
        f"primary lost at once; restored batches {len(committed) - len(missing)} of {len(committed)}; "
        f"RPO {rpo_s:.1f} s (archive_timeout {ARCHIVE_TIMEOUT_S} s), RTO {rto_s:.1f} s to the API answering"
    )
    assert rpo_s <= 300  # goal: RPO ≤ 5 min
    assert rpo_s <= ARCHIVE_TIMEOUT_S + 3  # what the archive_timeout bounds, plus the copy and scheduling
    assert rto_s <= 1800  # goal: RTO ≤ 30 min
