"""Storage of the shared kernel: the historian schema, engines and migrations.

- `schema`: one SQLAlchemy Core `metadata` (tables `tenant`, `station`, `point`, `sample`, `latest_value`,
  `alarm`, `alarm_event`) for SQLite and PostgreSQL.
- `types.UTCDateTime`: aware-UTC timestamps on both dialects; naive datetimes are refused.
- `engine.make_engine(url)`: SQLite (WAL, busy timeout, foreign keys, thread-safe) or PostgreSQL (psycopg 3).
- `migrate.upgrade(url_or_engine)`: Alembic upgrade to head, in code, idempotent.

The queries live in `pumpwatch.core.historian`.
"""

from pumpwatch.core.db.base import metadata
from pumpwatch.core.db.engine import make_engine, normalize_url
from pumpwatch.core.db.migrate import current_revision, head_revision, upgrade
from pumpwatch.core.db.schema import (
    alarm,
    alarm_event,
    latest_value,
    point,
    sample,
    station,
    tenant,
)
from pumpwatch.core.db.types import UTCDateTime

__all__ = [
    "UTCDateTime",
    "alarm",
    "alarm_event",
    "current_revision",
    "head_revision",
    "latest_value",
    "make_engine",
    "metadata",
    "normalize_url",
    "point",
    "sample",
    "station",
    "tenant",
    "upgrade",
]
