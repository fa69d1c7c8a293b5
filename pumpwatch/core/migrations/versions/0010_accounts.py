"""accounts: case-insensitive unique usernames, TOTP second factor and recovery codes, what kind of failure
a throttle row counts, single-use ack links

Revision ID: 0010_accounts
Revises: 0009_rejections_system_alarms
Create Date: 2026-12-03

Two names that differ only in case (`ADMIN`, `admin`) cannot both be kept: the upgrade stops and names
them, so an operator renames one before anything else runs (nothing is changed until then).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_accounts"
down_revision: str | Sequence[str] | None = "0009_rejections_system_alarms"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


class DuplicateUsernames(RuntimeError):
    pass


def upgrade() -> None:
    bind = op.get_bind()
    clashes = bind.execute(
        sa.text(
            "SELECT lower(username) AS k, id, username FROM app_user WHERE lower(username) IN "
            "(SELECT lower(username) FROM app_user GROUP BY lower(username) HAVING count(*) > 1) ORDER BY k, id"
        )
    ).all()
    if clashes:
        names = ", ".join(f"{r.username!r} (id {r.id})" for r in clashes)
        raise DuplicateUsernames(
            "user names must be unique whatever their case, and these are not: "
            f"{names}. Rename all but one of each, e.g. UPDATE app_user SET username = 'admin-2' WHERE id = …; "
            "then start again"
        )
    with op.batch_alter_table("app_user") as t:
        t.add_column(sa.Column("totp_secret", sa.Text(), nullable=True))
        t.add_column(sa.Column("totp_pending", sa.Text(), nullable=True))
        t.add_column(sa.Column("totp_last_step", sa.BigInteger(), nullable=True))
        t.add_column(sa.Column("recovery_codes", sa.Text(), nullable=True))
        t.add_column(sa.Column("mfa_enrolled_at", TS, nullable=True))
    with op.batch_alter_table("user_session") as t:
        t.add_column(sa.Column("second_factor", sa.Text(), nullable=True))
    with op.batch_alter_table("login_failure") as t:
        t.add_column(sa.Column("kind", sa.Text(), nullable=False, server_default="login"))
        t.add_column(sa.Column("device", sa.Text(), nullable=True))
    with op.batch_alter_table("notification") as t:
        t.add_column(sa.Column("link_used_at", TS, nullable=True))
    bind.execute(sa.text("UPDATE login_failure SET username = lower(username)"))
    op.create_index("uq_app_user_username_lower", "app_user", [sa.text("lower(username)")], unique=True)
    if bind.dialect.name == "postgresql":
        # An admin asks which tenants a user holds by the name as typed: compare without case.
        bind.exec_driver_sql(
            """CREATE OR REPLACE FUNCTION pumpwatch_user_tenants(name text) RETURNS SETOF text
            LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
                SELECT g.tenant_id FROM user_grant g JOIN app_user u ON u.id = g.user_id
                WHERE lower(u.username) = lower(name)
            $$"""
        )


def downgrade() -> None:
    with op.batch_alter_table("notification") as t:
        t.drop_column("link_used_at")
    with op.batch_alter_table("login_failure") as t:
        t.drop_column("device")
        t.drop_column("kind")
    with op.batch_alter_table("user_session") as t:
        t.drop_column("second_factor")
    with op.batch_alter_table("app_user") as t:
        for c in ("mfa_enrolled_at", "recovery_codes", "totp_last_step", "totp_pending", "totp_secret"):
            t.drop_column(c)
    op.drop_index("uq_app_user_username_lower", table_name="app_user")
