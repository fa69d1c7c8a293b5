"""alarm: the rule's input is not good since … (the alarm holds its state and says so)

Revision ID: 0007_alarm_input_quality
Revises: 0006_latest_value_hot
Create Date: 2026-12-10

A rule decides only on good data; while its input is stale, lost or bad, an active alarm neither clears nor
re-raises. These columns say so on the alarm (alarms/evaluator.py; shown by the API's alarm view).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_alarm_input_quality"
down_revision: str | Sequence[str] | None = "0006_latest_value_hot"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("alarm", sa.Column("input_not_good_since", sa.DateTime(timezone=True), nullable=True))
    op.add_column("alarm", sa.Column("input_quality", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alarm") as b:
        b.drop_column("input_quality")
        b.drop_column("input_not_good_since")
