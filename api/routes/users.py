"""User administration for admins, tenant by tenant, and the audit log.

An admin of a tenant sees the users holding a grant in it (only those grants), gives and takes that
tenant's grants, and reads that tenant's audit records. Disabling a user, or ending their sessions, needs
admin in every tenant the user holds. A user the admin cannot see does not exist for them (404).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request

from api.auth import access
from api.auth import users as accounts
from api.auth.users import User, UserError
from api.deps import Ctx, CurrentUser
from api.inputs import Timestamp
from api.schemas import (
    AuditEntryPublic,
    AuditPublic,
    Detail,
    GrantSet,
    UserAdminPublic,
    UserCreate,
    UsersPublic,
)
from pumpwatch import audit as audit_log

router = APIRouter(tags=["users"])


def _admin_tenants(user: User) -> frozenset[str]:
    tenants = user.tenants_with("admin")
    if not tenants:
        raise HTTPException(403, "needs the admin role")
    return tenants


async def _target(ctx, user: User, username: str) -> set[str]:
    """The tenants of a user the admin may see: holding a grant in one of the admin's tenants, or none."""
    tenants = await asyncio.to_thread(accounts.tenants_of, ctx.engine, username)
    if tenants is None or (tenants and not tenants & _admin_tenants(user)):
        raise access.not_found(f"user {username!r}")
    return tenants


async def _call(fn, *args, **kw):
    try:
        return await asyncio.to_thread(fn, *args, **kw)
    except UserError as exc:
        raise HTTPException(exc.status, str(exc)) from None


@router.get("/users", response_model=UsersPublic)
async def list_users(ctx: Ctx, user: CurrentUser) -> UsersPublic:
    rows = await asyncio.to_thread(accounts.list_users, ctx.engine, _admin_tenants(user))
    return UsersPublic(data=[UserAdminPublic(**r) for r in rows], count=len(rows))


@router.post("/users", response_model=UserAdminPublic, status_code=201, responses={409: {"model": Detail}})
async def create_user(ctx: Ctx, user: CurrentUser, request: Request, body: UserCreate) -> UserAdminPublic:
    for g in body.grants:
        access.require(user, "admin", g.tenant)
    audit = access.audit_for(
        request, user, "user.create", tenant_id=body.grants[0].tenant, target=f"user:{body.username}"
    )
    await _call(
        accounts.create_user,
        ctx.engine,
        body.username,
        body.password,
        [(g.tenant, g.role) for g in body.grants],
        display_name=body.display_name,
        locale=body.locale,
        now=ctx.clock.now(),
        audit=audit,
    )
    (row,) = [
        r
        for r in await asyncio.to_thread(accounts.list_users, ctx.engine, _admin_tenants(user))
        if r["username"] == body.username
    ]
    return UserAdminPublic(**row)


@router.put("/users/{username}/grants/{tenant}", response_model=Detail)
async def set_grant(
    ctx: Ctx, user: CurrentUser, request: Request, username: str, tenant: str, body: GrantSet
) -> Detail:
    access.require(user, "admin", tenant)
    await _target(ctx, user, username)
    audit = access.audit_for(request, user, "user.grant", tenant_id=tenant, target=f"user:{username}")
    await _call(accounts.set_grant, ctx.engine, username, tenant, body.role, audit=audit)
    return Detail(detail=f"{username} is {body.role} in {tenant}")


@router.delete("/users/{username}/grants/{tenant}", response_model=Detail)
async def revoke_grant(ctx: Ctx, user: CurrentUser, request: Request, username: str, tenant: str) -> Detail:
    access.require(user, "admin", tenant)
    await _target(ctx, user, username)
    audit = access.audit_for(request, user, "user.revoke", tenant_id=tenant, target=f"user:{username}")
    await _call(accounts.set_grant, ctx.engine, username, tenant, None, audit=audit)
    await _call(accounts.revoke_sessions, ctx.engine, username, now=ctx.clock.now(), reason="grant revoked")
    return Detail(detail=f"{username} has no grant in {tenant}")


async def _whole_user(ctx, user: User, username: str) -> str | None:
    tenants = await _target(ctx, user, username)
    if tenants - _admin_tenants(user):
        raise HTTPException(403, "the user also holds tenants you do not administer")
    return min(tenants) if tenants else None


@router.post("/users/{username}/disable", response_model=Detail)
async def disable_user(ctx: Ctx, user: CurrentUser, request: Request, username: str) -> Detail:
    tenant = await _whole_user(ctx, user, username)
    audit = access.audit_for(request, user, "user.disable", tenant_id=tenant, target=f"user:{username}")
    await _call(accounts.set_disabled, ctx.engine, username, True, now=ctx.clock.now(), audit=audit)
    return Detail(detail=f"{username} disabled; every session ended")


@router.post("/users/{username}/enable", response_model=Detail)
async def enable_user(ctx: Ctx, user: CurrentUser, request: Request, username: str) -> Detail:
    tenant = await _whole_user(ctx, user, username)
    audit = access.audit_for(request, user, "user.enable", tenant_id=tenant, target=f"user:{username}")
    await _call(accounts.set_disabled, ctx.engine, username, False, now=ctx.clock.now(), audit=audit)
    return Detail(detail=f"{username} enabled")


@router.post("/users/{username}/revoke-sessions", response_model=Detail)
async def revoke_sessions(ctx: Ctx, user: CurrentUser, request: Request, username: str) -> Detail:
    tenant = await _whole_user(ctx, user, username)
    audit = access.audit_for(
        request, user, "user.revoke_sessions", tenant_id=tenant, target=f"user:{username}"
    )
    n = await _call(accounts.revoke_sessions, ctx.engine, username, now=ctx.clock.now(), audit=audit)
    return Detail(detail=f"{n} sessions of {username} ended")


@router.get("/audit", response_model=AuditPublic)
async def read_audit(
    ctx: Ctx,
    user: CurrentUser,
    tenant: str | None = None,
    start: Timestamp | None = None,
    end: Timestamp | None = None,
    action: str | None = None,
    limit: Annotated[int, Query(ge=1, le=50_000)] = 1000,
) -> AuditPublic:
    """Audit records of the tenants you administer, oldest first (default: the last day)."""
    tenants = _admin_tenants(user)
    if tenant is not None:
        access.require(user, "admin", tenant)
        tenants = frozenset({tenant})
    end = end or ctx.clock.now()
    start = start or end - timedelta(days=1)
    for name, t in (("start", start), ("end", end)):
        if t.tzinfo is None:
            raise HTTPException(422, f"{name} must carry a UTC offset")
    rows = await asyncio.to_thread(
        audit_log.read, ctx.engine, tenant_ids=tenants, start=start, end=end, action=action, limit=limit
    )
    data = [AuditEntryPublic(**{**r, "tenant": r["tenant_id"]}) for r in rows]
    return AuditPublic(data=data, count=len(data))
