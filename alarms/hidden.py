"""One definition of a *hidden* alarm: shelved, suppressed by design, or out of service.

A hidden alarm is still evaluated and journaled; it only leaves the operator's list (`view=open` against
`view=hidden` in api/routes/alarms.py, the console's tabs, the `hidden` field of every alarm) and its
notification is muted (alarms/notify/dispatcher.py). The rule is written twice on purpose, side by side
here and nowhere else: `is_hidden` decides one alarm row in Python (the dispatcher, the API), and
`hidden_clause` is its SQL twin, a SQLAlchemy expression the store filters with (alarms/store.py).
tests/alarms/test_hidden.py evaluates both on the same rows, on SQLite and PostgreSQL, over every
combination of the columns below and of shelve end times around `now`, and asserts that they agree.

An alarm is hidden at `now` when any of these holds:

- **shelved**: `shelve_kind` is set (timed or one-shot) and `shelved_until` is later than `now`. A shelve
  whose time is up no longer hides, even before `store.expire_shelves` journals its end; a shelve without
  an end (the store never writes one) hides nothing: in doubt, the operator sees the alarm.
- **suppressed**: `suppressed_by` names the active alarm that explains this one by design.
- **out of service**: the alarm's station is in maintenance (`out_of_service`).

The SQL twin never yields NULL (SQL's three-valued logic would otherwise make `x AND NULL` unknown, and
the row would drop out of both `hidden` and `NOT hidden`: an alarm in neither list).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, or_

from pumpwatch.core.db.schema import alarm
from pumpwatch.core.db.types import to_utc

# the columns of `alarm` the rule reads (a row handed to `is_hidden` needs these keys)
COLUMNS = ("shelve_kind", "shelved_until", "suppressed_by", "out_of_service")


def is_shelved(a: Mapping[str, Any], now: datetime) -> bool:
    until = a["shelved_until"]
    return a["shelve_kind"] is not None and until is not None and until > to_utc(now, "now")


def is_hidden(a: Mapping[str, Any], now: datetime) -> bool:
    """Shelved, suppressed or out of service at `now` (an `alarm` row as a mapping)."""
    return is_shelved(a, now) or a["suppressed_by"] is not None or bool(a["out_of_service"])


def shelved_clause(now: datetime, table: Table = alarm) -> ColumnElement[bool]:
    """SQL twin of `is_shelved`."""
    c = table.c
    return and_(
        c.shelve_kind.is_not(None), c.shelved_until.is_not(None), c.shelved_until > to_utc(now, "now")
    )


def hidden_clause(now: datetime, table: Table = alarm) -> ColumnElement[bool]:
    """SQL twin of `is_hidden` (`out_of_service` is NOT NULL in the schema, so no NULL comes of it)."""
    c = table.c
    return or_(shelved_clause(now, table), c.suppressed_by.is_not(None), c.out_of_service)
