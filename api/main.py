"""The FastAPI application: `create_app(ctx)` builds it; nothing happens at import time."""

from __future__ import annotations

import asyncio
import logging
from importlib import resources

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from sqlalchemy import exc as sa_exc

from pumpwatch import __version__
from pumpwatch.api.auth.access import audit_for
from pumpwatch.api.auth.guard import SAFE_METHODS, authorize
from pumpwatch.api.context import ApiContext
from pumpwatch.api.exposure import add_self_description, metrics_allowed
from pumpwatch.api.failsafe import Failsafe
from pumpwatch.api.gate import RequestGate
from pumpwatch.api.headers import SecurityHeaders
from pumpwatch.api.inputs import InputErrors, validation_error
from pumpwatch.api.proxies import TrustedProxies
from pumpwatch.api.routes import (
    alarms,
    auth,
    console,
    dispatch,
    drills,
    field_writes,
    health,
    incidents,
    kpis,
    notify,
    overview,
    reports,
    stations,
    stream,
    system,
    tenants,
    users,
)
from pumpwatch.api.routes import (
    resources as resource_routes,
)
from pumpwatch.api.schemas import Detail
from pumpwatch.api.streamhub import StreamHub
from pumpwatch.core.audit import AuditUnavailable

log = logging.getLogger(__name__)


def _operation_id(route: APIRoute) -> str:
    return f"{route.tags[0]}-{route.name}" if route.tags else route.name


# What any /api/v1 route may answer besides its own: not logged in, role too low (or a cross-site
# request), not found (or another tenant's), malformed input (api.inputs), the audit log unavailable
# (the action was not done).
COMMON_ERRORS: dict[int | str, dict] = {
    401: {"model": Detail, "description": "not logged in, or the session ended"},
    403: {"model": Detail, "description": "your role may not do this, or a cross-site request"},
    404: {"model": Detail, "description": "no such object, or not one of your tenants'"},
    413: {"model": Detail, "description": "the request body is over the limit (1 MiB)"},
    414: {"model": Detail, "description": "the URL is over 8 KiB"},
    422: {"model": InputErrors, "description": "malformed input: what and where (never the input itself)"},
    503: {"model": Detail, "description": "the audit log is unavailable: nothing was done"},
}


def create_app(ctx: ApiContext) -> FastAPI:
    app = FastAPI(
        title="pumpwatch",
        version=__version__,
        description="Live status, history and alarms of sewer pump stations.",
        generate_unique_id_function=_operation_id,
        max_body_size=ctx.web.max_body_bytes,  # while reading, before parsing: 413 beyond
        openapi_url=None,  # served by api.exposure, behind a login
        docs_url=None,
        redoc_url=None,
    )
    app.state.ctx = ctx
    # Outermost first: forwarded headers from trusted proxies only, security headers on every answer
    # (500s included), unexpected errors answered without closing the connection, then the gate (URL,
    # authentication, CSRF, JSON body) before any route reads the request.
    app.add_middleware(RequestGate)
    app.add_middleware(Failsafe)
    tiles = ctx.web.tiles_origin
    app.add_middleware(SecurityHeaders, img_origins=(tiles,) if tiles else ())
    app.add_middleware(TrustedProxies, trusted=ctx.web.trusted_proxies)
    app.state.hub = StreamHub(ctx)  # the live stream's publisher; starts with the first client
    # Every /api/v1 route is authenticated and role-checked here, in one place (api.auth.guard); routes
    # added to this router later are covered without doing anything.
    v1 = APIRouter(prefix="/api/v1", dependencies=[Depends(authorize)], responses=COMMON_ERRORS)
    for r in (
        auth.router,
        users.router,
        tenants.router,
        stations.router,
        field_writes.router,
        alarms.router,
        incidents.router,
        drills.router,
        dispatch.router,
        resource_routes.router,
        kpis.router,
        reports.router,
        stream.router,
        console.router,
    ):
        v1.include_router(r)
    v1.include_router(notify.router)
    v1.include_router(system.router)
    v1.include_router(overview.router)
    app.include_router(v1)
    app.include_router(health.router)
    app.include_router(system.ops_router, dependencies=[Depends(metrics_allowed)])
    add_self_description(app, docs=ctx.web.docs)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        # A refused change is an action too: it goes in the audit log (best effort: the refusal stands).
        if exc.status_code == 403 and request.method not in SAFE_METHODS:
            user = getattr(request.state, "user", None)
            audit = audit_for(request, user, f"{request.method} {request.url.path}", detail=str(exc.detail))
            try:
                await asyncio.to_thread(audit.record, ctx.engine, "denied")
            except AuditUnavailable:
                pass
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_input(_request: Request, exc: RequestValidationError) -> JSONResponse:
        ctx.request_rejections["validation"] += 1
        return validation_error(exc)

    @app.exception_handler(sa_exc.OperationalError)
    @app.exception_handler(sa_exc.TimeoutError)
    async def database_unreachable(_request: Request, exc: Exception) -> JSONResponse:
        # The database is away (the historian spools meanwhile): say so, not a bare 500. What this process
        # serves from memory (the overview) goes on for sessions it checked before.
        log.warning("database unreachable while answering: %s", type(exc).__name__)
        return JSONResponse({"detail": "the database is unreachable: try again shortly"}, status_code=503)

    @app.exception_handler(AuditUnavailable)
    async def audit_unavailable(_request: Request, exc: AuditUnavailable) -> JSONResponse:
        # fail closed: the action was rolled back with its audit record
        return JSONResponse({"detail": str(exc)}, status_code=503)

    # The operator console: one page, its modules and styles, all served from the package (no CDN).
    page = resources.files("pumpwatch.api").joinpath("static/index.html").read_text(encoding="utf-8")
    app.mount("/static", StaticFiles(packages=[("pumpwatch.api", "static")]), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    return app
