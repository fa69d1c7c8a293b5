from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import namespace
from tests.auth import SECRET
from tests.mqtt_fixtures import mqtt_broker  # noqa: F401  (fixture)
from tests.services import create_database, drop_database, free_port

namespace.install()  # `import api` & co. fail loudly instead of loading second copies (tests/namespace.py)

REPO = Path(__file__).resolve().parent.parent
DEMO_FLEET = REPO / "deploy" / "config" / "demo"


@pytest.fixture(autouse=True, scope="session")
def _strong_secret() -> Iterator[None]:
    """Every `pumpwatch run` / `notify run` a test starts signs with a strong secret (the default and the
    placeholders are refused outside the demo); tests of that refusal take it away themselves."""
    mp = pytest.MonkeyPatch()
    mp.setenv("PUMPWATCH_SECRET_KEY", SECRET)
    yield
    mp.undo()


@pytest.fixture(autouse=True)
def _quiet_pymodbus() -> None:
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test (SQLAlchemy URL, psycopg 3 driver)."""
    name, url = create_database()
    try:
        yield url
    finally:
        drop_database(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'pumpwatch.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Runs the test once against SQLite and once against a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'pumpwatch.db'}"
        return
    name, url = create_database()
    try:
        yield url
    finally:
        drop_database(name)


# --- the historian's statements on both PostgreSQL shapes -------------------------------------------------
# The historian, outage, rollup, RLS, alarm-flood and shard tests take these instead of `pg_url` / `db_url`,
# so every statement pumpwatch sends to the historian runs on plain PostgreSQL and on TimescaleDB (where
# `sample` is a compressed, retained hypertable with continuous aggregates). Databases are copies of this
# run's migrated templates (tests.services): `upgrade()` on them is a no-op.


def _migrated(kind: str) -> Iterator[str]:
    name, url = create_database(kind, migrated=True)
    try:
        yield url
    finally:
        drop_database(name, kind)


@pytest.fixture(params=["postgres", "timescale"])
def pg_both_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A migrated database on plain PostgreSQL, then on TimescaleDB."""
    yield from _migrated(request.param)


@pytest.fixture(params=["sqlite", "postgres", "timescale"])
def db_all_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """SQLite (a new file, not migrated), then migrated PostgreSQL and TimescaleDB databases."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'pumpwatch.db'}"
        return
    yield from _migrated(request.param)


@pytest.fixture
def ts_url() -> Iterator[str]:
    """A migrated TimescaleDB database (hypertable, compression, retention, continuous aggregates)."""
    yield from _migrated("timescale")


@pytest.fixture
def ts_apache_url() -> Iterator[str]:
    """A fresh, empty database on a TimescaleDB server restricted to the Apache licence."""
    name, url = create_database("timescale_apache")
    try:
        yield url
    finally:
        drop_database(name, "timescale_apache")
