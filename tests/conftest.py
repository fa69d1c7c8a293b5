from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.auth import SECRET
from tests.mqtt_fixtures import mqtt_broker  # noqa: F401  (fixture)
from tests.services import create_database, drop_database, free_port

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
