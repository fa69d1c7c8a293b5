"""Schema, migrations, engines and the UTCDateTime type, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, insert, inspect, select, text
from sqlalchemy.exc import StatementError

from pumpwatch.core.db import (
    current_revision,
    head_revision,
    make_engine,
    metadata,
    normalize_url,
    tenant,
    upgrade,
)
from pumpwatch.core.db.schema import include_object_for, station
from pumpwatch.core.db.types import UTCDateTime
from pumpwatch.core.timescale import ensure_timescale, timescale_active
from tests.services import create_database, drop_database

JST = timezone(timedelta(hours=9))


KIND: dict[str, str] = {}  # URL → which server


@pytest.fixture(params=["sqlite", "postgres", "timescale"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new, empty database: SQLite, plain PostgreSQL, and PostgreSQL with TimescaleDB available."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'pumpwatch.db'}"
        return
    name, url = create_database(request.param)
    KIND[url] = request.param
    try:
        yield url
    finally:
        drop_database(name, request.param)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    upgrade(eng)
    try:
        yield eng
    finally:
        eng.dispose()


# SQLite cannot reflect the expression index on lower(username): compared on PostgreSQL only
@pytest.mark.filterwarnings("ignore:.*expression-based index:UserWarning", "ignore:.*expression-based index")
def test_upgrade_is_idempotent_and_matches_metadata(db_url: str) -> None:
    eng = make_engine(db_url)
    try:
        assert current_revision(eng) is None
        upgrade(db_url)  # from a URL ...
        upgrade(eng)  # ... and again from an engine: a no-op
        assert current_revision(eng) == head_revision() == "0015_leases"
        timescale = KIND.get(db_url) == "timescale"
        if timescale:  # the TimescaleDB server: its set-up must leave the schema as declared
            features = ensure_timescale(eng)
            assert features.missing == {} and timescale_active(eng)
        with eng.connect() as conn:
            ctx = MigrationContext.configure(
                conn,
                opts={"include_object": include_object_for(conn.dialect.name), "compare_type": True},
            )
            assert compare_metadata(ctx, metadata) == []
        insp = inspect(eng)
        assert set(insp.get_table_names()) == set(metadata.tables) | {"alembic_version"}
        sample_ix = {ix["name"] for ix in insp.get_indexes("sample")}
        with eng.connect() as conn:
            if eng.dialect.name == "postgresql":
                assert sample_ix == {"ix_sample_observed_at"}
                defs = dict(conn.execute(text("SELECT indexname, indexdef FROM pg_indexes")).all())
                assert "USING brin (observed_at)" in defs["ix_sample_observed_at"]
                assert "WHERE open" in defs["uq_alarm_open_station_id_name"]
                assert defs["pk_sample"].endswith("(point_id, observed_at)")
                # every batch rewrites one latest_value row per point: room on the page for HOT updates
                opts = conn.execute(text("SELECT reloptions FROM pg_class WHERE relname = 'latest_value'"))
                assert opts.scalar() == ["fillfactor=50"]
                # sample: no row-level security (TimescaleDB compression refuses it), read through views
                rls_on = conn.execute(text("SELECT relrowsecurity FROM pg_class WHERE relname = 'sample'"))
                assert rls_on.scalar() is False
                views = conn.execute(
                    text("SELECT table_name FROM information_schema.views WHERE table_schema = 'scoped'")
                ).scalars()
                want = {"sample", "sample_1m", "sample_1h"}
                assert set(views) == want | ({"sample_1h_cagg", "sample_1d"} if timescale else set())
            else:
                assert sample_ix == set()  # nothing beyond the primary key on SQLite
                ddl = dict(conn.execute(text("SELECT name, sql FROM sqlite_master")).all())
                assert ddl["sample"].rstrip().endswith("WITHOUT ROWID")
                assert "WHERE open" in ddl["uq_alarm_open_station_id_name"]
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
                assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() > 0
    finally:
        eng.dispose()


def test_foreign_keys_are_enforced(engine: Engine) -> None:
    with pytest.raises(Exception, match="(?i)foreign key"), engine.begin() as conn:
        conn.execute(
            insert(station).values(
                id="S1", tenant_id="nobody", name="x", kind="relay_pump", updated_at=datetime.now(UTC)
            )
        )


def test_normalize_url() -> None:
    assert normalize_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("postgresql://u:p@h:5433/db") == "postgresql+psycopg://u:p@h:5433/db"
    assert normalize_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"
    eng = make_engine("postgresql://postgres@127.0.0.1/x")
    assert eng.dialect.driver == "psycopg"
    assert eng.pool._pre_ping
    eng.dispose()


def test_sqlite_engine_creates_folder_and_serves_threads(tmp_path: Path) -> None:
    db = tmp_path / "deep" / "er" / "pw.db"
    eng = make_engine(f"sqlite:///{db}")
    try:
        upgrade(eng)
        assert db.exists()

        def add(i: int) -> None:
            with eng.begin() as conn:
                conn.execute(insert(tenant).values(id=f"t{i}", name=f"T{i}", timezone="Asia/Tokyo"))

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(add, range(40)))
        with eng.connect() as conn:
            assert conn.execute(select(tenant.c.id)).scalars().all().__len__() == 40
    finally:
        eng.dispose()


def test_utc_datetime_round_trip_and_refuses_naive(engine: Engine) -> None:
    jst = datetime(2026, 7, 1, 9, 30, 15, 123456, tzinfo=JST)
    with engine.begin() as conn:
        conn.execute(insert(tenant).values(id="t", name="T", timezone="Asia/Tokyo"))
        conn.execute(
            insert(station).values(id="S1", tenant_id="t", name="s", kind="relay_pump", updated_at=jst)
        )
    with engine.connect() as conn:
        got = conn.execute(select(station.c.updated_at)).scalar_one()
        assert got == jst
        assert got.tzinfo is UTC
        assert got == datetime(2026, 7, 1, 0, 30, 15, 123456, tzinfo=UTC)
        # comparisons against bound aware values of any offset work on both dialects
        n = conn.execute(select(station.c.id).where(station.c.updated_at >= jst - timedelta(microseconds=1)))
        assert n.scalars().all() == ["S1"]

    naive = datetime(2026, 7, 1, 9, 30)
    with pytest.raises(ValueError, match="naive"):
        UTCDateTime().process_bind_param(naive, engine.dialect)
    with pytest.raises(StatementError) as info, engine.begin() as conn:
        conn.execute(
            insert(station).values(id="S2", tenant_id="t", name="s", kind="relay_pump", updated_at=naive)
        )
    assert isinstance(info.value.orig, ValueError)
