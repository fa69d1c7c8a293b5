from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from pumpwatch.core.db import make_engine, upgrade
from pumpwatch.reports.definitions import Definitions, default_root, load_definitions


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
