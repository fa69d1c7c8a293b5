"""The one `MetaData` every table of the schema is on, and its conventions (constraint names, booleans).

`schema.py` (the historian, alarms, notification) and `schema_security.py` (accounts, sessions, audit) both
define their tables on it; neither imports the other's tables.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import MetaData
from sqlalchemy import text as text_clause


def sa_true() -> Any:
    return text_clause("true")


def sa_false() -> Any:
    return text_clause("false")


NAMING_CONVENTION = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)
