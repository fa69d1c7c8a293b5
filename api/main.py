"""The FastAPI application: `create_app(ctx)` builds it; nothing happens at import time."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from api.context import ApiContext
from api.routes import alarms, console, dispatch, health, incidents, kpis, stations, stream, tenants
from api.streamhub import StreamHub
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
    app.state.hub = StreamHub(ctx)  # the live stream's publisher; starts with the first client
    v1 = APIRouter(prefix="/api/v1")
    for r in (tenants.router, stations.router, alarms.router, incidents.router, dispatch.router, kpis.router):
        v1.include_router(r)
    v1.include_router(stream.router)
    v1.include_router(console.router)
    app.include_router(v1)
    app.include_router(health.router)
    # The operator console: one page, its modules and styles, all served from the package (no CDN).
    page = resources.files("api").joinpath("static/index.html").read_text(encoding="utf-8")
    app.mount("/static", StaticFiles(packages=[("api", "static")]), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    return app
