"""The FastAPI application: `create_app(ctx)` builds it; nothing happens at import time."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute

from api.context import ApiContext
from api.routes import alarms, dispatch, health, incidents, kpis, overview, stations, system, tenants
from pumpwatch import __version__


def _operation_id(route: APIRoute) -> str:
    return f"{route.tags[0]}-{route.name}" if route.tags else route.name


def create_app(ctx: ApiContext) -> FastAPI:
    app = FastAPI(
        title="pumpwatch",
        version=__version__,
        description="Live status, history and alarms of sewer pump stations.",
        generate_unique_id_function=_operation_id,
    )
    app.state.ctx = ctx
    v1 = APIRouter(prefix="/api/v1")
    for r in (tenants.router, stations.router, alarms.router, incidents.router, dispatch.router, kpis.router):
        v1.include_router(r)
    v1.include_router(system.router)
    v1.include_router(overview.router)
    app.include_router(v1)
    app.include_router(health.router)
    app.include_router(system.ops_router)
    page = resources.files("api").joinpath("static/index.html").read_text(encoding="utf-8")

    @app.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    return app
