"""What the API shows about itself, and to whom.

- `/openapi.json` needs a login (cookie or Bearer): the spec holds no tenant data and the project is open
  source, but an unauthenticated scanner need not learn this instance's version and routes.
- `/docs`: Swagger UI from files vendored in `api/static/vendor/` (pinned, checksummed), a page with no
  inline script, so the console's CSP holds for it too. `PUMPWATCH_API_DOCS=false` turns it off.
  ReDoc is not served (it needs inline styles and a CDN font).
- `/metrics` on the API's port needs `Authorization: Bearer $PUMPWATCH_METRICS_TOKEN`; without a token
  configured it is not served there (403 says why). A collector's probe port (`--probe-port`) serves it
  without a token: bind that port where only the orchestrator reaches it.
"""

from __future__ import annotations

import hmac

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse

from pumpwatch.api.deps import CurrentUser

SWAGGER_UI = "/static/vendor/swagger-ui-5.35.0"
DOCS_PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pumpwatch API</title>
<link rel="stylesheet" href="{SWAGGER_UI}/swagger-ui.css">
</head>
<body>
<p>The API's specification needs a login: sign in on the <a href="/">console</a> first.</p>
<div id="swagger-ui"></div>
<script src="{SWAGGER_UI}/swagger-ui-bundle.js"></script>
<script src="/static/docs/swagger-init.js"></script>
</body>
</html>
"""


def add_self_description(app: FastAPI, docs: bool) -> None:
    @app.get("/openapi.json", include_in_schema=False)
    async def openapi_spec(_user: CurrentUser) -> JSONResponse:
        return JSONResponse(app.openapi())

    if docs:

        @app.get("/docs", include_in_schema=False)
        async def swagger_ui() -> HTMLResponse:
            return HTMLResponse(DOCS_PAGE)


async def metrics_allowed(request: Request) -> None:
    """A dependency of `/metrics` on the API's app (not of the collector's probe app)."""
    token = request.app.state.ctx.web.metrics_token
    if not token:
        raise HTTPException(
            403,
            "/metrics is not served on the API's port without PUMPWATCH_METRICS_TOKEN "
            "(send it as Authorization: Bearer …), or scrape a collector's --probe-port",
        )
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise HTTPException(401, "/metrics needs Authorization: Bearer <PUMPWATCH_METRICS_TOKEN>")
