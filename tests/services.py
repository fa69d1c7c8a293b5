"""Real services for tests: free loopback ports and fresh PostgreSQL databases.

Outside CI a missing service skips the test with a message saying how to get it; under CI=true it fails.
"""

from __future__ import annotations

import atexit
import os
import random
import socket
import uuid
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_ADMIN_DSN = os.environ.get("PUMPWATCH_TEST_PG", "postgresql://postgres:postgres@127.0.0.1:5432/postgres")


def service_missing(what: str, how: str) -> None:
    """Skip (or fail under CI) because a service the test needs is not there."""
    msg = f"{what} is not available: {how}"
    if IN_CI:
        pytest.fail(f"CI=true and {msg}", pytrace=False)
    pytest.skip(msg)


_handed_out: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def free_port(host: str = "127.0.0.1") -> int:
    """A port free now, below the kernel's ephemeral range: the OS would otherwise give the same port to
    an outgoing client socket between our check and the server's bind."""
    lo_eph, _ = _ephemeral_range()
    low, high = (20000, lo_eph - 1) if lo_eph > 21000 else (61001, 64999)
    # pytest-xdist workers each draw from their own slice, so two workers never hand out the same port
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if worker.startswith("gw") and worker[2:].isdigit() and count > 1:
        width = (high - low + 1) // count
        low += int(worker[2:]) * width
        high = low + width - 1
    for _ in range(1000):
        port = random.randint(low, high)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port found")


# Where each kind of test database lives: plain PostgreSQL, TimescaleDB, TimescaleDB under the Apache licence
ADMIN_DSN = {
    "postgres": PG_ADMIN_DSN,
    "timescale": os.environ.get(
        "PUMPWATCH_TEST_TIMESCALE", "postgresql://postgres:postgres@127.0.0.1:5433/postgres"
    ),
    "timescale_apache": os.environ.get(
        "PUMPWATCH_TEST_TIMESCALE_APACHE", "postgresql://postgres:postgres@127.0.0.1:5434/postgres"
    ),
}
_HOW = {
    "postgres": "Start it (e.g. `pg_ctlcluster 15 main start`), or point PUMPWATCH_TEST_PG at an admin DSN; "
    "`.ci/run` installs it.",
    "timescale": "Run `.ci/timescaledb.sh` as root (builds the vendored TimescaleDB 2.28.3 once and starts "
    "cluster 15/tsdb on port 5433; `.ci/run` does it), or point PUMPWATCH_TEST_TIMESCALE at the admin DSN "
    "of a server that preloads timescaledb (e.g. `docker run -p 5433:5432 -e POSTGRES_PASSWORD=postgres "
    "timescale/timescaledb:2.28.3-pg15`).",
    "timescale_apache": "Run `.ci/timescaledb.sh` as root (cluster 15/tsdb_apache on port 5434 with "
    "timescaledb.license = 'apache'), or point PUMPWATCH_TEST_TIMESCALE_APACHE at such a server (e.g. the "
    "image `timescale/timescaledb:2.28.3-pg15-oss`).",
}
_NAME = {"postgres": "PostgreSQL", "timescale": "TimescaleDB", "timescale_apache": "Apache-only TimescaleDB"}
_checked: set[str] = set()


def _admin_connect(kind: str = "postgres"):
    import psycopg

    dsn = ADMIN_DSN[kind]
    try:
        conn = psycopg.connect(dsn, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        service_missing(_NAME[kind], f"could not connect to {dsn} ({exc}). {_HOW[kind]}")
        raise  # unreachable: service_missing raises
    if kind != "postgres" and kind not in _checked:
        # defined by TimescaleDB's loader only when the server preloads it
        workers, lic = conn.execute(
            "SELECT current_setting('timescaledb.max_background_workers', true), "
            "current_setting('timescaledb.license', true)"
        ).fetchone()
        if workers is None:
            conn.close()
            service_missing(_NAME[kind], f"{dsn} does not preload timescaledb. {_HOW[kind]}")
        _checked.add(kind)
    return conn


def create_database(kind: str = "postgres", *, migrated: bool = False) -> tuple[str, str]:
    """Create a fresh database; return (its name, its SQLAlchemy URL). `kind`: `postgres` (plain),
    `timescale` or `timescale_apache` (the extension is available; nothing is created in the database).
    `migrated`: a copy of this run's template, migrated to head and, on TimescaleDB, set up by
    `ensure_timescale` (sample a hypertable with compression, retention and continuous aggregates), its
    policies paused for the background scheduler (tests run them with `CALL run_job`)."""
    name = f"pumpwatch_test_{uuid.uuid4().hex[:12]}"
    template = _template(kind) if migrated else "template0"
    with _admin_connect(kind) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" ENCODING \'UTF8\'')
    return name, _url(kind, name)


def drop_database(name: str, kind: str = "postgres") -> None:
    with _admin_connect(kind) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _url(kind: str, name: str) -> str:
    base = ADMIN_DSN[kind].rsplit("/", 1)[0]
    return f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)


_templates: dict[str, str] = {}


def _template(kind: str) -> str:
    """This test run's migrated template of `kind` (made on first use, dropped at exit): a copy of it
    costs a file copy instead of a migration (≈ 0.5 s, and 0.3 s more for TimescaleDB's set-up)."""
    name = _templates.get(kind)
    if name is not None:
        return name
    from pumpwatch.core.db import make_engine, upgrade
    from pumpwatch.core.timescale import ensure_timescale

    name = f"pumpwatch_tpl_{kind}_{uuid.uuid4().hex[:8]}"
    with _admin_connect(kind) as conn:
        conn.execute(f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8'")
    atexit.register(_drop_template, kind, name)
    engine = make_engine(_url(kind, name))
    try:
        upgrade(engine)
        if kind != "postgres":
            ensure_timescale(engine)
            # The copies' policies run when a test says (`CALL run_job`), not when TimescaleDB's
            # scheduler happens to start them: a chunk compressed mid-test would make it flaky.
            with engine.begin() as conn:
                conn.exec_driver_sql(
                    "SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs "
                    "WHERE hypertable_name IS NOT NULL"
                )
    finally:
        engine.dispose()
    with _admin_connect(kind) as conn:
        # nobody connects to a template (TimescaleDB's job scheduler would, and block the copies)
        conn.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        conn.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
    _templates[kind] = name
    return name


def _drop_template(kind: str, name: str) -> None:
    try:
        drop_database(name, kind)
    except BaseException:  # the server went away first: nothing to clean
        pass
