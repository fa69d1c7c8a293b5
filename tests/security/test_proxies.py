"""Forwarded headers count only from the configured proxies (issue 15, part 2).

The API runs on a real uvicorn with the production server configuration; the "proxy" is a client
bound to 127.0.0.2 and the hostile client one bound to 127.0.0.1 (both loopback). Before, uvicorn
believed X-Forwarded-* from any loopback client: a forged address went into the audit log, rotated past
the per-address login throttle, and `X-Forwarded-Proto: https` earned the Secure cookie flag.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select

from pumpwatch.api.auth.config import AuthConfig
from pumpwatch.api.main import create_app
from pumpwatch.api.webconfig import WebConfig, web_config
from pumpwatch.core.db.schema_security import audit_log
from pumpwatch.core.settings import Settings
from tests.auth import PASSWORD
from tests.security.conftest import make_api
from tests.security.served import served

PROXY = "127.0.0.2"
CFG = AuthConfig(ip_max_failures=20, max_failures=10**6)  # the per-address throttle alone


async def _world(sqlite_url: str, trusted: tuple[str, ...]):
    api, ctx = await make_api(sqlite_url, CFG)
    ctx.web = WebConfig(trusted_proxies=tuple(ipaddress.ip_network(t) for t in trusted))
    return api, ctx


def client(url: str, source: str = "127.0.0.1") -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, transport=httpx.AsyncHTTPTransport(local_address=source))


def login_sources(engine) -> list[str | None]:
    with engine.connect() as conn:
        rows = conn.execute(select(audit_log.c.source_ip).where(audit_log.c.action == "login"))
        return [r.source_ip for r in rows]


FORGED = {
    "X-Forwarded-For": "203.0.113.7",
    "X-Forwarded-Proto": "https",
    "Forwarded": "for=198.51.100.9;proto=https",
}


@pytest.fixture
async def untrusting(sqlite_url: str) -> AsyncIterator[tuple]:
    api, ctx = await _world(sqlite_url, ())
    async with api.client, served(create_app(ctx)) as url:
        yield api, url
    api.engine.dispose()


@pytest.fixture
async def trusting(sqlite_url: str) -> AsyncIterator[tuple]:
    api, ctx = await _world(sqlite_url, (f"{PROXY}/32",))
    async with api.client, served(create_app(ctx)) as url:
        yield api, url
    api.engine.dispose()


async def test_forged_forwarded_headers_change_nothing_by_default(untrusting) -> None:
    api, url = untrusting
    for source in ("127.0.0.1", PROXY):  # no proxy is trusted unless configured, loopback neither
        async with client(url, source) as c:
            r = await c.post(
                "/api/v1/auth/login", json={"username": "centre", "password": PASSWORD}, headers=FORGED
            )
            assert r.status_code == 200, r.text
            assert "secure" not in r.headers["set-cookie"].lower()  # plain http, whatever the header says
    assert login_sources(api.engine) == ["127.0.0.1", PROXY]


async def test_a_rotating_forged_address_does_not_escape_the_login_throttle(untrusting) -> None:
    api, url = untrusting
    async with client(url) as c:
        codes = []
        for i in range(22):
            r = await c.post(
                "/api/v1/auth/login",
                json={"username": f"nobody{i}", "password": "wrong-password"},
                headers={"X-Forwarded-For": f"198.51.100.{i + 1}", "Forwarded": f"for=192.0.2.{i + 1}"},
            )
            codes.append(r.status_code)
    assert codes[:20] == [401] * 20 and codes[20:] == [429, 429], codes
    assert set(login_sources(api.engine)) == {"127.0.0.1"}


async def test_a_configured_proxy_is_believed_and_only_it(trusting) -> None:
    api, url = trusting
    body = {"username": "centre", "password": PASSWORD}
    async with client(url, PROXY) as proxy, client(url, "127.0.0.1") as direct:
        r = await proxy.post(
            "/api/v1/auth/login",
            json=body,
            headers={"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"},
        )
        assert r.status_code == 200 and "secure" in r.headers["set-cookie"].lower(), r.headers
        # RFC 7239 from the proxy, when it sends no X-Forwarded-*
        r = await proxy.post(
            "/api/v1/auth/login", json=body, headers={"Forwarded": 'for="198.51.100.9:4711";proto=https'}
        )
        assert r.status_code == 200 and "secure" in r.headers["set-cookie"].lower()
        # a client's own X-Forwarded-For passed on by the proxy: the proxy's appended entry counts
        r = await proxy.post(
            "/api/v1/auth/login", json=body, headers={"X-Forwarded-For": "6.6.6.6, 192.0.2.44"}
        )
        assert r.status_code == 200 and "secure" not in r.headers["set-cookie"].lower()
        # the same headers straight from a client that is no proxy
        r = await direct.post("/api/v1/auth/login", json=body, headers=FORGED)
        assert r.status_code == 200 and "secure" not in r.headers["set-cookie"].lower()
    assert login_sources(api.engine) == ["203.0.113.7", "198.51.100.9", "192.0.2.44", "127.0.0.1"]


async def test_behind_a_trusted_proxy_the_throttle_counts_each_real_client(trusting) -> None:
    api, url = trusting
    async with client(url, PROXY) as proxy:
        for i in range(22):  # 22 different people behind the proxy, one failure each: nobody throttled
            r = await proxy.post(
                "/api/v1/auth/login",
                json={"username": f"nobody{i}", "password": "wrong-password"},
                headers={"X-Forwarded-For": f"198.51.100.{i + 1}"},
            )
            assert r.status_code == 401, (i, r.status_code)


def test_the_setting_refuses_what_it_cannot_mean() -> None:
    assert web_config(Settings(trusted_proxies="")).trusted_proxies == ()
    got = web_config(Settings(trusted_proxies=" 127.0.0.1, 10.0.0.0/8 ,::1")).trusted_proxies
    assert [str(n) for n in got] == ["127.0.0.1/32", "10.0.0.0/8", "::1/128"]
    for bad, why in (("*", "every client"), ("10.0.0.1, proxy.local", "'proxy.local' is not an IP")):
        with pytest.raises(ValueError, match=why):
            web_config(Settings(trusted_proxies=bad))
    with pytest.raises(ValueError, match="needs PUMPWATCH_TRUSTED_PROXIES"):
        web_config(Settings(api_behind_tls_proxy=True))
    assert web_config(Settings(api_behind_tls_proxy=True, trusted_proxies="127.0.0.1")).trusted_proxies
    with pytest.raises(ValueError, match="not an origin"):
        web_config(Settings(api_origins="scada.city.jp"))
    assert web_config(Settings(api_origins="https://SCADA.city.jp:443")).origins == {"https://scada.city.jp"}
