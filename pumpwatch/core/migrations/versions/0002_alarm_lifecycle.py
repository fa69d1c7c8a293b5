"""alarm lifecycle (ISA-18.2 states, shelving, suppression, out of service), incidents

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.drop_index("uq_alarm_active_station_id_name", table_name="alarm")
    with op.batch_alter_table("alarm") as b:
        b.add_column(sa.Column("state", sa.Text(), nullable=False, server_default="unacked_active"))
        b.add_column(sa.Column("open", sa.Boolean(), nullable=False, server_default=sa.text("true")))
        b.add_column(sa.Column("latched", sa.Boolean(), nullable=False, server_default=sa.text("false")))
        b.add_column(sa.Column("last_raised_at", TS, nullable=True))
        b.add_column(sa.Column("raise_count", sa.Integer(), nullable=False, server_default="1"))
        b.add_column(sa.Column("acked_at", TS, nullable=True))
        b.add_column(sa.Column("acked_by", sa.Text(), nullable=True))
        b.add_column(sa.Column("shelve_kind", sa.Text(), nullable=True))
        b.add_column(sa.Column("shelved_until", TS, nullable=True))
        b.add_column(sa.Column("shelved_by", sa.Text(), nullable=True))
        b.add_column(sa.Column("shelve_reason", sa.Text(), nullable=True))
        b.add_column(sa.Column("suppressed_by", sa.Text(), nullable=True))
        b.add_column(
            sa.Column("out_of_service", sa.Boolean(), nullable=False, server_default=sa.text("false"))
        )
        b.add_column(sa.Column("incident_id", sa.Integer(), nullable=True))
    # Alarms cleared before this revision are closed occurrences: state normal, not open.
    op.execute("UPDATE alarm SET state = 'normal', open = false WHERE NOT active")
    op.create_index(
        "uq_alarm_open_station_id_name",
        "alarm",
        ["station_id", "name"],
        unique=True,
        sqlite_where=sa.text("open"),
        postgresql_where=sa.text("open"),
    )
    op.create_index("ix_alarm_tenant_id_open", "alarm", ["tenant_id", "open"])
    with op.batch_alter_table("alarm_event") as b:
        b.add_column(sa.Column("actor", sa.Text(), nullable=True))
        b.add_column(sa.Column("state", sa.Text(), nullable=True))
        b.add_column(sa.Column("value", sa.Double(), nullable=True))
    op.create_index("ix_alarm_event_at", "alarm_event", ["at"])
    op.create_table(
        "station_mode",
        sa.Column("station_id", sa.Text(), nullable=False),
        sa.Column("out_of_service", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("actor", sa.Text(), nullable=True),
        sa.Column("since", TS, nullable=False),
        sa.Column("until", TS, nullable=True),
        sa.PrimaryKeyConstraint("station_id", name=op.f("pk_station_mode")),
    )
    op.create_table(
        "incident",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("power_area", sa.Text(), nullable=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("phase", sa.Text(), nullable=False),
        sa.Column("opened_at", TS, nullable=False),
        sa.Column("first_response_at", TS, nullable=True),
        sa.Column("restored_at", TS, nullable=True),
        sa.Column("closed_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident")),
    )
    op.create_index("ix_incident_tenant_id_phase", "incident", ["tenant_id", "phase"])
    op.create_table(
        "incident_station",
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("station_id", sa.Text(), nullable=False),
        sa.Column("joined_at", TS, nullable=False),
        sa.Column("restored_at", TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incident.id"], name=op.f("fk_incident_station_incident_id_incident")
        ),
        sa.PrimaryKeyConstraint("incident_id", "station_id", name=op.f("pk_incident_station")),
    )
    op.create_table(
        "incident_note",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("phase", sa.Text(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incident.id"], name=op.f("fk_incident_note_incident_id_incident")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_note")),
    )
    op.create_index("ix_incident_note_incident_id", "incident_note", ["incident_id"])


def downgrade() -> None:
    op.drop_table("incident_note")
    op.drop_table("incident_station")
    op.drop_table("incident")
    op.drop_table("station_mode")
    op.drop_index("ix_alarm_event_at", table_name="alarm_event")
    with op.batch_alter_table("alarm_event") as b:
        for c in ("value", "state", "actor"):
            b.drop_column(c)
    op.drop_index("ix_alarm_tenant_id_open", table_name="alarm")
    op.drop_index("uq_alarm_open_station_id_name", table_name="alarm")
    with op.batch_alter_table("alarm") as b:
        for c in (
            "incident_id", "out_of_service", "suppressed_by", "shelve_reason", "shelved_by", "shelved_until",
            "shelve_kind", "acked_by", "acked_at", "raise_count", "last_raised_at", "latched", "open", "state",
        ):
            b.drop_column(c)
    op.create_index(
        "uq_alarm_active_station_id_name",
        "alarm",
        ["station_id", "name"],
        unique=True,
        sqlite_where=sa.text("active"),
        postgresql_where=sa.text("active"),
    )
