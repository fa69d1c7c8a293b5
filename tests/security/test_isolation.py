"""Tenant isolation over every route (goal 10, API side; OWASP API1/API5/API9).

Every route the application serves is enumerated from `app.routes` and must be in the OpenAPI spec or in
the public allowlist below (a route missing from the spec fails: API9). Then every route of the spec is
called
- without a token: 401 (public routes excepted);
- with a viewer's token, if it changes anything: 403 (own-account routes excepted);
- with tenant A's most powerful token (an admin of kita) against tenant B's objects (minami's station,
  alarm, incident, user, tenant filled into path, query and body): 403 or 404; routes that name no object
  of B (lists, "me") may answer 200 but show only A's data.
In every answer, no byte of B's data (B's station ids and names, tenant id and name, B's user).

Routes are called over raw ASGI, so a `text/event-stream` route is read for a bounded time and then
disconnected; a route that neither ends nor declares `text/event-stream` fails with a message.
New routes (other branches: notify, stream, metrics) are covered without editing this file, as long as
their path and query parameter names are in PARAMS; an unknown name fails loudly, asking to extend it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest

from pumpwatch.api.auth import guard
from tests.security.conftest import Api, fill, make_api

# Served without a session on purpose. Docs and the live page serve no tenant data. Outside /api/v1 but
# not public: /openapi.json needs a login, /metrics the metrics token (tests/security/test_csrf_headers.py).
PUBLIC = {
    ("GET", "/"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("POST", "/api/v1/auth/login"),
    ("GET", "/api/v1/notify/ack/{token}"),
    ("POST", "/api/v1/notify/ack/{token}"),
}
NOT_IN_SPEC_OK = {("GET", "/"), ("GET", "/docs")}
NOT_IN_SPEC_OK |= {("GET", "/openapi.json"), ("GET", "/metrics")}  # Prometheus text, not an API operation
# The console's own code (modules, styles, dictionaries), packaged with the application: no tenant data.
PUBLIC |= {("*", "/static")}
NOT_IN_SPEC_OK |= {("*", "/static")}

B_TENANT, B_STATION, B_USER = "minami", "MINAMI-MP-01", "minami-op"
A_ADMIN, A_VIEWER = "kita-admin", "kita-view"
STREAM_READ_S = 1.5
ROUTE_LIMIT_S = 20.0


def params_of_b(ids: dict[str, int]) -> dict[str, Any]:
    """Parameter name → tenant B's object. A route with a parameter not named here fails the test."""
    return {
        "station_id": B_STATION,
        "station": B_STATION,
        "point": "wet_well_level_m",
        "alarm_id": ids["alarm_id"],
        "incident_id": ids["incident_id"],
        "drill_id": ids["drill_id"],
        "assignment_id": ids["assignment_id"],
        "resource_id": "minami-gen-1",
        "username": B_USER,
        "tenant": B_TENANT,
        "token": "not-a-valid-signed-token",  # issue 5's ack link: a forged token must not act
    }


# Query parameters that are not about whose data (left out, or given a harmless value when required).
NEUTRAL_QUERY = {
    "period",  # reports: a day or a month
    "view",
    "kind",
    "state",
    "priority",
    "limit",
    "start",
    "end",
    "max_points",
    "closed",
    "action",
}


def b_markers(api: Api) -> list[bytes]:
    out = {B_TENANT, B_USER, api.fleet.tenants[B_TENANT].name}
    for sid, st in api.fleet.stations.items():
        if st.tenant == B_TENANT:
            out |= {sid, st.name}
    return sorted(m.encode() for m in out)


@dataclass
class Answer:
    status: int
    body: bytes
    ended: bool
    content_type: str


async def call(app, method: str, url: str, headers: dict[str, str], body: Any | None, stream: bool) -> Answer:
    """One request over raw ASGI; a stream is read for STREAM_READ_S, then the client disconnects."""
    path, _, query = url.partition("?")
    raw = json.dumps(body).encode() if body is not None else b""
    hdrs = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    if body is not None:
        hdrs.append((b"content-type", b"application/json"))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"t"), *hdrs],
        "client": ("127.0.0.1", 50000),
        "server": ("t", 80),
    }
    sent = False
    disconnect = asyncio.Event()
    status, chunks, ended, ctype = 0, [], False, ""

    async def receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        await disconnect.wait()
        return {"type": "http.disconnect"}

    async def send(msg):
        nonlocal status, ended, ctype
        if msg["type"] == "http.response.start":
            status = msg["status"]
            ctype = dict(msg.get("headers", [])).get(b"content-type", b"").decode()
        elif msg["type"] == "http.response.body":
            chunks.append(msg.get("body", b""))
            if not msg.get("more_body", False):
                ended = True

    task = asyncio.create_task(app(scope, receive, send))
    limit = STREAM_READ_S if stream else ROUTE_LIMIT_S
    done, _ = await asyncio.wait({task}, timeout=limit)
    if not done:
        disconnect.set()
        done, _ = await asyncio.wait({task}, timeout=5)
        if not done:
            task.cancel()
    elif task.exception() is not None:
        raise task.exception()
    return Answer(status, b"".join(chunks), ended, ctype)


def all_routes(app) -> set[tuple[str, str]]:
    try:  # FastAPI ≥ 0.160 includes routers lazily; this flattens them
        from fastapi.routing import iter_route_contexts

        routes = list(iter_route_contexts(app.routes))
    except ImportError:
        routes = list(app.routes)
    out = set()
    for r in routes:
        for m in getattr(r, "methods", None) or {"*"}:
            if m not in ("HEAD", "OPTIONS"):
                out.add((m, r.path))
    return out


def spec_routes(spec: dict) -> dict[tuple[str, str], dict]:
    return {
        (m.upper(), path): op
        for path, ops in spec["paths"].items()
        for m, op in ops.items()
        if m.upper() in ("GET", "POST", "PUT", "PATCH", "DELETE")
    }


def is_stream(op: dict) -> bool:
    return any("text/event-stream" in (r.get("content") or {}) for r in op.get("responses", {}).values())


def resolve(spec: dict, schema: dict) -> dict:
    while "$ref" in schema:
        ref = schema["$ref"].split("/")[-1]
        schema = spec["components"]["schemas"][ref]
    return schema


def example(spec: dict, schema: dict, name: str, b: dict[str, Any]) -> Any:
    """A valid value for `schema`, with B's objects wherever a field is named like one."""
    schema = resolve(spec, schema)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [o for o in schema[key] if resolve(spec, o).get("type") != "null"]
            return example(spec, options[0], name, b)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    t = schema.get("type")
    if t == "object" or "properties" in schema:
        props = schema.get("properties", {})
        wanted = set(schema.get("required", [])) | (set(props) & set(b))
        return {k: example(spec, props[k], k, b) for k in sorted(wanted)}
    if t == "array":
        n = max(1, schema.get("minItems", 0)) if name in ("grants",) or schema.get("minItems") else 0
        return [example(spec, schema.get("items", {}), name, b) for _ in range(n)]
    if t == "integer":
        return int(max(schema.get("minimum", 1), schema.get("exclusiveMinimum", 0) + 1))
    if t == "number":
        return float(max(schema.get("minimum", 1), schema.get("exclusiveMinimum", 0) + 1))
    if t == "boolean":
        return False
    if name in b:
        return str(b[name])
    if schema.get("format") == "date-time":
        return "2026-09-01T00:00:00+00:00"
    return "probe-value-1234"[: schema.get("maxLength", 64)]


def build(spec: dict, method: str, path: str, op: dict, b: dict[str, Any], with_b: bool) -> tuple[str, Any]:
    url = path
    query = {}
    for p in op.get("parameters", []):
        where, name, required = p["in"], p["name"], p.get("required", False)
        if where == "path":
            assert name in b, f"{method} {path}: path parameter {name!r} unknown: add it to PARAMS"
            url = url.replace("{" + name + "}", str(b[name]))
        elif where == "query":
            if name in b and (with_b or required):
                query[name] = b[name]
            elif required:
                assert name in NEUTRAL_QUERY, (
                    f"{method} {path}: required query parameter {name!r} unknown: add it to PARAMS "
                    "(if it names an object) or NEUTRAL_QUERY"
                )
                query[name] = example(spec, p.get("schema", {}), name, b)
    body = None
    content = (op.get("requestBody") or {}).get("content", {})
    if "application/json" in content:
        body = example(spec, content["application/json"]["schema"], "", b)
    return url + ("?" + urlencode(query) if query else ""), body


@pytest.fixture(params=["sqlite", "postgres"])
async def world(request, tmp_path) -> AsyncIterator[tuple[Api, Any, dict[str, int]]]:
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else f"sqlite:///{tmp_path}/i.db"
    api, ctx = await make_api(url)
    ids = fill(api.engine, ctx.catalog)
    async with api.client:
        yield api, api.client._transport.app, ids  # type: ignore[attr-defined]
    api.engine.dispose()


async def test_every_route_is_in_the_spec_or_public(world) -> None:
    api, app, _ = world
    spec = app.openapi()
    served, listed = all_routes(app), set(spec_routes(spec))
    missing = sorted(r for r in served - listed if r not in NOT_IN_SPEC_OK)
    assert not missing, f"routes served but not in the OpenAPI spec: {missing}"
    unauthenticated = {r for r in served if not r[1].startswith("/api/v1/")} - PUBLIC
    assert not unauthenticated, f"routes outside /api/v1 (no authentication there): {unauthenticated}"
    # the guard's public list and this test's agree
    for method, path in guard.PUBLIC:
        assert (method, path) in PUBLIC or ("GET", path) in PUBLIC, (method, path)


async def test_every_route_refuses_tenant_a_no_token_and_viewers(world) -> None:
    api, app, ids = world
    spec = app.openapi()
    b = params_of_b(ids)
    markers = b_markers(api)
    admin_a = {"Authorization": f"Bearer {await api.token(A_ADMIN)}"}
    viewer_a = {"Authorization": f"Bearer {await api.token(A_VIEWER)}"}
    problems: list[str] = []
    checked = 0

    def leak(ans: Answer, who: str, route: str) -> None:
        found = [m.decode() for m in markers if m in ans.body]
        if found:
            problems.append(f"{who} {route}: {ans.status} shows B's data {found}: {ans.body[:200]!r}")

    routes = sorted(spec_routes(spec).items(), key=lambda kv: kv[0][1] == "/api/v1/auth/logout")
    for (method, path), op in routes:
        route = f"{method} {path}"
        stream = is_stream(op)
        url, body = build(spec, method, path, op, b, with_b=True)
        public = (method, path) in PUBLIC
        mutating = method not in guard.SAFE_METHODS
        own_account = guard.is_self_service(path)
        if not public:
            ans = await call(app, method, url, {}, body, stream)
            if ans.status != 401:
                problems.append(f"no token {route}: {ans.status}, expected 401")
            leak(ans, "no token", route)
            if mutating and not own_account:
                ans = await call(app, method, url, viewer_a, body, stream)
                if ans.status != 403:
                    problems.append(f"viewer {route}: {ans.status}, expected 403")
                leak(ans, "viewer", route)
        if path == "/api/v1/auth/logout":  # do not end the token the other routes use
            admin_a = {"Authorization": f"Bearer {await api.token(A_ADMIN)}"}
        ans = await call(app, method, url, admin_a, body, stream)
        if not ans.ended and not stream:
            problems.append(f"{route} did not end within {ROUTE_LIMIT_S} s: declare text/event-stream")
        names_b = (
            "{" in path
            or any(p["in"] == "query" and p["name"] in b for p in op.get("parameters", []))
            or (body is not None and any(str(v) in json.dumps(body) for v in (B_TENANT, B_STATION, B_USER)))
        )
        if names_b and not public and not own_account and ans.status not in (403, 404):
            problems.append(
                f"tenant A {route} ({url}): {ans.status}, expected 403 or 404: {ans.body[:200]!r}"
            )
        leak(ans, "tenant A", route)
        # and the same route without naming B: A's own view must not show B either
        url_a, body_a = build(spec, method, path, op, b, with_b=False)
        if url_a != url and "{" not in path:
            ans = await call(app, method, url_a, admin_a, body_a, stream)
            leak(ans, "tenant A (no filter)", route)
        checked += 1
    assert checked >= 30
    assert not problems, "\n".join(problems)


async def test_the_probe_sees_b_when_allowed(world) -> None:
    """The test can fail: B's own operator does see B's data through the same requests."""
    api, app, ids = world
    h = {"Authorization": f"Bearer {await api.token('minami-op')}"}
    ans = await call(app, "GET", f"/api/v1/alarms/{ids['alarm_id']}", h, None, False)
    assert ans.status == 200 and B_STATION.encode() in ans.body
    ans = await call(app, "GET", "/api/v1/stations", h, None, False)
    assert any(m in ans.body for m in b_markers(api))


async def test_streams_are_read_for_a_bounded_time() -> None:
    """The route walker's reader ends an endless text/event-stream answer by disconnecting."""
    from fastapi import FastAPI
    from fastapi.responses import StreamingResponse

    app = FastAPI()

    @app.get("/events", response_model=None, responses={200: {"content": {"text/event-stream": {}}}})
    async def events():
        async def forever():
            while True:
                yield b"data: tick\n\n"
                await asyncio.sleep(0.1)

        return StreamingResponse(forever(), media_type="text/event-stream")

    assert is_stream(spec_routes(app.openapi())[("GET", "/events")])
    t0 = asyncio.get_running_loop().time()
    ans = await call(app, "GET", "/events", {}, None, stream=True)
    assert ans.status == 200 and b"data: tick" in ans.body and not ans.ended
    assert asyncio.get_running_loop().time() - t0 < STREAM_READ_S + 6
