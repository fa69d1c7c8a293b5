"""Login, logout, who am I, change my password (the contract in coord CONTRACT.md, "Authentication").

The login answers 401 for a wrong name or password alike (and for a disabled user), 423 while the name is
locked after repeated failures, 429 with Retry-After when the source address is throttled.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse

from api.auth import access, passwords, sessions
from api.auth.guard import client_ip
from api.auth.users import UserError, set_password
from api.deps import Ctx, CurrentUser
from api.schemas import Detail, LoginPublic, LoginRequest, MePublic, PasswordChange

router = APIRouter(prefix="/auth", tags=["auth"])

ERRORS = {401: {"model": Detail}, 423: {"model": Detail}, 429: {"model": Detail}}


def _set_cookie(response: Response, request: Request, name: str, token: str) -> None:
    response.set_cookie(
        name,
        token,
        httponly=True,
        samesite="strict",
        path="/",
        secure=request.url.scheme == "https",
    )


@router.post("/login", response_model=LoginPublic, responses=ERRORS)
async def login(ctx: Ctx, request: Request, body: LoginRequest, response: Response):
    try:
        done = await asyncio.to_thread(
            sessions.login,
            ctx.engine,
            ctx.auth,
            body.username,
            body.password,
            ip=client_ip(request),
            now=ctx.clock.now(),
        )
    except sessions.LoginRefused as exc:
        headers = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s else None
        if exc.status == 401:
            headers = {"WWW-Authenticate": "Bearer"}
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=headers)
    _set_cookie(response, request, ctx.auth.cookie_name, done.token)
    return LoginPublic(token=done.token, expires_at=done.expires_at, user=done.user.public())


@router.post("/logout", response_model=Detail)
async def logout(ctx: Ctx, user: CurrentUser, request: Request, response: Response) -> Detail:
    audit = access.audit_for(request, user, "logout", target=f"user:{user.username}")
    if user.session_id is not None:
        ctx.session_cache.forget_session(user.session_id)
        await asyncio.to_thread(
            sessions.logout, ctx.engine, user.session_id, now=ctx.clock.now(), audit=audit
        )
    response.delete_cookie(ctx.auth.cookie_name, path="/", httponly=True, samesite="strict")
    return Detail(detail="logged out")


@router.get("/me", response_model=MePublic)
async def me(user: CurrentUser) -> MePublic:
    return MePublic(**user.public(), expires_at=user.expires_at)


@router.post("/password", response_model=Detail, responses={401: {"model": Detail}})
async def change_password(
    ctx: Ctx, user: CurrentUser, request: Request, body: PasswordChange, response: Response
) -> Detail:
    """Change your own password. Every session of yours ends, this one included: log in again."""
    from sqlalchemy import select

    from pumpwatch.db.schema_security import app_user

    def current_hash() -> str | None:
        with ctx.engine.connect() as conn:
            return conn.execute(select(app_user.c.password_hash).where(app_user.c.id == user.id)).scalar()

    if not await asyncio.to_thread(
        passwords.verify, await asyncio.to_thread(current_hash), body.current_password
    ):
        raise HTTPException(401, "the current password is wrong")
    audit = access.audit_for(request, user, "user.password", target=f"user:{user.username}")
    try:
        await asyncio.to_thread(
            set_password, ctx.engine, user.username, body.new_password, now=ctx.clock.now(), audit=audit
        )
    except UserError as exc:
        raise HTTPException(exc.status, str(exc)) from None
    response.delete_cookie(ctx.auth.cookie_name, path="/", httponly=True, samesite="strict")
    return Detail(detail="password changed: every session ended, log in again")
