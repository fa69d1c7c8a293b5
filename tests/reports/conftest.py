from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine

from pumpwatch.alarms.store import raise_alarm
from pumpwatch.core.db import make_engine, upgrade
from pumpwatch.reports.definitions import Definitions, default_root, load_definitions
from tests.reports.history import Truth, demo_fleet, simulate

JST = ZoneInfo("Asia/Tokyo")
DAY = date(2026, 11, 3)
START = datetime(2026, 11, 3, tzinfo=JST)
POLL = 10
OUTAGE = (START + timedelta(hours=2), START + timedelta(hours=2, minutes=45))
GAP = (START + timedelta(hours=10), START + timedelta(hours=12, minutes=30))
LATER = datetime(2026, 11, 10, tzinfo=JST)
STATION = "KITA-MP-01"


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    upgrade(url)
    eng = make_engine(url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def defs() -> Definitions:
    return load_definitions(default_root())


@pytest.fixture(scope="session")
def day(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, object, Truth]]:
    tmp = tmp_path_factory.mktemp("day")
    fleet = demo_fleet(tmp, POLL)
    url = f"sqlite:///{tmp / 'h.db'}"
    upgrade(url)
    eng = make_engine(url)
    truth = simulate(eng, fleet, START, 24, poll_s=POLL, outage=OUTAGE, gap=GAP)
    raise_alarm(
        eng, tenant_id="kita", station_id=STATION, name="power_failure", priority="critical",
        message="Power failure", value=1.0, at=OUTAGE[0] + timedelta(seconds=3),
    )  # fmt: skip
    yield eng, fleet, truth
    eng.dispose()
