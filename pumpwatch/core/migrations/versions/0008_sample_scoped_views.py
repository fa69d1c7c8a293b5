"""sample: tenant reads through security-barrier views instead of row-level security, so TimescaleDB can
compress it

Revision ID: 0008_sample_scoped_views
Revises: 0006_latest_value_hot
Create Date: 2026-12-03

TimescaleDB refuses compression ("columnstore cannot be used on table with row security") on a table with
RLS. On PostgreSQL (plain or TimescaleDB, the same shape on both): `sample` loses its RLS and every
privilege of the app role; `scoped.sample`, `scoped.sample_1m` and `scoped.sample_1h` (security-barrier
views owned by the owner) give the app role the rows of its tenants' points only (pumpwatch.core.db.rls). The
continuous aggregates get theirs when `historian_scale.ensure_timescale` creates them. SQLite: nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008_sample_scoped_views"
down_revision: str | Sequence[str] | None = "0007_alarm_input_quality"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    from pumpwatch.core.db import rls

    rls.install_scoped(op.get_bind())


def downgrade() -> None:
    from pumpwatch.core.db import rls

    rls.uninstall_scoped(op.get_bind())
