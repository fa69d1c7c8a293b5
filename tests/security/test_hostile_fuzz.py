"""Hostile input over every route of the spec (issue 15): 0 × 5xx, with and without a session.

Walks `app.openapi()` and, with hypothesis, sends each operation what a hostile client sends: datetimes
at and past the edges (year 1 and 9999, offsets beyond ±14 h, naive), integers beyond 32 and 64 bits,
strings with lone surrogates (in JSON escapes, and as invalid UTF-8 in the URL), NUL characters, long
strings, bodies deeply nested, over 1 MiB, not UTF-8 or not JSON, NaN and 1e400, wrong content types,
missing and extra parameters. Requests go over raw ASGI (bytes chosen here, not by a client library),
so every answer is seen, a stream is cut after its first bytes, and an exception escaping the
application fails the test like a 5xx does.

Without a session every part of a request is hostile at once (the answer must be a 401, never a 5xx);
with one (an admin of both tenants), each parameter, the body and each body field in turn is the hostile
part among valid ones, so it reaches the handler and the database.

Examples per operation, and per hostile part: PUMPWATCH_API_FUZZ_EXAMPLES (default 3, PostgreSQL only;
`make fuzz`: 100, on SQLite too).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pumpwatch.api.auth import guard, sessions
from pumpwatch.api.auth.config import AuthConfig
from pumpwatch.api.main import create_app
from tests.auth import PASSWORD
from tests.security.conftest import attach_notifier, fill, make_api
from tests.services import create_database, drop_database

SCALE = int(os.environ.get("PUMPWATCH_API_FUZZ_EXAMPLES", "0") or 0)
EXAMPLES = SCALE or 3  # per operation without a session, and per hostile part with one
CFG = AuthConfig(ip_max_failures=10**9, max_failures=10**9)  # the fuzzer's failed logins lock nobody

# --- values -----------------------------------------------------------------------------------------------

EDGE_TIMES = [
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00+00:00",
    "9999-12-31T23:59:59.999999+14:00",
    "0001-01-01T00:00:00+14:00",
    "1969-12-31T23:59:59Z",
    "1970-01-01T00:00:00Z",
    "8999-12-31T23:59:59-14:00",
    "2026-09-01T00:00:00",
    "2026-09-01T00:00:00+14:01",
    "2026-09-01T00:00:00-23:59",
    "2026-02-30T00:00:00Z",
    "2026-09-01",
    "99999999999999999999",
    "-1",
    "1e308",
    "now",
    "",
]
BIG_INTS = [2**63, 2**31, 2**70, -(2**63) - 1, 10**30, 2**63 - 1, 2**31 - 1, -1, 0]
SURROGATES = ["\ud800", "\udfff", "a\udc00b", "\ud83d", "\udbff\udbff"]
NASTY_STRINGS = [
    *SURROGATES,
    "\x00",
    "a\x00",
    "é" * 300,
    "x" * 5000,
    "../../etc/passwd",
    "%00",
    "' OR 1=1--",
    "",
]
GOOD_STRINGS = ["kita", "minami", "KITA-MP-01", "wet_well_level_m", "kita-op", "duty1", "power_failure"]

# Hostile first: hypothesis's first examples take the first branch of each choice, so with few examples
# (`make test`) every route still meets the worst values; `make fuzz` explores the rest.


def text() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(NASTY_STRINGS),
        st.text(alphabet=st.characters(codec=None), max_size=40),  # surrogates included
        st.sampled_from(GOOD_STRINGS),
    )


def number() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from([*BIG_INTS, 1e308, -1e308, float("nan"), float("inf"), -0.0, 0.5]),
        st.integers(),
        st.floats(),
    )


def json_value() -> st.SearchStrategy[Any]:
    leaves = st.one_of(text(), number(), st.sampled_from(EDGE_TIMES), st.none(), st.booleans())
    return st.recursive(
        leaves,
        lambda kids: st.lists(kids, max_size=3) | st.dictionaries(text(), kids, max_size=3),
        max_leaves=8,
    )


def for_schema(spec: dict, schema: dict | None) -> st.SearchStrategy[Any]:
    """A value meant for `schema`: mostly a hostile one of the right JSON type, sometimes of another."""
    schema = _resolve(spec, schema or {})
    if "anyOf" in schema:
        branches = sorted(schema["anyOf"], key=lambda s: s.get("type") == "null")  # null (omit) last
        return st.one_of(*(for_schema(spec, s) for s in branches))
    kind = schema.get("type")
    if kind == "null":
        return st.none()
    if kind == "object" or "properties" in schema:
        fields = {
            name: for_schema(spec, sub) | json_value() for name, sub in schema.get("properties", {}).items()
        }
        return st.one_of(
            st.fixed_dictionaries(fields), st.fixed_dictionaries({}, optional=fields), json_value()
        )
    if kind == "array":
        return st.lists(for_schema(spec, schema.get("items")), min_size=1, max_size=4) | json_value()
    if schema.get("format") == "date-time":
        return st.sampled_from(EDGE_TIMES) | number()
    if kind in ("integer", "number"):
        return number() | text()
    if kind == "boolean":
        return st.sampled_from(["maybe", "", 2, None]) | st.booleans()
    if "enum" in schema:
        return text() | st.sampled_from(schema["enum"])
    return text() | json_value()


def _resolve(spec: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def valid_for(spec: dict, schema: dict | None) -> st.SearchStrategy[Any]:
    """A plausible valid value, so that one hostile value among valid ones reaches the handler."""
    schema = _resolve(spec, schema or {})
    if "anyOf" in schema:
        return st.one_of(*(valid_for(spec, s) for s in schema["anyOf"] if s.get("type") != "null"))
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props, required = schema.get("properties", {}), set(schema.get("required", []))
        return st.fixed_dictionaries(
            {k: valid_for(spec, v) for k, v in props.items() if k in required},
            optional={k: valid_for(spec, v) for k, v in props.items() if k not in required},
        )
    if kind == "array":
        return st.lists(valid_for(spec, schema.get("items")), min_size=1, max_size=2)
    if schema.get("format") == "date-time":
        return st.sampled_from(["2026-09-01T00:30:00Z", "2026-08-31T09:00:00+09:00"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if kind == "integer":
        lo = schema.get("minimum", schema.get("exclusiveMinimum", 0) + 1)
        return st.integers(lo, min(schema.get("maximum", lo + 100), lo + 100))
    if kind == "number":
        return st.sampled_from([1.0, 30.0, 0.5])
    if kind == "boolean":
        return st.booleans()
    # never the test password: a valid password change would lock the fuzzer out of its own account
    return st.sampled_from(["kita", "pump swap", "KITA-MP-01", "duty1", "another-password-9"])


def url_text(v: Any) -> str:
    """How a hostile client writes a value into a URL: UTF-8 percent-encoding, surrogates as the invalid
    UTF-8 bytes they would be."""
    if isinstance(v, bool):
        return "true" if v else "false"
    s = v if isinstance(v, str) else json.dumps(v) if isinstance(v, dict | list) else str(v)
    return quote(s, safe="", encoding="utf-8", errors="surrogatepass")


BODY_KINDS = [
    "schema",
    "schema",
    "schema",
    "random",
    "deep",
    "huge",
    "not-utf8",
    "not-json",
    "wrong-type",
    "none",
]


@st.composite
def body(draw, spec: dict, schema: dict | None) -> tuple[bytes, str | None]:
    kind = draw(st.sampled_from(BODY_KINDS))
    if kind == "schema":
        return json.dumps(draw(for_schema(spec, schema))).encode(), "application/json"
    if kind == "random":
        return json.dumps(draw(json_value())).encode(), draw(
            st.sampled_from(["application/json", "application/x+json"])
        )
    if kind == "deep":
        d = draw(st.sampled_from([33, 200, 1100, 50_000]))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        return (opener * d + "1" + closer * d).encode(), "application/json"
    if kind == "huge":
        return b'{"reason": "' + b"a" * (2**20 + 1) + b'", "x": 1}', "application/json"
    if kind == "not-utf8":
        return draw(
            st.sampled_from([b'{"reason": "\xff\xfe"}', '{"a": 1}'.encode("utf-16"), b"\xc0\x80"])
        ), "application/json"
    if kind == "not-json":
        return draw(st.binary(max_size=50)), "application/json"
    if kind == "wrong-type":
        ctype = draw(
            st.sampled_from(
                [
                    "text/plain",
                    "application/x-www-form-urlencoded",
                    "multipart/form-data",
                    "application/xml",
                    "",
                ]
            )
        )
        return json.dumps(draw(for_schema(spec, schema))).encode(), ctype or None
    return b"", None


# --- one request over raw ASGI ----------------------------------------------------------------------------


async def asgi_call(
    app, method: str, raw_path: str, query: str, headers: list[tuple[bytes, bytes]], payload: bytes
) -> int:
    """The status the app answers; raises what escapes the app. A stream is read until its first bytes."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(raw_path),
        "raw_path": raw_path.encode("ascii"),
        "query_string": query.encode("ascii"),
        "root_path": "",
        "headers": [(b"host", b"t"), *headers, (b"content-length", str(len(payload)).encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("t", 80),
    }
    given_body = False
    done = asyncio.Event()
    status = 0

    async def receive():
        nonlocal given_body
        if not given_body:
            given_body = True
            return {"type": "http.request", "body": payload, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(msg):
        nonlocal status
        if msg["type"] == "http.response.start":
            status = msg["status"]
        elif msg["type"] == "http.response.body" and (msg.get("body") or not msg.get("more_body")):
            done.set()  # enough: a stream's first bytes, or the end

    task = asyncio.ensure_future(app(scope, receive, send))
    try:
        await asyncio.wait_for(done.wait(), 10)
    finally:
        done.set()
        await asyncio.wait_for(task, 10)
    return status


# --- the test ---------------------------------------------------------------------------------------------


# PostgreSQL holds the stricter types (int4 ids, no NUL in text); `make fuzz` runs SQLite too.
@pytest.fixture(params=["postgres", "sqlite"] if SCALE else ["postgres"])
def world(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'pumpwatch.db'}"
    else:
        name, url = create_database()
        request.addfinalizer(lambda: drop_database(name))
    api, ctx = asyncio.run(make_api(url, CFG))
    ids = fill(api.engine, ctx.catalog)
    attach_notifier(api, ctx, tmp_path)
    yield api, create_app(ctx), ids
    api.engine.dispose()


def operations(spec: dict) -> list[tuple[str, str, dict]]:
    return [(m.upper(), path, op) for path, ops in spec["paths"].items() for m, op in ops.items()]


class Fuzzer:
    """Sends hostile requests for one operation at a time; collects every 5xx or escaped exception."""

    def __init__(self, api, app, ids: dict[str, int]) -> None:
        self.api, self.app, self.ids = api, app, ids
        self.spec = app.openapi()
        self.loop = asyncio.new_event_loop()
        self.failures: list[str] = []
        self.sent = 0

    def credentials(self, with_session: bool, data) -> list[tuple[bytes, bytes]]:
        if not with_session:
            return list(data.draw(st.sampled_from([
                [], [(b"authorization", b"Bearer not-a-session")], [(b"cookie", b"pumpwatch_session=forged")],
            ])))  # fmt: skip
        # a fresh session each time: the fuzzer may log out, revoke or disable (never `boss` itself)
        login = sessions.login(
            self.api.engine, CFG, "boss", PASSWORD, ip="127.0.0.1", now=self.api.clock.now()
        )
        if data.draw(st.sampled_from([False, True])):
            return [(b"cookie", f"pumpwatch_session={login.token}".encode()), (b"x-pumpwatch-csrf", b"1")]
        return [(b"authorization", f"Bearer {login.token}".encode())]

    def one(self, data, method: str, path: str, op: dict, with_session: bool, target: str | None) -> None:
        """One request. `target` names the one hostile part (`query:end`, `body:until`, `body`) among
        valid ones; None: everything hostile at once."""
        spec, params = self.spec, op.get("parameters", [])
        body_schema = (
            (op.get("requestBody") or {}).get("content", {}).get("application/json", {}).get("schema")
        )
        hostile = lambda part: target is None or target == part  # noqa: E731
        raw_path, query, headers = path, [], []
        for p in params:
            name, where, schema = p["name"], p["in"], p.get("schema")
            part = f"{where}:{name}"
            if where == "path":
                good = st.sampled_from(_good(name, self.ids))
                v = data.draw(good | for_schema(spec, schema) if hostile(part) else good)
                raw_path = raw_path.replace("{" + name + "}", url_text(v) or "x")
            elif where == "query":
                v = data.draw(
                    for_schema(spec, schema) if hostile(part) else st.none() | valid_for(spec, schema)
                )
                if v is not None:
                    query.append(f"{quote(name)}={url_text(v)}")
            elif where == "header" and hostile(part):
                v = data.draw(st.sampled_from(["0-99999999999999999999", "e-1", "x" * 300, "-", "\u00ff"]))
                headers.append((name.lower().encode(), v.encode("latin-1")))
        if target is None and data.draw(st.sampled_from([False, True])):
            query.append(f"extra={url_text(data.draw(text()))}")
        headers += self.credentials(with_session, data)
        payload, ctype = b"", None
        if method not in guard.SAFE_METHODS:
            if hostile("body"):
                payload, ctype = data.draw(body(spec, body_schema))
            elif body_schema is not None:
                value = data.draw(valid_for(spec, body_schema))
                if target and target.startswith("body:"):
                    field = target.removeprefix("body:")
                    props = _resolve(spec, body_schema).get("properties", {})
                    value[field] = data.draw(for_schema(spec, props.get(field)))
                payload, ctype = json.dumps(value).encode(), "application/json"
        if ctype:
            headers.append((b"content-type", ctype.encode()))
        if target is None and data.draw(st.integers(0, 9)) == 9:
            headers.append((b"origin", b"http://evil.example"))
        qs = "&".join(query)
        try:
            status = self.loop.run_until_complete(asgi_call(self.app, method, raw_path, qs, headers, payload))
            detail = ""
        except Exception as exc:  # escaped the application: as bad as a 5xx
            status, detail = -1, f"{type(exc).__name__}: {exc}"
        self.sent += 1
        if status >= 500 or status <= 0:
            self.failures.append(f"{method} {raw_path}?{qs[:300]} body={payload[:120]!r}: {status} {detail}")

    def run(self, method: str, path: str, op: dict, with_session: bool, target: str | None, n: int) -> None:
        @settings(
            max_examples=n, deadline=None, suppress_health_check=list(HealthCheck), derandomize=SCALE == 0,
            database=None,
        )  # fmt: skip
        @given(data=st.data())
        def case(data) -> None:
            self.one(data, method, path, op, with_session, target)

        case()

    def targets(self, method: str, op: dict) -> list[str]:
        out = [f"{p['in']}:{p['name']}" for p in op.get("parameters", [])]
        schema = (op.get("requestBody") or {}).get("content", {}).get("application/json", {}).get("schema")
        if method not in guard.SAFE_METHODS:
            out.append("body")
            out += [f"body:{f}" for f in _resolve(self.spec, schema or {}).get("properties", {})]
        return out


def test_no_input_gives_a_5xx_on_any_route(world) -> None:
    api, app, ids = world
    fuzzer = Fuzzer(api, app, ids)
    ops = operations(fuzzer.spec)
    assert len(ops) >= 45
    planned = 0
    try:
        for method, path, op in ops:
            fuzzer.run(method, path, op, False, None, EXAMPLES)  # no session: all hostile at once
            planned += EXAMPLES
            for target in fuzzer.targets(method, op) or [None]:  # a session: one hostile part at a time
                fuzzer.run(method, path, op, True, target, EXAMPLES)
                planned += EXAMPLES
    finally:
        fuzzer.loop.close()
    assert fuzzer.sent >= planned * 0.8  # (hypothesis stops early where a strategy has fewer values)
    failures = fuzzer.failures
    assert not failures, f"{len(failures)} of {fuzzer.sent} requests failed:\n" + "\n".join(failures[:40])


def _good(name: str, ids: dict[str, int]) -> list[Any]:
    """Real values for path parameters, so the fuzzing also reaches past the lookups."""
    return {
        "alarm_id": [ids["alarm_id"], 1],
        "incident_id": [ids["incident_id"]],
        "station_id": ["KITA-MP-01", "MINAMI-MP-01"],
        "point": ["wet_well_level_m"],
        "username": ["kita-op", "minami-op", "nobody"],
        "tenant": ["kita", "minami"],
        "token": ["x.y", "eyJuIjoxfQ.c2ln"],
    }.get(name, ["x"])
