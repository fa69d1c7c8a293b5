"""drills and mobile resources: the drill and its journal, drill marks on alarms and incidents, resource
assignments and their journal

Revision ID: 0012_drills_resources
Revises: 0010_accounts
Create Date: 2026-12-04

The integrator re-chains this after 0011 of another branch. Row-level security as for every tenant table
(`pumpwatch.core.db.rls.DRILL_TABLES`).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from pumpwatch.core.db import rls

revision: str = "0012_drills_resources"
down_revision: str | Sequence[str] | None = "0010_accounts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("alarm") as b:
        b.add_column(sa.Column("drill_id", sa.Integer(), nullable=True))
    with op.batch_alter_table("incident") as b:
        b.add_column(sa.Column("drill_id", sa.Integer(), nullable=True))
    op.create_table(
        "drill",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("scenario", sa.Text(), nullable=False),
        sa.Column("notify", sa.Text(), nullable=False),
        sa.Column("contacts", sa.Text(), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("started_by", sa.Text(), nullable=True),
        sa.Column("ends_at", TS, nullable=False),
        sa.Column("stopped_at", TS, nullable=True),
        sa.Column("stopped_by", sa.Text(), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drill")),
    )
    op.create_index("ix_drill_tenant_id_stopped_at", "drill", ["tenant_id", "stopped_at"])
    op.create_table(
        "drill_event",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("drill_id", sa.Integer(), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("station_id", sa.Text(), nullable=True),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["drill_id"], ["drill.id"], name=op.f("fk_drill_event_drill_id_drill")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drill_event")),
    )
    op.create_index("ix_drill_event_drill_id", "drill_event", ["drill_id"])
    op.create_table(
        "resource_assignment",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("resource_id", sa.Text(), nullable=False),
        sa.Column("station_id", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("assigned_at", TS, nullable=False),
        sa.Column("assigned_by", sa.Text(), nullable=True),
        sa.Column("eta_at", TS, nullable=False),
        sa.Column("travel_s", sa.Double(), nullable=False),
        sa.Column("spill_expected_at", TS, nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("open", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("drill_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resource_assignment")),
    )
    op.create_index("ix_resource_assignment_tenant_id_open", "resource_assignment", ["tenant_id", "open"])
    op.create_index(
        "uq_resource_assignment_open_resource_id",
        "resource_assignment",
        ["resource_id"],
        unique=True,
        sqlite_where=sa.text("open"),
        postgresql_where=sa.text("open"),
    )
    op.create_table(
        "resource_event",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("assignment_id", sa.Integer(), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["assignment_id"],
            ["resource_assignment.id"],
            name=op.f("fk_resource_event_assignment_id_resource_assignment"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resource_event")),
    )
    op.create_index("ix_resource_event_assignment_id", "resource_event", ["assignment_id"])
    rls.install_drill_tables(op.get_bind())


def downgrade() -> None:
    rls.uninstall_drill_tables(op.get_bind())
    op.drop_index("ix_resource_event_assignment_id", table_name="resource_event")
    op.drop_table("resource_event")
    op.drop_index("uq_resource_assignment_open_resource_id", table_name="resource_assignment")
    op.drop_index("ix_resource_assignment_tenant_id_open", table_name="resource_assignment")
    op.drop_table("resource_assignment")
    op.drop_index("ix_drill_event_drill_id", table_name="drill_event")
    op.drop_table("drill_event")
    op.drop_index("ix_drill_tenant_id_stopped_at", table_name="drill")
    op.drop_table("drill")
    with op.batch_alter_table("incident") as b:
        b.drop_column("drill_id")
    with op.batch_alter_table("alarm") as b:
        b.drop_column("drill_id")
