"""Schema migrations, run in code: `upgrade(url_or_engine)` at every start (idempotent), no alembic.ini.

The scripts live in the `pumpwatch.core.migrations` package. On PostgreSQL the upgrade holds a
transaction-level advisory lock, so several services starting at once migrate one after the other instead of
racing.
To write a new revision from a shell:

    from alembic import command
    from pumpwatch.core.db.migrate import make_config
    command.revision(make_config("sqlite:///dev.db"), message="…", autogenerate=True)
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine

from pumpwatch.core.db.engine import make_engine, normalize_url

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_ADVISORY_LOCK_KEY = 0x7077_6462  # "pwdb": serialises concurrent upgrades on one PostgreSQL database


def make_config(url: str | None = None) -> Config:
    """An Alembic Config pointing at the packaged migration scripts (and at `url`, if given)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return cfg


def upgrade(url_or_engine: str | Engine, revision: str = "head") -> None:
    """Bring the database to `revision` (default: the newest). Safe to call at every start."""
    engine = make_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_ADVISORY_LOCK_KEY})")
            cfg = make_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    finally:
        if isinstance(url_or_engine, str):
            engine.dispose()


def current_revision(engine: Engine | Connection) -> str | None:
    """The revision the database is at (None: never migrated)."""
    if isinstance(engine, Connection):
        return MigrationContext.configure(engine).get_current_revision()
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    """The newest revision among the packaged scripts."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(make_config()).get_current_head()
