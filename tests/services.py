"""Real services for tests: free loopback ports and fresh PostgreSQL databases.

Outside CI a missing service skips the test with a message saying how to get it; under CI=true it fails.
"""

from __future__ import annotations

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


def _admin_connect():
    import psycopg

    try:
        return psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        service_missing(
            "PostgreSQL",
            f"could not connect to {PG_ADMIN_DSN} ({exc}). Start it (e.g. `pg_ctlcluster 15 main start`), "
            "or point PUMPWATCH_TEST_PG at an admin DSN; `.ci/run` installs it.",
        )
        raise  # unreachable: service_missing raises


def create_database() -> tuple[str, str]:
    """Create a fresh database; return (its name, its SQLAlchemy URL)."""
    name = f"pumpwatch_test_{uuid.uuid4().hex[:12]}"
    with _admin_connect() as conn:
        conn.execute(f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8'")
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    url = f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)
    return name, url


def drop_database(name: str) -> None:
    with _admin_connect() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
