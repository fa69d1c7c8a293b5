"""Alembic migrations of the historian schema, run programmatically by `pumpwatch.core.db.migrate`."""
