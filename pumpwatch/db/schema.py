"""The historian schema: one SQLAlchemy Core `MetaData` for SQLite and PostgreSQL.

Tables are singular snake_case; every timestamp ends in `_at` and is a `UTCDateTime` (aware UTC).

- `tenant`, `station`, `point`: the catalogue, upserted from the fleet configuration (never deleted).
- `sample`: the history, keyed `(point_id, observed_at)` so replays are idempotent. No foreign key to `point`
  (ingest stays cheap) and the time column is part of the primary key, so a later migration can turn it into a
  TimescaleDB hypertable (`create_hypertable('sample', 'observed_at')`) without changing the API. PostgreSQL
  gets a BRIN index on `observed_at`; SQLite stores it `WITHOUT ROWID` (clustered on the key), nothing more.
- `latest_value`: one row per point, the newest sample, so "every station now" never scans history.
- `alarm` (at most one active alarm per `(station_id, name)`, enforced by a partial unique index) and
  `alarm_event`, its append-only journal.

Objects that exist on one dialect only use `ddl_if(dialect=...)`; `include_object_for(dialect)` makes
Alembic's autogenerate and `compare_metadata` honour that (Alembic itself ignores `ddl_if`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
)

from pumpwatch.db.types import UTCDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

tenant = Table(
    "tenant",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("timezone", Text, nullable=False),
)

station = Table(
    "station",
    metadata,
    Column("id", Text, primary_key=True),
    Column("tenant_id", Text, ForeignKey("tenant.id"), nullable=False),
    Column("name", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("power_area", Text, nullable=True),
    Column("lat", Double, nullable=True),
    Column("lon", Double, nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_station_tenant_id", "tenant_id"),
)

point = Table(
    "point",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("station_id", Text, ForeignKey("station.id"), nullable=False),
    Column("name", Text, nullable=False),
    Column("unit", Text, nullable=True),
    Column("kind", Text, nullable=False),
    UniqueConstraint("station_id", "name"),
)

sample = Table(
    "sample",
    metadata,
    Column("point_id", Integer, primary_key=True, autoincrement=False),
    Column("observed_at", UTCDateTime, primary_key=True),
    Column("value", Double, nullable=True),
    Column("quality", SmallInteger, nullable=False),
    sqlite_with_rowid=False,
)
Index("ix_sample_observed_at", sample.c.observed_at, postgresql_using="brin").ddl_if(dialect="postgresql")

latest_value = Table(
    "latest_value",
    metadata,
    Column("point_id", Integer, primary_key=True, autoincrement=False),
    Column("observed_at", UTCDateTime, nullable=False),
    Column("value", Double, nullable=True),
    Column("quality", SmallInteger, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
)

alarm = Table(
    "alarm",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", Text, nullable=False),
    Column("station_id", Text, nullable=False),
    Column("name", Text, nullable=False),  # the rule name, e.g. power_outage
    Column("priority", Text, nullable=False),
    Column("message", Text, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("raised_at", UTCDateTime, nullable=False),
    Column("cleared_at", UTCDateTime, nullable=True),
    Column("value", Double, nullable=True),
)
Index(
    "uq_alarm_active_station_id_name",
    alarm.c.station_id,
    alarm.c.name,
    unique=True,
    sqlite_where=alarm.c.active,
    postgresql_where=alarm.c.active,
)

alarm_event = Table(
    "alarm_event",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("alarm_id", Integer, ForeignKey("alarm.id"), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("kind", Text, nullable=False),  # 'raise' | 'clear'
    Column("detail", Text, nullable=True),
    Index("ix_alarm_event_alarm_id", "alarm_id"),
)


def include_object_for(dialect_name: str) -> Callable[[Any, str | None, str, bool, Any], bool]:
    """An Alembic `include_object` hook: skip objects whose `ddl_if(dialect=...)` excludes `dialect_name`.

    Without it the PostgreSQL-only BRIN index would show up as missing on SQLite.
    """

    def hook(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        ddl_if = getattr(obj, "_ddl_if", None)
        if reflected or ddl_if is None or ddl_if.dialect is None:
            return True
        wanted = ddl_if.dialect
        return dialect_name == wanted if isinstance(wanted, str) else dialect_name in wanted

    return hook
