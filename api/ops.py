"""The probe app of a collector that serves no API: `/healthz`, `/readyz`, `/metrics` only.

These routes are public by contract (orchestrators and Prometheus call them), so this app may listen on
the pod's address where the full API (operator data) may not.
"""

from __future__ import annotations

from fastapi import FastAPI

from pumpwatch.api.context import ApiContext
from pumpwatch.api.routes import health, system


def create_ops_app(ctx: ApiContext) -> FastAPI:
    app = FastAPI(title="pumpwatch collector probes", openapi_url=None, docs_url=None, redoc_url=None)
    app.state.ctx = ctx
    app.include_router(health.router)
    app.include_router(system.ops_router)
    return app
