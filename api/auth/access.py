"""Tenant checks for handlers: an object of a tenant the user has no grant for does not exist (404);
a visible object with too low a role is forbidden (403).

The system's own state (system status, system alarms, rejected input and its payloads) belongs to the
monitoring centre: the tenant with `centre: true`. A user is of the centre with a grant on that tenant;
in a fleet that declares no centre, only a user holding every tenant is."""

from __future__ import annotations

from fastapi import HTTPException, Request

from pumpwatch.api.auth.guard import client_ip

__all__ = ["audit_for", "client_ip", "not_found", "require", "station", "tenants_for"]
from pumpwatch.api.auth.users import User
from pumpwatch.core.audit import Audit


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


def of_centre(ctx, user: User, role: str = "viewer") -> bool:
    """The user is staff of the monitoring centre with at least `role`."""
    centre = ctx.fleet.centre
    if centre is not None:
        return user.can(role, centre)
    return bool(ctx.fleet.tenants) and all(user.can(role, t) for t in ctx.fleet.tenants)


def require_centre(ctx, user: User, role: str = "viewer") -> None:
    if not of_centre(ctx, user, role):
        centre = ctx.fleet.centre
        who = (
            f"the {role} role in the monitoring centre ({centre})"
            if centre
            else f"the {role} role in every tenant"
        )
        raise HTTPException(403, f"this is the monitoring centre's: needs {who}")
