"""What every request passes before a route reads it, in this order:

1. the URL (`api.inputs.target_problem`): 414 if too long, 422 with a NUL in it;
2. authentication (`api.auth.guard.authorize`, the same function the /api/v1 router depends on) for
   every /api/v1 route: FastAPI parses a JSON body before it runs a route's dependencies, so without
   this an unauthenticated client with malformed JSON got 422 (and learnt the body's schema) before 401;
3. CSRF (`api.csrf`) for every change;
4. a JSON body (`api.inputs.json_body_problem`): read here, within the size limit (413 beyond), refused
   with 422 when it holds what no handler or database can take, else handed on unchanged.

Refusals are answered through the application's own exception handlers (so a refused change is
audited as before) and counted in `ctx.request_rejections`.
"""

from __future__ import annotations

from fastapi import HTTPException
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pumpwatch.api import csrf
from pumpwatch.api.auth.guard import SAFE_METHODS, authorize, is_public
from pumpwatch.api.inputs import is_json, json_body_problem, problem_response, target_problem

API_PREFIX = "/api/v1"
LOGIN = "/api/v1/auth/login"


class RequestGate:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        ctx = scope["app"].state.ctx
        path, method = scope["path"], scope["method"]
        bad = target_problem(path, scope.get("raw_path"), scope.get("query_string", b""))
        if bad is not None:
            ctx.request_rejections["target"] += 1
            await problem_response(bad[0], bad[1])(scope, receive, send)
            return
        under_api = path == API_PREFIX or path.startswith(API_PREFIX + "/")
        if under_api:
            try:
                await authorize(request)
            except HTTPException as exc:
                await self._refuse(request, exc, send)
                return
        headers = Headers(scope=scope)
        mutating = method not in SAFE_METHODS
        if mutating and (under_api or path == LOGIN):
            scheme, _, value = headers.get("authorization", "").partition(" ")
            bearer = scheme.lower() == "bearer" and bool(value.strip())  # as guard.token_of reads it
            public = is_public(method, path)
            if not bearer and (path == LOGIN or not public):
                own = csrf.own_origin(scope.get("scheme", "http"), headers, scope.get("server"))
                why = csrf.csrf_problem(headers, own, ctx.web.origins, cookie_session=path != LOGIN)
                if why is not None:
                    ctx.request_rejections["csrf"] += 1
                    await self._refuse(request, HTTPException(403, why), send)
                    return
        if not (mutating and is_json(headers.get("content-type"))):
            await self.app(scope, receive, send)
            return
        try:
            body = await _read_body(receive, ctx.web.max_body_bytes, headers.get("content-length"))
        except StarletteHTTPException:  # 413: our limit, or FastAPI's own while reading
            ctx.request_rejections["too_large"] += 1
            limit = ctx.web.max_body_bytes
            await self._refuse(request, HTTPException(413, f"the request body is over {limit} bytes"), send)
            return
        if body is None:  # the client went away
            return
        problem = json_body_problem(body)
        if problem is not None:
            ctx.request_rejections["validation"] += 1
            await problem_response(422, [problem])(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _refuse(self, request: Request, exc: HTTPException, send: Send) -> None:
        app = request.scope["app"]
        handler = next(
            (app.exception_handlers[c] for c in type(exc).__mro__ if c in app.exception_handlers), None
        )
        if handler is None:
            response = problem_response(exc.status_code, str(exc.detail))
        else:
            response = await handler(request, exc)
        await response(request.scope, request.receive, send)


async def _read_body(receive: Receive, limit: int, content_length: str | None) -> bytes | None:
    if content_length is not None and content_length.strip().isdigit() and int(content_length) > limit:
        raise StarletteHTTPException(413)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise StarletteHTTPException(413)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # then whatever comes (a disconnect)

    return again
