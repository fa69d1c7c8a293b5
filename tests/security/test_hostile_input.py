"""Issue 15's findings, sent as a hostile client sends them: raw bytes and httpx against the API on a
real uvicorn on a loopback port. Each one gave a 500 (and a closed keep-alive connection), a 422 before
the 401, or an echo of the input before `api.inputs` / `api.gate`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from pumpwatch.api.auth import guard
from pumpwatch.api.context import ApiContext
from pumpwatch.api.main import create_app
from tests.security.conftest import ACK_SECRET, CONSOLE, Api, attach_notifier, fill, make_api
from tests.security.served import raw_exchange, served

EDGE_TIMES = ["0001-01-01T00:00:00+00:00", "9999-12-31T23:59:59-14:00"]
MORE_BAD_TIMES = ["2026-09-01T00:00:00", "2026-09-01T00:00:00+14:30", "1969-12-31T23:59:59Z"]
TIME_ROUTES = [
    "/api/v1/alarms/journal",
    "/api/v1/stations/KITA-MP-01/points/wet_well_level_m/history",
    "/api/v1/stations/KITA-MP-01/points/wet_well_level_m/export.csv",
    "/api/v1/kpis?tenant=kita",
    "/api/v1/audit",
]


@dataclass
class Served:
    api: Api
    ctx: ApiContext
    url: str
    ids: dict[str, int]

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    async def bearer(self, name: str = "boss") -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.api.token(name)}"}


@contextlib.asynccontextmanager
async def _served(url: str, tmp_path: Path) -> AsyncIterator[Served]:
    api, ctx = await make_api(url)
    ids = fill(api.engine, ctx.catalog)
    attach_notifier(api, ctx, tmp_path)
    app = create_app(ctx)

    @app.get("/test-only/boom", include_in_schema=False)
    async def boom() -> None:  # a bug somewhere in a handler
        raise RuntimeError("a bug")

    async with api.client, served(app) as base:
        yield Served(api, ctx, base, ids)
    api.engine.dispose()


@pytest.fixture
async def srv(db_url: str, tmp_path: Path) -> AsyncIterator[Served]:
    """Both databases: what reaches them differs (SQLite's 64-bit integers, PostgreSQL's int4, text)."""
    async with _served(db_url, tmp_path) as s:
        yield s


@pytest.fixture
async def srv1(sqlite_url: str, tmp_path: Path) -> AsyncIterator[Served]:
    """One database, for what is decided before any query."""
    async with _served(sqlite_url, tmp_path) as s:
        yield s


def _request(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _status(answer: bytes | None) -> int | None:
    return None if answer is None else int(answer.split(b" ", 2)[1])


async def test_a_lone_surrogate_in_the_login_is_a_422_and_the_connection_stays_open(srv: Served) -> None:
    body = rb'{"username":"\ud800","password":"x"}'
    hdr = {"Content-Type": "application/json"}
    login, health = await raw_exchange(
        srv.port, [_request("POST", "/api/v1/auth/login", body, hdr), _request("GET", "/healthz")]
    )
    assert _status(login) == 422, login
    detail = json.loads(login.split(b"\r\n\r\n", 1)[1])["detail"]  # type: ignore[union-attr]
    assert detail[0]["loc"] == ["body", "username"] and "surrogate" in detail[0]["msg"]
    assert _status(health) == 200, "the connection was closed after the answer"
    # in a key, nested, and on an authenticated route
    async with httpx.AsyncClient(base_url=srv.url, headers=await srv.bearer()) as c:
        aid = srv.ids["alarm_id"]
        for raw in (rb'{"comment":"ok","\udfff":1}', rb'{"comment":["\udc00"]}', rb'{"comment":"a\ud83d"}'):
            r = await c.post(f"/api/v1/alarms/{aid}/ack", content=raw, headers=hdr)
            assert r.status_code == 422, r.text


async def test_edge_datetimes_are_422_on_every_route_that_takes_one(srv: Served) -> None:
    async with httpx.AsyncClient(base_url=srv.url, headers=await srv.bearer()) as c:
        for route in TIME_ROUTES:
            sep = "&" if "?" in route else "?"
            for name in ("start", "end"):
                for t in EDGE_TIMES + MORE_BAD_TIMES:
                    r = await c.get(f"{route}{sep}{name}={quote(t)}")
                    assert r.status_code == 422, (route, name, t, r.status_code, r.text[:200])
                    assert r.json()["detail"][0]["loc"] == ["query", name]
        for t in EDGE_TIMES + MORE_BAD_TIMES:
            r = await c.post(
                "/api/v1/stations/KITA-MP-01/out-of-service", json={"reason": "pump swap", "until": t}
            )
            assert r.status_code == 422, (t, r.status_code, r.text[:200])
        # the edges of what is accepted are answered, not failed
        for t in ("1970-01-01T00:00:00Z", "8999-12-31T23:59:59-14:00", "2026-09-01T09:00:00+09:00"):
            for route in TIME_ROUTES:
                sep = "&" if "?" in route else "?"
                r = await c.get(f"{route}{sep}end={quote(t)}")
                assert r.status_code < 500, (route, t, r.status_code, r.text[:200])


async def test_integers_beyond_what_the_database_holds_are_422(srv: Served) -> None:
    async with httpx.AsyncClient(base_url=srv.url, headers=await srv.bearer()) as c:
        for n in (2**63, 2**63 - 1, 2**31, -(2**63) - 1, 0, 10**30):
            r = await c.get(f"/api/v1/notify/deliveries?alarm={n}")
            assert r.status_code == 422, (n, r.status_code, r.text[:200])
            for path in (f"/api/v1/alarms/{n}", f"/api/v1/incidents/{n}", f"/api/v1/notify/alarms/{n}"):
                r = await c.get(path)
                assert r.status_code == 422, (path, r.status_code)
        # in a JSON body: beyond 64 bits, or not finite
        for raw in (b'{"value": 1e400}', b'{"value": NaN}', b'{"value": 99999999999999999999999}'):
            r = await c.post(
                "/api/v1/stations/KITA-MP-01/points/wet_well_level_m/write-requests",
                content=raw,
                headers={"Content-Type": "application/json"},
            )
            assert r.status_code == 422, (raw, r.status_code, r.text[:200])


async def test_nul_characters_are_422_in_the_url_and_the_body(srv: Served) -> None:
    async with httpx.AsyncClient(base_url=srv.url, headers=await srv.bearer()) as c:
        for url in (
            "/api/v1/notify/deliveries?person=a%00b",
            "/api/v1/audit?action=%00",
            "/api/v1/alarms/journal?tenant=%00",
        ):
            r = await c.get(url)
            assert r.status_code == 422, (url, r.status_code, r.text[:200])
        r = await c.post("/api/v1/users/a%00b/disable")
        assert r.status_code == 422, r.text
        r = await c.post("/api/v1/stations/KITA-MP-01/out-of-service", json={"reason": "a\x00b"})
        assert r.status_code == 422, r.text


def _signed(payload: dict) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    sig = hmac.new(ACK_SECRET.encode(), b"pumpwatch-ack:" + raw, hashlib.sha256).digest()

    def b64(b: bytes) -> str:
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

    return f"{b64(raw)}.{b64(sig)}"


async def test_a_validly_signed_ack_token_out_of_bounds_is_refused_not_a_500(srv: Served) -> None:
    far = 4_000_000_000  # year 2096: not expired
    tokens = [
        _signed({"n": 1, "p": "duty1", "e": 10**20}),
        _signed({"n": 2**70, "p": "duty1", "e": far}),
        _signed({"n": 2**63, "p": "duty1", "e": far}),
        _signed({"n": -5, "p": "duty1", "e": -(10**20)}),
        _signed({"n": True, "p": "duty1", "e": far}),
        _signed({"n": 1, "p": ["duty1"], "e": far}),
        _signed({"n": 1, "p": "duty1", "e": 1.5e300}),
    ]
    async with httpx.AsyncClient(base_url=srv.url) as c:
        for tok in tokens:
            for method in ("GET", "POST"):
                r = await c.request(method, f"/api/v1/notify/ack/{tok}")
                assert r.status_code == 403, (method, tok, r.status_code, r.text[:200])
                assert "Link not valid" in r.text


async def test_a_body_over_1_mib_is_refused_before_it_is_read(srv1: Served) -> None:
    big = b'{"username": "' + b"a" * (10 * 2**20) + b'", "password": "x"}'
    async with httpx.AsyncClient(base_url=srv1.url, timeout=30) as c:
        r = await c.post("/api/v1/auth/login", content=big, headers={"Content-Type": "application/json"})
        assert r.status_code == 413, r.status_code
        assert len(r.content) < 1000 and b"aaaa" not in r.content

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while it arrives
            for i in range(0, len(big), 2**16):
                yield big[i : i + 2**16]

        r = await c.post("/api/v1/auth/login", content=chunks(), headers={"Content-Type": "application/json"})
        assert r.status_code == 413, r.status_code
        # an authenticated route: the body limit holds there too
        auth = await srv1.bearer()
        r = await c.post(
            f"/api/v1/alarms/{srv1.ids['alarm_id']}/ack",
            content=b'{"comment": "' + b"c" * (2 * 2**20) + b'"}',
            headers={**auth, "Content-Type": "application/json"},
        )
        assert r.status_code == 413, r.status_code
        # a body just under the limit is read and judged (too long a name: 422, without its text)
        ok = b'{"username": "' + b"b" * (2**20 - 100) + b'", "password": "x"}'
        r = await c.post("/api/v1/auth/login", content=ok, headers={"Content-Type": "application/json"})
        assert r.status_code == 422 and len(r.content) < 2000 and b"bbbb" not in r.content, r.status_code


async def test_422_answers_never_echo_passwords_or_tokens(srv1: Served) -> None:
    secret_like = "Tr0ub4dor&3-" + "x" * 1100  # over the 1024 limit
    async with httpx.AsyncClient(base_url=srv1.url) as c:
        r = await c.post("/api/v1/auth/login", json={"username": "boss", "password": secret_like})
        assert r.status_code == 422 and "Tr0ub4dor" not in r.text, r.text[:300]
        r = await c.post("/api/v1/auth/login", json={"username": 12345, "password": {"pw": "hunter2-secret"}})
        assert r.status_code == 422 and "hunter2" not in r.text, r.text[:300]
        c.headers.update(await srv1.bearer())
        r = await c.post(
            "/api/v1/users",
            json={
                "username": "neu",
                "password": "short-pw",
                "grants": [{"tenant": "kita", "role": "viewer"}],
            },
        )
        assert r.status_code == 422 and "short-pw" not in r.text, r.text[:300]
        r = await c.post("/api/v1/auth/password", json={"current_password": "", "new_password": "tiny-pw"})
        assert r.status_code == 422 and "tiny-pw" not in r.text, r.text[:300]
        r = await c.post(
            "/api/v1/stations/KITA-MP-01/points/wet_well_level_m/writes",
            json={"value": "x", "confirmation": "c" * 500},
        )
        assert r.status_code == 422 and "ccccc" not in r.text, r.text[:300]


def _mutating_routes(app) -> list[tuple[str, str]]:
    out = []
    for path, ops in app.openapi()["paths"].items():
        for method in ops:
            m = method.upper()
            if m not in guard.SAFE_METHODS and not guard.is_public(m, path):
                out.append((m, path))
    return out


def _fill(path: str, alarm_id: int) -> str:
    return (
        path.replace("{alarm_id}", str(alarm_id))
        .replace("{incident_id}", "1")
        .replace("{station_id}", "KITA-MP-01")
        .replace("{point}", "wet_well_level_m")
        .replace("{username}", "kita-op")
        .replace("{tenant}", "kita")
    )


async def test_without_a_session_every_change_is_401_before_its_body_is_read(srv1: Served) -> None:
    routes = _mutating_routes(create_app(srv1.ctx))
    assert len(routes) >= 18
    wrong: list[str] = []
    async with httpx.AsyncClient(base_url=srv1.url) as c:
        for method, path in routes:
            url = _fill(path, srv1.ids["alarm_id"])
            for auth in (
                {},
                {"Authorization": "Bearer not-a-session"},
                {"Cookie": "pumpwatch_session=forged"},
            ):
                for body, ctype in (
                    (b'{"broken', "application/json"),
                    (b"\xff\xfe", "text/plain"),
                    (b"", None),
                ):
                    headers = {**auth, **CONSOLE, **({"Content-Type": ctype} if ctype else {})}
                    r = await c.request(method, url, content=body, headers=headers)
                    if r.status_code != 401:
                        wrong.append(
                            f"{method} {path} {auth or 'no credentials'} {body[:8]!r}: {r.status_code}"
                        )
    assert not wrong, "\n".join(wrong)


async def test_a_500_is_answered_and_the_connection_stays_open(srv1: Served) -> None:
    boom, health = await raw_exchange(
        srv1.port, [_request("GET", "/test-only/boom"), _request("GET", "/healthz")]
    )
    assert _status(boom) == 500 and b"internal error" in boom  # type: ignore[operator]
    assert b"a bug" not in boom  # type: ignore[operator]
    assert _status(health) == 200, "the server closed the keep-alive connection after its 500"
    assert srv1.ctx.request_rejections["internal_error"] == 1
