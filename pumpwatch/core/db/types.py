"""Column types shared by every table.

`UTCDateTime` is the only timestamp type: it refuses naive datetimes, stores UTC and always returns aware UTC
datetimes, on SQLite as on PostgreSQL.

- PostgreSQL: `timestamptz`; psycopg returns aware values in the session time zone, converted here to UTC.
- SQLite: SQLAlchemy's `DATETIME` text, given naive UTC, so it is stored as fixed-width
  `YYYY-MM-DD HH:MM:SS.ffffff` (always six fraction digits). That sorts like the instants it names, compares
  correctly against bound parameters (which go through the same format), and is understood by SQLite's own
  date functions (`julianday`, `strftime`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.types import DateTime, TypeDecorator, TypeEngine


def require_aware(value: datetime, what: str = "datetime") -> datetime:
    """Return `value` if it carries a UTC offset; raise ValueError for a naive datetime."""
    if not isinstance(value, datetime):
        raise TypeError(f"{what}: expected a datetime, got {type(value).__name__}")
    if value.utcoffset() is None:
        raise ValueError(f"{what}: naive datetime {value.isoformat()} refused; give a timezone-aware one")
    return value


def to_utc(value: datetime, what: str = "datetime") -> datetime:
    """An aware datetime converted to UTC (ValueError for a naive one)."""
    return require_aware(value, what).astimezone(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every dialect; naive datetimes raise ValueError on bind."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            # Naive UTC text; timezone=True would change nothing on SQLite but confuse reflection compares.
            return dialect.type_descriptor(DateTime())
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        utc = to_utc(value)
        if dialect.name == "sqlite":
            return utc.replace(tzinfo=None)
        return utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    @property
    def python_type(self) -> type[datetime]:
        return datetime
