"""leases on links: who polls a link now (owner, generation, expiry), and every grant (for fencing)

Revision ID: 0015_leases
Revises: 0010_accounts
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_leases"
down_revision: str | Sequence[str] | None = "0012_drills_resources"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "link_lease",
        sa.Column("link_id", sa.Text(), nullable=False),
        sa.Column("owner", sa.Text(), nullable=True),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("renewed_at", TS, nullable=True),
        sa.Column("wanted_by", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("link_id", name=op.f("pk_link_lease")),
    )
    op.create_table(
        "lease_grant",
        sa.Column("link_id", sa.Text(), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("granted_at", TS, nullable=False),
        sa.Column("previous_owner", sa.Text(), nullable=True),
        sa.Column("previous_expired_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("link_id", "generation", name=op.f("pk_lease_grant")),
    )


def downgrade() -> None:
    op.drop_table("lease_grant")
    op.drop_table("link_lease")
