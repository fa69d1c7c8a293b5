"""Login (one or two steps), logout, who am I, change my password, my second factor.

The login answers 401 for a wrong name or password alike (and for a disabled user), 423 while the name
backs off after repeated failures, 429 with Retry-After when the source address is throttled. A user whose
grants need a second factor gets a session that holds only the other grants (`mfa.step` says what is
left): `POST /auth/mfa/verify` with a TOTP or recovery code completes it, or, not enrolled yet,
`POST /auth/mfa/enrol` → scan `GET /auth/mfa/enrol/qr.svg` → `POST /auth/mfa/enrol/confirm`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from pumpwatch.api.auth import access, mfa, passwords, sessions, throttle
from pumpwatch.api.auth.guard import client_ip
from pumpwatch.api.auth.users import User, UserError, set_password
from pumpwatch.api.deps import Ctx, CurrentUser
from pumpwatch.api.inputs import RequestModel
from pumpwatch.api.schemas import (
    Detail,
    IsoTime,
    LoginPublic,
    LoginRequest,
    MePublic,
    MfaPublic,
    PasswordChange,
    UserPublic,
)
from pumpwatch.core.db.schema_security import app_user

router = APIRouter(prefix="/auth", tags=["auth"])

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Detail},
    423: {"model": Detail},
    429: {"model": Detail},
}


class CodeRequest(RequestModel):
    code: str = Field(min_length=1, max_length=64, description="6-digit TOTP code, or a recovery code")


class MfaStatus(BaseModel):
    enrolled: bool
    enrolled_at: IsoTime | None
    recovery_codes_left: int
    session: MfaPublic


class Enrolment(BaseModel):
    secret: str = Field(description="base32, for typing into the app when the QR code cannot be scanned")
    uri: str = Field(description="otpauth:// URI, as in the QR code")
    qr_svg: str = Field(description="the QR code as an SVG image, served by this API")


class Enrolled(BaseModel):
    recovery_codes: list[str] = Field(description="shown once: each signs in once instead of a TOTP code")
    me: MePublic


def _set_cookie(response: Response, request: Request, name: str, token: str, **kw) -> None:
    response.set_cookie(
        name, token, httponly=True, samesite="strict", secure=request.url.scheme == "https", **kw
    )


def _refused(exc: sessions.LoginRefused) -> JSONResponse:
    headers = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s else None
    if exc.status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=headers)


def _me(user: User) -> MePublic:
    return MePublic(**user.public(), expires_at=user.expires_at, mfa=MfaPublic(**user.mfa_public()))


@router.post("/login", response_model=LoginPublic, responses=ERRORS)
async def login(ctx: Ctx, request: Request, body: LoginRequest, response: Response):
    cfg = ctx.auth
    try:
        done = await asyncio.to_thread(
            sessions.login,
            ctx.engine,
            cfg,
            body.username,
            body.password,
            ip=client_ip(request),
            now=ctx.clock.now(),
            device_cookie=request.cookies.get(cfg.device_cookie_name),
            otp=body.otp,
        )
    except sessions.LoginRefused as exc:
        return _refused(exc)
    _set_cookie(response, request, cfg.cookie_name, done.token, path="/")
    _set_cookie(
        response,
        request,
        cfg.device_cookie_name,
        done.device_cookie,
        path="/api/v1/auth",
        max_age=int(cfg.device_cookie_days * 86400),
    )
    return LoginPublic(
        token=done.token,
        expires_at=done.expires_at,
        user=UserPublic.model_validate(done.user.public()),
        mfa=MfaPublic(**done.user.mfa_public()),
    )


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
    return _me(user)


@router.post("/password", response_model=Detail, responses=ERRORS)
async def change_password(
    ctx: Ctx, user: CurrentUser, request: Request, body: PasswordChange, response: Response
):
    """Change your own password. Every session of yours ends, this one included: log in again. Wrong
    current passwords back off like logins (423 with Retry-After), and each is audited."""
    now, ip = ctx.clock.now(), client_ip(request)
    audit = access.audit_for(request, user, "user.password", target=f"user:{user.username}")

    def current_hash() -> str | None:
        with ctx.engine.connect() as conn:
            return conn.execute(select(app_user.c.password_hash).where(app_user.c.id == user.id)).scalar()

    def refusal():
        with ctx.engine.connect() as conn:
            return throttle.check(conn, ctx.auth, user.username, ip, now, kind="password")

    def failed() -> bool:
        with ctx.engine.begin() as conn:
            started = throttle.record(conn, ctx.auth, user.username, ip, now, kind="password")
            audit.write(conn, "failed", detail="wrong current password")
        return started

    r = await asyncio.to_thread(refusal)
    if r is not None:
        await asyncio.to_thread(audit.record, ctx.engine, "locked", detail=r.reason)
        return _refused(sessions.LoginRefused(r.status, r.reason, r.retry_after_s))
    if not await asyncio.to_thread(
        passwords.verify, await asyncio.to_thread(current_hash), body.current_password
    ):
        if await asyncio.to_thread(failed):
            await asyncio.to_thread(
                sessions.announce_backoff, ctx.engine, audit, user.username, "password change"
            )
        raise HTTPException(401, "the current password is wrong")
    try:
        await asyncio.to_thread(
            set_password, ctx.engine, user.username, body.new_password, now=now, audit=audit
        )
    except UserError as exc:
        raise HTTPException(exc.status, str(exc)) from None
    response.delete_cookie(ctx.auth.cookie_name, path="/", httponly=True, samesite="strict")
    return Detail(detail="password changed: every session ended, log in again")


# --- the second factor -----------------------------------------------------------------------------------


@router.get("/mfa", response_model=MfaStatus)
async def mfa_status(ctx: Ctx, user: CurrentUser) -> MfaStatus:
    def row():
        with ctx.engine.connect() as conn:
            return conn.execute(select(app_user).where(app_user.c.id == user.id)).one()

    st = mfa.status(await asyncio.to_thread(row))
    return MfaStatus(**st, session=MfaPublic(**user.mfa_public()))


@router.post("/mfa/verify", response_model=MePublic, responses=ERRORS | {409: {"model": Detail}})
async def mfa_verify(ctx: Ctx, user: CurrentUser, request: Request, body: CodeRequest):
    """The second step of signing in: a code from the authenticator app, or an unused recovery code."""
    if user.mfa_step != "verify":
        raise HTTPException(409, "this session owes no second factor")
    try:
        done = await asyncio.to_thread(
            sessions.second_factor,
            ctx.engine,
            ctx.auth,
            user,
            body.code,
            ip=client_ip(request),
            now=ctx.clock.now(),
        )
    except sessions.LoginRefused as exc:
        return _refused(exc)
    ctx.session_cache.forget_session(user.session_id or -1)
    return _me(done)


def _may_enrol(user: User) -> None:
    # Replacing an enrolled factor needs a session that gave it: a password alone must not swap the phone.
    if user.mfa_enrolled and user.second_factor is None:
        raise HTTPException(403, "give your current second factor first (sign in with it)")


@router.post("/mfa/enrol", response_model=Enrolment)
async def mfa_enrol(ctx: Ctx, user: CurrentUser, request: Request) -> Enrolment:
    """Start (or restart) enrolment: a new secret, shown as a QR code; nothing changes until confirmed."""
    _may_enrol(user)
    secret = await asyncio.to_thread(mfa.start_enrolment, ctx.engine, user.id)
    return Enrolment(
        secret=secret, uri=mfa.provisioning_uri(secret, user.username), qr_svg="/api/v1/auth/mfa/enrol/qr.svg"
    )


@router.get(
    "/mfa/enrol/qr.svg",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}}, 404: {"model": Detail}},
)
async def mfa_qr(ctx: Ctx, user: CurrentUser) -> Response:
    """The pending enrolment as a QR code (SVG made here; no outside service sees the secret)."""
    _may_enrol(user)
    secret = await asyncio.to_thread(mfa.pending_secret, ctx.engine, user.id)
    if secret is None:
        raise HTTPException(404, "no enrolment under way")
    svg = mfa.qr_svg(mfa.provisioning_uri(secret, user.username))
    return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "no-store"})


@router.post("/mfa/enrol/confirm", response_model=Enrolled, responses=ERRORS)
async def mfa_confirm(ctx: Ctx, user: CurrentUser, request: Request, body: CodeRequest):
    """Confirm with the app's current code: the factor is in force, this session has given it, and the
    recovery codes are shown (once)."""
    _may_enrol(user)
    try:
        done, codes = await asyncio.to_thread(
            sessions.enrolled,
            ctx.engine,
            ctx.auth,
            user,
            body.code,
            ip=client_ip(request),
            now=ctx.clock.now(),
        )
    except sessions.LoginRefused as exc:
        return _refused(exc)
    ctx.session_cache.forget_session(user.session_id or -1)
    return Enrolled(recovery_codes=codes, me=_me(done))
