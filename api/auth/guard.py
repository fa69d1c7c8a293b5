"""Authentication and the coarse role check for every /api/v1 route, in one place.

`authorize` is a dependency of the whole /api/v1 router, so a route added anywhere under it is covered
without doing anything. It lets through only the routes in `PUBLIC` (login, issue 5's signed ack link);
every other route needs a live session (cookie `pumpwatch_session` or `Authorization: Bearer`), else 401.
A mutating method (anything but GET/HEAD/OPTIONS) needs at least `operator` in some tenant, else 403,
except the self-service routes in `SELF_SERVICE` (logout, own password, own second factor). A session
still owing its second factor holds only the grants that need none; with none at all it reaches only
`MFA_STEP` (who am I, the second step, enrolment, logout): elsewhere 401. Handlers then check the object's
tenant (`user.can(role, tenant)`: no grant for the tenant → 404, role too low → 403).
"""

from __future__ import annotations

import asyncio
import re

from fastapi import HTTPException, Request
from sqlalchemy.exc import SQLAlchemyError

from pumpwatch.api.auth import sessions
from pumpwatch.api.auth.roles import RANK
from pumpwatch.api.auth.users import User
from pumpwatch.core.db import rls

# (method or "*", path template) that need no session; a signed token in the path authenticates ack links.
PUBLIC: frozenset[tuple[str, str]] = frozenset(
    {
        ("POST", "/api/v1/auth/login"),
        ("*", "/api/v1/notify/ack/{token}"),
    }
)
MFA_STEP: frozenset[str] = frozenset(
    {
        "/api/v1/auth/me",
        "/api/v1/auth/logout",
        "/api/v1/auth/mfa",
        "/api/v1/auth/mfa/verify",
        "/api/v1/auth/mfa/enrol",
        "/api/v1/auth/mfa/enrol/qr.svg",
        "/api/v1/auth/mfa/enrol/confirm",
    }
)
SELF_SERVICE: frozenset[str] = MFA_STEP | {"/api/v1/auth/password"}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


def _pattern(template: str) -> re.Pattern[str]:
    # Templates are matched against the request path itself: no reliance on the router's internals,
    # which differ between FastAPI versions.
    return re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$")


_PUBLIC = [(m, _pattern(p)) for m, p in PUBLIC]
_SELF_SERVICE = [_pattern(p) for p in SELF_SERVICE]


def is_public(method: str, path: str) -> bool:
    return any((m == "*" or m == method) and rx.match(path) for m, rx in _PUBLIC)


def is_self_service(path: str) -> bool:
    return any(rx.match(path) for rx in _SELF_SERVICE)


def token_of(request: Request, cookie_name: str) -> str | None:
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return request.cookies.get(cookie_name) or None


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


async def authorize(request: Request) -> User | None:
    path = request.url.path
    if is_public(request.method, path):
        return None
    cached = getattr(request.state, "user", None)
    if cached is not None:
        return cached
    ctx = request.app.state.ctx
    token = token_of(request, ctx.auth.cookie_name)
    if token is None:
        raise HTTPException(401, "not logged in", headers=UNAUTHORIZED)
    mutating = request.method not in SAFE_METHODS
    key = sessions.token_hash(ctx.auth, token)
    now = ctx.clock.now()
    try:
        user = await asyncio.to_thread(
            sessions.authenticate, ctx.engine, ctx.auth, token, now=now, activity=mutating
        )
    except SQLAlchemyError:
        # Sessions live in the database. While it is unreachable, a session this process checked a
        # moment ago still sees what the process serves from memory (api.auth.session_cache); anyone
        # else is told why they cannot get in (the public /readyz and /metrics show the historian's state).
        user = ctx.session_cache.recall(key, now)
        if user is None:
            raise HTTPException(503, "the database is unreachable: sign-in cannot be checked now") from None
    else:
        if user is None:
            ctx.session_cache.forget(key)
            raise HTTPException(401, "session expired or revoked: log in again", headers=UNAUTHORIZED)
        if not user.grants and user.withheld and path not in MFA_STEP:
            raise HTTPException(
                401, "sign-in not finished: give your second factor (TOTP code)", headers=UNAUTHORIZED
            )
        ctx.session_cache.remember(key, user, now)
    request.state.user = user
    # The database sees this request's tenants (row-level security on PostgreSQL's app role).
    rls.set_scope(user.tenants, user.id)
    if mutating and not is_self_service(path) and user.highest < RANK["operator"]:
        raise HTTPException(403, "your role may only view")
    return user


async def current_user(request: Request) -> User:
    user = await authorize(request)
    if user is None:  # a public route asked for a user
        raise HTTPException(401, "not logged in", headers=UNAUTHORIZED)
    return user
