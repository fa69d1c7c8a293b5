"""The audit log: who did what, where, when, to what, with which result (IEC 62443 SR 2.8).

An `Audit` describes one action before it happens (actor, tenant, source address, action, target). The code
that performs the action calls `audit.write(conn, ...)` inside the action's own transaction: if the record
cannot be written the transaction rolls back and the action does not happen (fail closed,
`AuditUnavailable` → HTTP 503). Actions that are refused are recorded on their own (`record`).
The table is append-only: the app role may not UPDATE or DELETE it, and triggers refuse it for everyone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from pumpwatch.core.db.schema_security import audit_log
from pumpwatch.core.db.types import to_utc

log = logging.getLogger(__name__)


class AuditUnavailable(Exception):
    """The audit record could not be written, so the action was not done."""


def _text(v: Any) -> str | None:
    if v is None:
        return None
    return v if isinstance(v, str) else str(v)


@dataclass(frozen=True)
class Audit:
    at: datetime
    action: str
    username: str | None = None
    source_ip: str | None = None
    tenant_id: str | None = None
    target: str | None = None
    old_value: Any = None
    new_value: Any = None
    detail: str | None = None

    def but(self, **changes: Any) -> Audit:
        return replace(self, **changes)

    def write(self, conn: Connection, result: str = "ok", **changes: Any) -> None:
        """Append the record in `conn`'s transaction; any failure aborts that transaction."""
        a = replace(self, **changes) if changes else self
        try:
            conn.execute(
                insert(audit_log).values(
                    at=to_utc(a.at, "at"),
                    username=a.username,
                    tenant_id=a.tenant_id,
                    source_ip=a.source_ip,
                    action=a.action,
                    target=a.target,
                    old_value=_text(a.old_value),
                    new_value=_text(a.new_value),
                    result=result,
                    detail=a.detail,
                )
            )
        except SQLAlchemyError as exc:
            log.error("audit record for %s on %s not written: %s", a.action, a.target, exc)
            raise AuditUnavailable(f"audit log unavailable: {a.action} not done") from exc

    def record(self, engine: Engine, result: str = "ok", **changes: Any) -> None:
        """Append the record in a transaction of its own (refusals, logins)."""
        try:
            with engine.begin() as conn:
                self.write(conn, result, **changes)
        except SQLAlchemyError as exc:  # e.g. the connection failed at commit
            raise AuditUnavailable(f"audit log unavailable: {self.action} not recorded") from exc


def write_optional(audit: Audit | None, conn: Connection, result: str = "ok", **changes: Any) -> None:
    if audit is not None:
        audit.write(conn, result, **changes)


def read(
    engine: Engine,
    *,
    tenant_ids: set[str] | frozenset[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    action: str | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Records oldest first; `tenant_ids` limits to those tenants (records without a tenant excluded)."""
    stmt = select(audit_log)
    if tenant_ids is not None:
        if not tenant_ids:
            return []
        stmt = stmt.where(audit_log.c.tenant_id.in_(sorted(tenant_ids)))
    if start is not None:
        stmt = stmt.where(audit_log.c.at >= to_utc(start, "start"))
    if end is not None:
        stmt = stmt.where(audit_log.c.at < to_utc(end, "end"))
    if action is not None:
        stmt = stmt.where(audit_log.c.action == action)
    stmt = stmt.order_by(audit_log.c.at, audit_log.c.id).limit(limit)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt)]
