"""The last line: an exception no handler expected becomes a logged, counted 500 answer, and the
connection stays open.

Starlette's own last resort answers 500 and re-raises, so uvicorn closes the keep-alive connection after
every 500 (a client's next request on it fails too). Here the answer is complete instead; the traceback
goes to the log once, with the request's method and path.
"""

from __future__ import annotations

import logging

from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)


class Failsafe:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except HTTPException:
            raise  # raised while reading the body: FastAPI's body-size limit outside answers it (413)
        except Exception:
            if started:  # half an answer went out: only closing the connection can say it broke
                raise
            log.exception("internal error answering %s %s", scope.get("method"), scope.get("path"))
            scope["app"].state.ctx.request_rejections["internal_error"] += 1
            await JSONResponse({"detail": "internal error (logged on the server)"}, status_code=500)(
                scope, receive, send
            )
