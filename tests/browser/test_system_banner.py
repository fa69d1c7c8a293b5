"""The console's system banner and system view in a real browser (Debian's Chromium): a degraded part of
pumpwatch (here: the historian's set-up incomplete) shows to the centre's operator as a banner naming the
alarm, with a System view listing it; a municipality's operator sees only a neutral banner naming the part
(history storage), none of the detail; when the part recovers the banner goes."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
import uvicorn

from pumpwatch.api.main import create_app
from pumpwatch.app.serve import ApiServer
from pumpwatch.app.system import System
from pumpwatch.core.clock import FakeClock
from pumpwatch.core.config import load_fleet
from tests.auth import LONG_SESSIONS, PASSWORD, add_user
from tests.browser.conftest import ARTIFACTS
from tests.services import free_port
from tests.system.centre import SECRET, START, USERS, centre_fleet_dir

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

PROBLEM = "continuous aggregate sample_hourly: permission denied"


@dataclass
class Site:
    system: System
    url: str


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def site(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Site]:
    tmp = tmp_path_factory.mktemp("sysbanner")
    fleet = load_fleet(centre_fleet_dir(tmp))
    system = await System.prepare(fleet, f"sqlite:///{tmp / 'console.db'}", FakeClock(START), SECRET)
    await system.start_collecting(stations=[])  # the system's own parts only
    for name, grants in USERS.items():
        add_user(system.engine, name, grants)
    port = free_port()
    config = uvicorn.Config(
        create_app(system.api_context(auth=LONG_SESSIONS)),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=3,
    )
    server = ApiServer(config)
    serving = asyncio.create_task(server.serve(), name="test.uvicorn")
    try:
        t0 = time.monotonic()
        while not server.started:
            assert not serving.done() and time.monotonic() - t0 < 15, "uvicorn did not start"
            await asyncio.sleep(0.02)
        yield Site(system, f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(serving, 15)
        await system.stop()


async def set_problems(site: Site, problems: list[str]) -> None:
    site.system.historian_problems = problems
    assert site.system.monitor is not None and site.system.alarms is not None
    await site.system.monitor.check()
    await site.system.alarms.drain()


@contextlib.asynccontextmanager
async def signed_in(browser, site: Site, username: str):
    ctx = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    page = await ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        await page.goto(site.url + "/")
        await page.wait_for_selector("#login-dialog[open]", timeout=10_000)
        await page.select_option("#login-lang", "en")
        await page.fill("input[name=username]", username)
        await page.fill("input[name=password]", PASSWORD)
        await page.click("#login-form button[type=submit]")
        await page.wait_for_selector("#login-dialog", state="hidden", timeout=10_000)
        yield page
        assert errors == [], errors
    finally:
        await ctx.close()


async def test_the_centre_sees_the_alarm_a_municipality_only_the_part(browser, site: Site) -> None:
    await set_problems(site, [PROBLEM])
    async with signed_in(browser, site, "ctr-op") as page:
        banner = page.locator("#sysbanner")
        await banner.wait_for(state="visible", timeout=10_000)
        text = await banner.inner_text()
        assert "System degraded (1): history storage" in text
        assert "Historian set-up incomplete" in text and PROBLEM in text
        await page.screenshot(path=str(ARTIFACTS / "sys-01-centre-banner.png"))
        nav = page.locator("#nav-system")
        assert await nav.is_visible() and (await page.locator("#nav-system-count").inner_text()) == "1"
        await nav.click()
        await page.wait_for_selector("#sy-alarms table", timeout=10_000)
        row = await page.locator("#sy-alarms tbody tr").inner_text()
        assert "Historian set-up incomplete" in row and "system:historian" in row and "history storage" in row
        assert "Rejected input by source and reason" in await page.content()
        await page.screenshot(path=str(ARTIFACTS / "sys-02-system-view.png"), full_page=True)

    async with signed_in(browser, site, "kita-op") as page:
        banner = page.locator("#sysbanner")
        await banner.wait_for(state="visible", timeout=10_000)
        text = await banner.inner_text()
        assert "The monitoring centre reports a degraded part of the system: history storage" in text
        content = await page.content()
        assert PROBLEM not in content and "system:historian" not in content  # none of the detail
        assert not await page.locator("#nav-system").is_visible()
        await page.screenshot(path=str(ARTIFACTS / "sys-03-municipality-banner.png"))

    await set_problems(site, [])  # the part recovers
    async with signed_in(browser, site, "ctr-op") as page:
        await page.wait_for_function("() => window.__pumpwatch && window.__pumpwatch.user", timeout=10_000)
        await page.wait_for_timeout(1500)  # the banner's first answer has come
        assert not await page.locator("#sysbanner").is_visible()
