"""Engines for the historian: `make_engine(url)` for SQLite files and PostgreSQL (psycopg 3).

- `postgresql://` and `postgres://` URLs are rewritten to `postgresql+psycopg://` (psycopg 3, not psycopg2);
  PostgreSQL pools use `pool_pre_ping` so a restarted server costs one failed ping, not one failed write.
- SQLite: the parent folder is created; every connection gets WAL, a busy timeout and `foreign_keys=ON`, and
  may be used from worker threads (the async side calls the historian through `asyncio.to_thread`).
  The driver's own implicit transaction handling is switched off and SQLAlchemy emits `BEGIN IMMEDIATE`
  itself, so a transaction really spans all of its statements (the pysqlite recipe in SQLAlchemy's SQLite
  docs) and holds the write lock from its start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

SQLITE_BUSY_TIMEOUT_MS = 10_000


def normalize_url(url: str) -> str:
    """`postgres://…` / `postgresql://…` → `postgresql+psycopg://…`; anything else unchanged."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An Engine for `url` set up for the historian (extra keyword arguments go to `create_engine`)."""
    sa_url = make_url(normalize_url(url))
    backend = sa_url.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(sa_url, **kwargs)
    if backend == "postgresql":
        kwargs.setdefault("pool_pre_ping", True)
    return create_engine(sa_url, **kwargs)


def _sqlite_engine(sa_url: Any, **kwargs: Any) -> Engine:
    database = sa_url.database
    in_memory = not database or database == ":memory:" or sa_url.query.get("mode") == "memory"
    if not in_memory and not database.startswith("file:"):
        Path(database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
    connect_args = dict(kwargs.pop("connect_args", {}))
    connect_args.setdefault("check_same_thread", False)
    engine = create_engine(sa_url, connect_args=connect_args, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # no implicit BEGIN by the driver; see the "begin" hook
        cur = dbapi_conn.cursor()
        try:
            if not in_memory:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA foreign_keys=ON")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock up front (waiting up to the busy timeout): a transaction that reads
        # and then writes cannot fail with "database is locked" when another thread wrote in between.
        # WAL readers of other connections are not blocked by it.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
