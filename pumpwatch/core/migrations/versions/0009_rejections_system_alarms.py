"""rejected input kept and counted (dead_letter, rejection_count), service heartbeats (the notifier's), and
row-level security for the centre's tables

Revision ID: 0009_rejections_system_alarms
Revises: 0008_sample_scoped_views
Create Date: 2026-12-15

Dead letters and their counts belong to the monitoring centre: `tenant_id` is the centre's tenant, and on
PostgreSQL the same tenant policy as every tenant table holds the API's app role to it
(`pumpwatch.core.db.rls.CENTRE_TABLES`). `service_heartbeat` is not tenant data: the app role may read it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_rejections_system_alarms"
down_revision: str | Sequence[str] | None = "0008_sample_scoped_views"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "dead_letter",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("payload_excerpt", sa.Text(), nullable=False),
        sa.Column("payload_bytes", sa.Integer(), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letter")),
    )
    op.create_index("ix_dead_letter_source_id", "dead_letter", ["source", "id"])
    op.create_table(
        "rejection_count",
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=True),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("dropped", sa.BigInteger(), nullable=False),
        sa.Column("first_at", TS, nullable=False),
        sa.Column("last_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("source", "reason", name=op.f("pk_rejection_count")),
    )
    op.create_table(
        "service_heartbeat",
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("instance", sa.Text(), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("heartbeat_at", TS, nullable=False),
        sa.Column("interval_s", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "instance", name=op.f("pk_service_heartbeat")),
    )
    from pumpwatch.core.db import rls

    rls.install_centre_tables(op.get_bind())


def downgrade() -> None:
    from pumpwatch.core.db import rls

    rls.uninstall_centre_tables(op.get_bind())
    op.drop_table("service_heartbeat")
    op.drop_table("rejection_count")
    op.drop_index("ix_dead_letter_source_id", table_name="dead_letter")
    op.drop_table("dead_letter")
