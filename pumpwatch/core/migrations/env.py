"""Alembic environment, driven by `pumpwatch.core.db.migrate` (no alembic.ini).

`migrate.upgrade()` passes an open connection in `config.attributes["connection"]`; without one (for example
`command.upgrade(make_config(url), "head")` from a shell) the URL in `sqlalchemy.url` is used.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from pumpwatch.core.db.base import metadata
from pumpwatch.core.db.engine import make_engine
from pumpwatch.core.db.schema import include_object_for  # (importing it puts every table on `metadata`)

config = context.config


def _configure(connection: Connection) -> None:
    dialect = connection.dialect.name
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=dialect == "sqlite",  # SQLite cannot ALTER most things: batch "move and copy"
        include_object=include_object_for(dialect),
        compare_type=True,
    )


def run_migrations_offline() -> None:
    url = config.get_main_option("sqlalchemy.url")
    dialect = url.split(":", 1)[0].split("+", 1)[0] if url else "postgresql"
    context.configure(
        url=url,
        target_metadata=metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=dialect == "sqlite",
        include_object=include_object_for(dialect),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.begin() as conn:
            _configure(conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
