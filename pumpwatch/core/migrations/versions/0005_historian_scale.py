"""historian at scale: minute and hour rollups of samples, collector shard heartbeats, station owners

Revision ID: 0005_historian_scale
Revises: 0004
Create Date: 2026-12-01

TimescaleDB (hypertable, compression, retention, continuous aggregates) is not set up here: its continuous
aggregates cannot be created inside a transaction, and the extension may be absent. `pumpwatch.
historian_scale.ensure_timescale` does it after the upgrade, idempotently, when the extension is available.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_historian_scale"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def _rollup(name: str) -> None:
    op.create_table(
        name,
        sa.Column("point_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("bucket_at", TS, nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("good", sa.Integer(), nullable=False),
        sa.Column("sum", sa.Double(), nullable=True),
        sa.Column("min", sa.Double(), nullable=True),
        sa.Column("max", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("point_id", "bucket_at", name=op.f(f"pk_{name}")),
        sqlite_with_rowid=False,
    )


def upgrade() -> None:
    _rollup("sample_1m")
    _rollup("sample_1h")
    op.create_table(
        "collector_shard",
        sa.Column("shard", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("shard_count", sa.Integer(), nullable=False),
        sa.Column("host", sa.Text(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("heartbeat_at", TS, nullable=False),
        sa.Column("interval_s", sa.Double(), nullable=False),
        sa.Column("stations", sa.Integer(), nullable=False),
        sa.Column("polls", sa.BigInteger(), nullable=False),
        sa.Column("late_polls", sa.BigInteger(), nullable=False),
        sa.Column("spool_rows", sa.BigInteger(), nullable=False),
        sa.Column("historian_state", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("shard", name=op.f("pk_collector_shard")),
    )
    op.create_table(
        "station_owner",
        sa.Column("station_id", sa.Text(), nullable=False),
        sa.Column("shard", sa.Integer(), nullable=False),
        sa.Column("shard_count", sa.Integer(), nullable=False),
        sa.Column("claimed_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("station_id", name=op.f("pk_station_owner")),
    )


def downgrade() -> None:
    op.drop_table("station_owner")
    op.drop_table("collector_shard")
    op.drop_table("sample_1h")
    op.drop_table("sample_1m")
