"""CSRF, security headers and what the API shows about itself (issue 15, part 3).

Before: cookie-authenticated POSTs without a body (`/users/{u}/disable`, `/enable`, `/revoke-sessions`,
`/auth/logout`) were accepted from `Origin: http://evil.example`; no answer had a CSP, frame
protection, nosniff, Referrer-Policy or `Cache-Control: no-store`; `/docs` and `/redoc` loaded scripts
from a CDN; `/metrics` and `/openapi.json` were public.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from pumpwatch.api.exposure import SWAGGER_UI
from pumpwatch.api.headers import CSP
from pumpwatch.api.main import create_app
from pumpwatch.api.ops import create_ops_app
from pumpwatch.api.webconfig import WebConfig
from tests.auth import PASSWORD, next_code
from tests.security.conftest import Api, make_api

STATIC = Path(__file__).resolve().parents[2] / "api" / "static"
EVIL = "http://evil.example"
CSRF = {"X-Pumpwatch-CSRF": "1"}


@pytest.fixture
async def world(sqlite_url: str) -> AsyncIterator[tuple[Api, object]]:
    api, ctx = await make_api(sqlite_url)
    ctx.web = WebConfig(origins=frozenset({"https://scada.city.example"}), metrics_token="m-token-123")
    app = create_app(ctx)
    api.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    async with api.client:
        yield api, app
    api.engine.dispose()


@contextlib.asynccontextmanager
async def cookie_client(app, name: str = "kita-admin") -> AsyncIterator[httpx.AsyncClient]:
    """A browser's view: signed in with the session cookie only, no custom header of its own."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD})
        assert r.status_code == 200, r.text
        if r.json()["mfa"]["step"] == "verify":  # an admin's second factor, as the console gives it
            r = await c.post(
                "/api/v1/auth/mfa/verify",
                json={"code": next_code(c, name)},
                headers={"X-Pumpwatch-CSRF": "1"},
            )
            assert r.status_code == 200, r.text
        yield c


BODYLESS = [
    "/api/v1/users/kita-op/disable",
    "/api/v1/users/kita-op/enable",
    "/api/v1/users/kita-op/revoke-sessions",
]


async def test_cookie_changes_from_another_origin_are_refused(world) -> None:
    _api, app = world
    async with cookie_client(app) as c:
        for path in [*BODYLESS, "/api/v1/auth/logout"]:
            for headers in (
                {"Origin": EVIL},  # a form or fetch from another site
                {"Origin": EVIL, **CSRF},  # the header alone does not make it ours
                {"Referer": EVIL + "/page", **CSRF},
                {"Origin": "http://t:8080", **CSRF},  # same host, another port: same site, other origin
                {"Origin": "null", **CSRF},
                {},  # no custom header: not the console
            ):
                r = await c.post(path, headers=headers)
                assert r.status_code == 403, (path, headers, r.status_code, r.text)
        # what the console sends is accepted, and logout last (it ends the session)
        for path in [*BODYLESS, "/api/v1/auth/logout"]:
            r = await c.post(path, headers={"Origin": "http://t", **CSRF})
            assert r.status_code == 200, (path, r.text)


async def test_a_change_with_a_body_and_the_allowed_origins(world) -> None:
    api, app = world
    async with cookie_client(app, "boss") as c:
        r = await c.post("/api/v1/stations/KITA-MP-01/out-of-service", json={"reason": "pump swap"})
        assert r.status_code == 403 and "X-Pumpwatch-CSRF" in r.json()["detail"]
        r = await c.post(
            "/api/v1/stations/KITA-MP-01/out-of-service",
            json={"reason": "x"},
            headers={"Origin": EVIL, **CSRF},
        )
        assert r.status_code == 403 and "evil.example" in r.json()["detail"]
        # a listed public origin (a proxy that rewrites Host), or no Origin at all from a non-browser
        for headers in ({"Origin": "https://scada.city.example", **CSRF}, CSRF):
            r = await c.post(
                "/api/v1/stations/KITA-MP-01/out-of-service", json={"reason": "x"}, headers=headers
            )
            assert r.status_code == 200, (headers, r.text)
    # Bearer tokens are exempt: another site cannot make a browser send one
    t = await api.token("kita-admin")
    r = await api.client.post(BODYLESS[0], headers={"Authorization": f"Bearer {t}", "Origin": EVIL})
    assert r.status_code == 200, r.text


async def test_a_login_from_another_origin_is_refused(world) -> None:
    api, _app = world
    body = {"username": "kita-op", "password": PASSWORD}
    r = await api.client.post("/api/v1/auth/login", json=body, headers={"Origin": EVIL})
    assert r.status_code == 403 and "set-cookie" not in r.headers
    for headers in ({}, {"Origin": "http://t"}):
        r = await api.client.post("/api/v1/auth/login", json=body, headers=headers)
        assert r.status_code == 200, r.text


async def test_every_answer_carries_the_security_headers(world) -> None:
    api, _app = world
    t = await api.token("kita-admin")
    answers = {
        "console": await api.client.get("/"),
        "module": await api.client.get("/static/js/app.js"),
        "api": await api.client.get("/api/v1/stations", headers={"Authorization": f"Bearer {t}"}),
        "401": await api.client.get("/api/v1/stations"),
        "422": await api.client.get(
            "/api/v1/alarms/journal?end=0001-01-01T00:00:00Z", headers={"Authorization": f"Bearer {t}"}
        ),
        "404": await api.client.get("/no/such/page"),
    }
    for what, r in answers.items():
        h = r.headers
        assert h["content-security-policy"] == CSP, what
        assert h["x-frame-options"] == "DENY" and h["x-content-type-options"] == "nosniff", what
        assert h["referrer-policy"] == "same-origin", what
        assert "strict-transport-security" not in h, what  # plain http here
    for what in ("api", "401", "422"):
        assert answers[what].headers["cache-control"] == "no-store", what
    assert "frame-ancestors 'none'" in CSP and "'unsafe-inline'" not in CSP and "'unsafe-eval'" not in CSP
    async with httpx.AsyncClient(transport=api.client._transport, base_url="https://t") as tls:
        assert "max-age=" in (await tls.get("/healthz")).headers["strict-transport-security"]


def _no_inline(text: str, what: str) -> None:
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), f"inline script in {what}"
    assert not re.search(r"<style\b", text) and not re.search(r"\sstyle=", text), f"inline style in {what}"
    assert not re.search(r"\son[a-z]+=", text), f"inline handler in {what}"


async def test_the_console_has_no_inline_script_style_or_handler(world) -> None:
    """What the CSP would block, found before a browser does."""
    api, _app = world
    _no_inline((STATIC / "index.html").read_text(encoding="utf-8"), "index.html")
    _no_inline((await api.client.get("/api/v1/notify/ack/x.y")).text, "the ack page")
    for js in sorted((STATIC / "js").rglob("*.js")):
        text = js.read_text(encoding="utf-8")
        assert not re.search(r"\sstyle=", text), f"style attribute in {js.relative_to(STATIC)}"
        assert not re.search(r"\son[a-z]+=[\"'$]", text), f"inline handler in {js.relative_to(STATIC)}"
        assert "eval(" not in text and "new Function" not in text, js.name
        assert 'setAttribute("style"' not in text, js.name


async def test_docs_are_local_and_pinned_redoc_is_gone(world) -> None:
    api, _app = world
    r = await api.client.get("/docs")
    assert r.status_code == 200
    refs = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    assert refs and all(ref.startswith("/") for ref in refs), refs  # nothing from another host
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", r.text)
    folder = STATIC / SWAGGER_UI.removeprefix("/static/")
    sums = dict(reversed(line.split()) for line in (folder / "SHA256SUMS").read_text().splitlines())
    for ref in refs:
        if ref.startswith("/static/"):
            got = await api.client.get(ref)
            assert got.status_code == 200, ref
            name = ref.rsplit("/", 1)[1]
            if name in sums:
                assert hashlib.sha256(got.content).hexdigest() == sums[name], f"{name} is not the pinned file"
    assert set(sums) == {"swagger-ui-bundle.js", "swagger-ui.css"}
    for gone in ("/redoc", "/docs/oauth2-redirect"):
        assert (await api.client.get(gone)).status_code == 404


async def test_the_spec_needs_a_login(world) -> None:
    api, app = world
    assert (await api.client.get("/openapi.json")).status_code == 401
    t = await api.token("kita-view")
    r = await api.client.get("/openapi.json", headers={"Authorization": f"Bearer {t}"})
    assert r.status_code == 200 and "/api/v1/stations" in r.json()["paths"]
    async with cookie_client(app, "kita-view") as c:  # the docs page fetches it with the cookie
        assert (await c.get("/openapi.json")).status_code == 200


async def test_metrics_need_the_token_on_the_api_port(world, sqlite_url: str) -> None:
    api, _app = world
    assert (await api.client.get("/metrics")).status_code == 401
    for bad in ("Bearer wrong", "Basic bS10b2tlbi0xMjM=", "Bearer"):
        assert (await api.client.get("/metrics", headers={"Authorization": bad})).status_code == 401
    r = await api.client.get("/metrics", headers={"Authorization": "Bearer m-token-123"})
    assert r.status_code == 200 and "pumpwatch_api_rejected_requests_total" in r.text
    # without a token configured the API's port does not serve it at all, and says why
    _api2, ctx2 = await make_api(sqlite_url.replace(".db", "-2.db"))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(ctx2)), base_url="http://t"
    ) as c:
        r = await c.get("/metrics", headers={"Authorization": "Bearer anything"})
        assert r.status_code == 403 and "PUMPWATCH_METRICS_TOKEN" in r.json()["detail"]
    # a collector's probe port serves it to its orchestrator
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_ops_app(ctx2)), base_url="http://t"
    ) as c:
        assert (await c.get("/metrics")).status_code == 200
    _api2.engine.dispose()


async def test_refusals_are_counted_for_operators(world) -> None:
    api, app = world
    async with cookie_client(app) as c:
        await c.post(BODYLESS[0], headers={"Origin": EVIL})
    await api.client.get("/api/v1/notify/deliveries?alarm=1%00")
    await api.client.post(
        "/api/v1/auth/login", content=b'{"username": "\\ud800"}', headers={"Content-Type": "application/json"}
    )
    r = await api.client.get("/metrics", headers={"Authorization": "Bearer m-token-123"})
    for reason in ("csrf", "target", "validation"):
        assert f'pumpwatch_api_rejected_requests_total{{reason="{reason}"}} 1' in r.text, (
            reason,
            r.text[-600:],
        )
