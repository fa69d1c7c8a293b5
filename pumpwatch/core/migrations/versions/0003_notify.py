"""on-call notification: pending journal events, escalations, grouping queue, the outbox

Revision ID: 0003_notify
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_notify"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "notify_pending",
        sa.Column("event_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"], ["alarm_event.id"], name=op.f("fk_notify_pending_event_id_alarm_event")
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_notify_pending")),
    )
    op.create_table(
        "escalation",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("alarm_id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("route", sa.Text(), nullable=False),
        sa.Column("policy", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("step", sa.Integer(), server_default="0", nullable=False),
        sa.Column("loop", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_at", TS, nullable=True),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("acked_by", sa.Text(), nullable=True),
        sa.Column("acked_at", TS, nullable=True),
        sa.ForeignKeyConstraint(["alarm_id"], ["alarm.id"], name=op.f("fk_escalation_alarm_id_alarm")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escalation")),
        sa.UniqueConstraint("alarm_id", name=op.f("uq_escalation_alarm_id")),
    )
    op.create_index("ix_escalation_state_next_at", "escalation", ["state", "next_at"])
    op.create_table(
        "notify_item",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("person", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("alarm_id", sa.Integer(), nullable=True),
        sa.Column("escalation_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=True),
        sa.Column("priority", sa.Text(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("notification_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["alarm_id"], ["alarm.id"], name=op.f("fk_notify_item_alarm_id_alarm")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notify_item")),
    )
    op.create_index("ix_notify_item_person_notification_id", "notify_item", ["person", "notification_id"])
    op.create_index("ix_notify_item_alarm_id", "notify_item", ["alarm_id"])
    op.create_table(
        "notification",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dedupe_key", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("person", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("recipient", sa.Text(), nullable=False),
        sa.Column("contact_index", sa.Integer(), server_default="0", nullable=False),
        sa.Column("origin_id", sa.Integer(), nullable=True),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("short", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("claimed_until", TS, nullable=True),
        sa.Column("claimed_by", sa.Text(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("sent_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_notification_dedupe_key")),
    )
    op.create_index("ix_notification_state_next_attempt_at", "notification", ["state", "next_attempt_at"])
    op.create_index("ix_notification_person_created_at", "notification", ["person", "created_at"])
    op.create_table(
        "notification_alarm",
        sa.Column("notification_id", sa.Integer(), nullable=False),
        sa.Column("alarm_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["notification_id"], ["notification.id"], name=op.f("fk_notification_alarm_notification_id_notification")
        ),
        sa.ForeignKeyConstraint(["alarm_id"], ["alarm.id"], name=op.f("fk_notification_alarm_alarm_id_alarm")),
        sa.PrimaryKeyConstraint("notification_id", "alarm_id", name=op.f("pk_notification_alarm")),
    )
    op.create_index("ix_notification_alarm_alarm_id", "notification_alarm", ["alarm_id"])


def downgrade() -> None:
    op.drop_table("notification_alarm")
    op.drop_table("notification")
    op.drop_table("notify_item")
    op.drop_table("escalation")
    op.drop_table("notify_pending")
