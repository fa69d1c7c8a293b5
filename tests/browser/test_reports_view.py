"""The console's reports view in a real browser (Debian's Chromium): a municipality's operator picks a
day and a station, sees the hourly figures with the comm gap shaded as no data, and downloads the
workbook through the link the view builds (the session cookie, nothing else)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
import uvicorn
from openpyxl import load_workbook

from pumpwatch.api.main import create_app
from pumpwatch.app.serve import ApiServer
from pumpwatch.app.system import System
from pumpwatch.core.clock import FakeClock
from tests.auth import LONG_SESSIONS, add_user
from tests.browser.conftest import ARTIFACTS
from tests.browser.test_system_banner import Site, signed_in
from tests.reports.history import demo_fleet, simulate
from tests.services import free_port

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]
JST = ZoneInfo("Asia/Tokyo")
START = datetime(2026, 11, 3, tzinfo=JST)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def site(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Site]:
    tmp = tmp_path_factory.mktemp("reports")
    fleet = demo_fleet(tmp, 10)
    system = await System.prepare(
        fleet, f"sqlite:///{tmp / 'console.db'}", FakeClock(START + timedelta(days=2)), "s" * 64
    )
    add_user(system.engine, "kita-op", [("kita", "operator")])
    await asyncio.to_thread(
        simulate,
        system.engine,
        fleet,
        START,
        24,
        gap=(START + timedelta(hours=10), START + timedelta(hours=12)),
    )
    port = free_port()
    config = uvicorn.Config(
        create_app(system.api_context(auth=LONG_SESSIONS)), host="127.0.0.1", port=port, log_level="warning",
        lifespan="off", timeout_graceful_shutdown=3,
    )  # fmt: skip
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


async def test_pick_a_day_see_it_download_it(browser, site: Site) -> None:
    async with signed_in(browser, site, "kita-op") as page:
        await page.click("#nav a[data-view=reports]")
        await page.wait_for_selector("#rp-form", timeout=10_000)
        await page.wait_for_function(
            "() => document.querySelectorAll('#rp-station option').length > 1", timeout=10_000
        )
        await page.fill("#rp-period", "2026-11-03")
        await page.select_option("#rp-station", "KITA-MP-01")
        await page.select_option("#rp-locale", "ja")
        await page.click("#rp-show")
        await page.wait_for_selector("#rp-out .rp-table", timeout=20_000)
        text = await page.locator("#rp-out").inner_text()
        assert "北1丁目 (KITA-MP-01)" in text and "1号ポンプ 運転時間 (h)" in text and "合計" in text
        assert await page.locator("#rp-out tr.rp-no_data").count() == 2  # 10:00 and 11:00
        await page.screenshot(path=str(ARTIFACTS / "reports-01-day.png"), full_page=True)
        href = await page.locator("a.rp-dl[data-format=xlsx]").get_attribute("href")
        assert href.startswith("/api/v1/reports/kita?") and "station=KITA-MP-01" in href
        r = await page.request.get(site.url + href)
        assert r.status == 200 and "spreadsheetml" in r.headers["content-type"]
        wb = load_workbook(io.BytesIO(await r.body()))
        assert wb.sheetnames == ["総括", "KITA-MP-01"]
        # a bad period is answered precisely, where the operator looks
        await page.fill("#rp-period", "2026-11-31")
        await page.click("#rp-show")
        err = page.locator("#rp-error")
        await err.wait_for(state="visible", timeout=10_000)
        assert "422" in await err.inner_text()
