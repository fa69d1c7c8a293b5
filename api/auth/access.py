"""Tenant checks for handlers: an object of a tenant the user has no grant for does not exist (404);
a visible object with too low a role is forbidden (403)."""

from __future__ import annotations

from fastapi import HTTPException, Request

from api.auth.guard import client_ip

__all__ = ["audit_for", "client_ip", "not_found", "require", "station", "tenants_for"]
from api.auth.users import User
from pumpwatch.audit import Audit


def not_found(what: str) -> HTTPException:
    # The same answer whether it does not exist or belongs to another tenant, and no echo of the id:
    # `what` is for the reader of this code only.
    del what
    return HTTPException(404, "not found")


def require(user: User, role: str, tenant: str) -> None:
    if tenant not in user.tenants:
        raise not_found(f"tenant {tenant!r}")
    if not user.can(role, tenant):
        raise HTTPException(403, f"needs the {role} role in {tenant}")


def tenants_for(user: User, tenant: str | None) -> frozenset[str]:
    """The tenants a list shows: the requested one if visible (else 404), or all the user's."""
    if tenant is None:
        return user.tenants
    if tenant not in user.tenants:
        raise not_found(f"tenant {tenant!r}")
    return frozenset({tenant})


def station(ctx, user: User, station_id: str, role: str | None = None):
    st = ctx.fleet.stations.get(station_id)
    if st is None or st.tenant not in user.tenants:
        raise not_found(f"station {station_id!r}")
    if role is not None:
        require(user, role, st.tenant)
    return st


def audit_for(request: Request, user: User | None, action: str, **kw) -> Audit:
    ctx = request.app.state.ctx
    return Audit(
        at=ctx.clock.now(),
        action=action,
        username=user.username if user else None,
        source_ip=client_ip(request),
        **kw,
    )
