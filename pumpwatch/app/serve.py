"""Serving the API and a collector's probes with uvicorn (the process owns the signals while it runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import uvicorn

from pumpwatch.api.context import ApiContext
from pumpwatch.api.main import create_app
from pumpwatch.api.ops import create_ops_app


class ApiServer(uvicorn.Server):
    """uvicorn that ends the live streams when it shuts down (it would otherwise wait for them forever)."""

    async def shutdown(self, sockets=None) -> None:
        app: Any = self.config.app  # our FastAPI app (uvicorn types it as any ASGI application)
        app.state.hub.close()
        await super().shutdown(sockets)


async def serve_api(
    ctx: ApiContext,
    host: str,
    port: int,
    *,
    ssl_certfile: str | Path | None = None,
    ssl_keyfile: str | Path | None = None,
) -> None:
    """Serve until uvicorn sees SIGINT/SIGTERM (it owns the signals while it runs). With a certificate,
    TLS only (uvicorn's default context: TLS 1.2 or newer)."""
    config = api_server_config(
        create_app(ctx), host, port, ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile
    )
    server = ApiServer(config)
    await server.serve()


def api_server_config(
    app: object,
    host: str,
    port: int,
    *,
    ssl_certfile: str | Path | None = None,
    ssl_keyfile: str | Path | None = None,
    timeout_graceful_shutdown: int = 5,
) -> uvicorn.Config:
    """uvicorn as the API runs: no proxy-header handling of its own (its default believes X-Forwarded-*
    from 127.0.0.1; the app's `api.proxies` believes only PUMPWATCH_TRUSTED_PROXIES), no Server header."""
    return uvicorn.Config(
        app,  # type: ignore[arg-type]  # starlette's ASGI types vs uvicorn's TypedDicts: the same at run time
        host=host,
        port=port,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=timeout_graceful_shutdown,
        ssl_certfile=str(ssl_certfile) if ssl_certfile else None,
        ssl_keyfile=str(ssl_keyfile) if ssl_keyfile else None,
        proxy_headers=False,
        server_header=False,
    )


async def serve_probes(ctx: ApiContext, host: str, port: int) -> None:
    """A collector without the API still answers its orchestrator and Prometheus."""
    config = uvicorn.Config(
        create_ops_app(ctx), host=host, port=port, log_level="warning", lifespan="off", proxy_headers=False
    )
    await uvicorn.Server(config).serve()
