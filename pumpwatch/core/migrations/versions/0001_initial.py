"""initial historian schema: catalogue, samples, latest values, alarms

Revision ID: 0001
Revises:
Create Date: 2026-11-23

Hand-reviewed. Column types are spelled with plain SQLAlchemy types (`sa.DateTime(timezone=True)` is what
`pumpwatch.core.db.types.UTCDateTime` emits as DDL: `timestamptz` on PostgreSQL, `DATETIME` text on SQLite), so this
script does not change when application code does.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    is_pg = op.get_bind().dialect.name == "postgresql"

    op.create_table(
        "tenant",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("timezone", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenant")),
    )
    op.create_table(
        "station",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("power_area", sa.Text(), nullable=True),
        sa.Column("lat", sa.Double(), nullable=True),
        sa.Column("lon", sa.Double(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"], name=op.f("fk_station_tenant_id_tenant")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_station")),
    )
    op.create_index("ix_station_tenant_id", "station", ["tenant_id"], unique=False)

    op.create_table(
        "point",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("station_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("unit", sa.Text(), nullable=True),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["station_id"], ["station.id"], name=op.f("fk_point_station_id_station")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_point")),
        sa.UniqueConstraint("station_id", "name", name=op.f("uq_point_station_id_name")),
    )

    # History. No FK to point (cheap ingest; hypertable-friendly); the PK holds the time column so
    # create_hypertable('sample', 'observed_at') works later. SQLite: WITHOUT ROWID, clustered on the key.
    op.create_table(
        "sample",
        sa.Column("point_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("quality", sa.SmallInteger(), nullable=False),
        sa.PrimaryKeyConstraint("point_id", "observed_at", name=op.f("pk_sample")),
        sqlite_with_rowid=False,
    )
    if is_pg:
        op.create_index(
            "ix_sample_observed_at", "sample", ["observed_at"], unique=False, postgresql_using="brin"
        )

    op.create_table(
        "latest_value",
        sa.Column("point_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("quality", sa.SmallInteger(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("point_id", name=op.f("pk_latest_value")),
    )

    op.create_table(
        "alarm",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("station_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("priority", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("value", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alarm")),
    )
    # At most one active alarm per (station, rule).
    op.create_index(
        "uq_alarm_active_station_id_name",
        "alarm",
        ["station_id", "name"],
        unique=True,
        sqlite_where=sa.text("active"),
        postgresql_where=sa.text("active"),
    )

    op.create_table(
        "alarm_event",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("alarm_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["alarm_id"], ["alarm.id"], name=op.f("fk_alarm_event_alarm_id_alarm")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alarm_event")),
    )
    op.create_index("ix_alarm_event_alarm_id", "alarm_event", ["alarm_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_alarm_event_alarm_id", table_name="alarm_event")
    op.drop_table("alarm_event")
    op.drop_index("uq_alarm_active_station_id_name", table_name="alarm")
    op.drop_table("alarm")
    op.drop_table("latest_value")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_sample_observed_at", table_name="sample")
    op.drop_table("sample")
    op.drop_table("point")
    op.drop_index("ix_station_tenant_id", table_name="station")
    op.drop_table("station")
    op.drop_table("tenant")
