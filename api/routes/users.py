"""User administration for admins, tenant by tenant, and the audit log.

An admin of a tenant sees the users holding a grant in it (only those grants), gives and takes that
tenant's grants, and reads that tenant's audit records. Taking a grant away changes nothing in the user's
other tenants (their sessions go on). Disabling a user, or ending their sessions, needs admin in every
tenant the user holds. Users holding no grant at all are the centre admin's alone (admin of every tenant
of the fleet): a tenant admin cannot see or adopt them. A user the admin cannot see does not exist for them
(404, the same answer as for a name nobody has). Creating a user whose name is taken, visible or not,
answers 409 (names are unique), and such refusals back off per admin, so names cannot be listed by trying.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse

from pumpwatch.api.auth import access, throttle
from pumpwatch.api.auth import users as accounts
from pumpwatch.api.auth.users import User, UserError
from pumpwatch.api.deps import Ctx, CurrentUser
from pumpwatch.api.inputs import Timestamp
from pumpwatch.api.schemas import (
    AuditEntryPublic,
    AuditPublic,
    Detail,
    GrantSet,
    UserAdminPublic,
    UserCreate,
    UsersPublic,
)
from pumpwatch.core import audit as audit_log

router = APIRouter(tags=["users"])


def _admin_tenants(user: User) -> frozenset[str]:
    tenants = user.tenants_with("admin")
    if not tenants:
        raise HTTPException(403, "needs the admin role")
    return tenants


def _centre_admin(ctx, user: User) -> bool:
    return access.of_centre(ctx, user, "admin")  # admin of the monitoring centre (api.auth.access)


async def _target(ctx, user: User, username: str) -> set[str]:
    """The tenants of a user the admin may see: holding a grant in one of the admin's tenants, or (for
    the centre admin only) none."""
    tenants = await asyncio.to_thread(accounts.tenants_of, ctx.engine, username)
    if tenants is None:
        raise access.not_found(f"user {username!r}")
    if not tenants & _admin_tenants(user) and not (not tenants and _centre_admin(ctx, user)):
        raise access.not_found(f"user {username!r}")
    return tenants


async def _call(fn, *args, **kw):
    try:
        return await asyncio.to_thread(fn, *args, **kw)
    except UserError as exc:
        raise HTTPException(exc.status, str(exc)) from None


async def _list(ctx, user: User) -> list[dict]:
    return await asyncio.to_thread(
        accounts.list_users,
        ctx.engine,
        _admin_tenants(user),
        cfg=ctx.auth,
        now=ctx.clock.now(),
        grantless=_centre_admin(ctx, user),
    )


@router.get("/users", response_model=UsersPublic)
async def list_users(ctx: Ctx, user: CurrentUser) -> UsersPublic:
    """Users of your tenants, with until when each one's sign-in backs off after failures."""
    rows = await _list(ctx, user)
    return UsersPublic(data=[UserAdminPublic(**r) for r in rows], count=len(rows))


@router.post(
    "/users",
    response_model=UserAdminPublic,
    status_code=201,
    responses={409: {"model": Detail}, 423: {"model": Detail}},
)
async def create_user(ctx: Ctx, user: CurrentUser, request: Request, body: UserCreate):
    for g in body.grants:
        access.require(user, "admin", g.tenant)
    now, ip = ctx.clock.now(), access.client_ip(request)
    audit = access.audit_for(
        request, user, "user.create", tenant_id=body.grants[0].tenant, target=f"user:{body.username}"
    )

    def probing():
        with ctx.engine.connect() as conn:
            return throttle.check(conn, ctx.auth, user.username, ip, now, kind="username")

    refusal = await asyncio.to_thread(probing)
    if refusal is not None:
        return JSONResponse(
            {"detail": "too many taken names tried: " + refusal.reason},
            status_code=423,
            headers={"Retry-After": str(refusal.retry_after_s)},
        )
    try:
        await asyncio.to_thread(
            accounts.create_user,
            ctx.engine,
            body.username,
            body.password,
            [(g.tenant, g.role) for g in body.grants],
            display_name=body.display_name,
            locale=body.locale,
            now=now,
            audit=audit,
        )
    except UserError as exc:
        if exc.status == 409:

            def taken() -> None:
                with ctx.engine.begin() as conn:
                    throttle.record(conn, ctx.auth, user.username, ip, now, kind="username")
                    audit.write(conn, "failed", detail="username taken")

            await asyncio.to_thread(taken)
        raise HTTPException(exc.status, str(exc)) from None
    (row,) = [r for r in await _list(ctx, user) if r["username"] == body.username]
    return UserAdminPublic(**row)


@router.put("/users/{username}/grants/{tenant}", response_model=Detail)
async def set_grant(
    ctx: Ctx, user: CurrentUser, request: Request, username: str, tenant: str, body: GrantSet
) -> Detail:
    access.require(user, "admin", tenant)
    await _target(ctx, user, username)
    audit = access.audit_for(request, user, "user.grant", tenant_id=tenant, target=f"user:{username}")
    await _call(accounts.set_grant, ctx.engine, username, tenant, body.role, audit=audit)
    ctx.session_cache.forget_user(username)
    return Detail(detail=f"{username} is {body.role} in {tenant}")


@router.delete("/users/{username}/grants/{tenant}", response_model=Detail)
async def revoke_grant(ctx: Ctx, user: CurrentUser, request: Request, username: str, tenant: str) -> Detail:
    access.require(user, "admin", tenant)
    await _target(ctx, user, username)
    audit = access.audit_for(request, user, "user.revoke", tenant_id=tenant, target=f"user:{username}")
    await _call(accounts.set_grant, ctx.engine, username, tenant, None, audit=audit)
    # Their sessions lose this tenant at their next request (grants are read at each one); the user's
    # other tenants are none of this admin's business, so nothing else ends.
    ctx.session_cache.forget_user(username)
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


@router.post("/users/{username}/unlock", response_model=Detail)
async def unlock_user(ctx: Ctx, user: CurrentUser, request: Request, username: str) -> Detail:
    """Lift the user's sign-in backoff (after checking with them: repeated failures may be an attack)."""
    tenants = await _target(ctx, user, username)
    admin_of: list[str | None] = [*sorted(tenants & _admin_tenants(user))]
    mine = admin_of or [None]
    audit = access.audit_for(request, user, "user.unlock", tenant_id=mine[0], target=f"user:{username}")
    n = await _call(accounts.unlock, ctx.engine, username, audit=audit, tenants=_admin_tenants(user))
    return Detail(detail=f"{username} may sign in again ({n} failures forgotten)")


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
