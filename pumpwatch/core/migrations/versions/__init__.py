"""Migration scripts (a package so they ship in the wheel; Alembic skips this file)."""
