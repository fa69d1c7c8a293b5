"""A drill end to end in the browser (issue 18), in Japanese and English: a trainer starts the feeder drill
from the console, every view shows the DRILL banner, the alarms it raises are marked, a portable generator
is sent from the dispatch board, arrives and runs before the station would spill (it leaves the board),
the trainer stops the drill from the banner, and the report says the generator came in time.

The stack is the browser tests' (tests/browser/stack.py) on the fleet `make demo` runs, with the drill
engine, the mobile resources and an hour of simulated history (the forecasters know the inflow)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio

from pumpwatch.api.main import create_app
from pumpwatch.app.backfill import continue_live, simulate_into
from pumpwatch.app.drills import DrillRunner
from pumpwatch.app.serve import ApiServer, api_server_config
from pumpwatch.app.system import System
from pumpwatch.core.clock import FakeClock
from pumpwatch.core.config import load_fleet
from pumpwatch.simulators.fleet import SimulatedFleet
from tests.auth import LONG_SESSIONS, add_user
from tests.browser.conftest import ARTIFACTS
from tests.browser.stack import START, Stack
from tests.drills import FULL_DEMO
from tests.services import free_port
from tests.simulators import on_free_ports

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

SCENARIO = """name: feeder-night
title: Feeder 1 night drill
tenant: kita
drill_contacts: [sato]
events:
  - {at: 5s, label: strike, power_outage: {area: kita-feeder-1, duration: 40m}}
duration: 50m
"""


class DrillStack(Stack):
    runner: DrillRunner

    async def step(self, seconds: float) -> None:
        await super().step(seconds)
        await self.runner.tick()


@contextlib.asynccontextmanager
async def drill_stack(tmp: Path) -> AsyncIterator[DrillStack]:
    fleet = on_free_ports(load_fleet(FULL_DEMO))
    clock = FakeClock(START)
    async with SimulatedFleet(fleet, clock, seed=5) as sim:
        system = await System.prepare(fleet, f"sqlite:///{tmp / 'drills.db'}", clock)
        models = simulate_into(
            fleet,
            system.engine,
            system.catalog,
            start=START - timedelta(hours=1),
            end=START,
            every_s=60,
            analyzers=system.analyzers,
            seed=5,
        )
        continue_live(sim, models)
        await system.start_collecting()
        system.drills = DrillRunner(sim, clock, system.engine, fleet)
        add_user(system.engine, "trainer", [("kita", "trainer")])
        app = create_app(system.api_context(auth=LONG_SESSIONS))
        port = free_port()
        server = ApiServer(api_server_config(app, "127.0.0.1", port, timeout_graceful_shutdown=3))
        serving = asyncio.create_task(server.serve(), name="test.uvicorn")
        stack = DrillStack(sim, system, clock, app, f"http://127.0.0.1:{port}")
        stack.runner = system.drills
        try:
            t0 = time.monotonic()
            while not server.started:
                if serving.done() or time.monotonic() - t0 > 15:
                    raise AssertionError(f"uvicorn did not start: {serving}")
                await asyncio.sleep(0.02)
            await stack.advance(20, step=2.0)
            yield stack
        finally:
            await stack.pause()
            server.should_exit = True
            try:
                await asyncio.wait_for(serving, 15)
            except TimeoutError:
                serving.cancel()
            await system.stop()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DrillStack]:
    async with drill_stack(tmp_path_factory.mktemp("drills")) as s:
        s.live(step=2.0, every=0.2)
        yield s


async def shot(page, name: str) -> None:
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def test_a_drill_in_the_browser_in_japanese_and_english(browser, stack: DrillStack) -> None:
    ctx = await browser.new_context(viewport={"width": 1400, "height": 1000}, locale="ja-JP")
    page = await ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: asyncio.ensure_future(d.accept()))
    try:
        await page.goto(stack.url + "/")
        await page.wait_for_selector("#login-dialog[open]", timeout=10_000)
        await page.fill("input[name=username]", "trainer")
        await page.fill("input[name=password]", stack.password)
        await page.click("#login-form button[type=submit]")
        await page.wait_for_selector("#login-dialog", state="hidden", timeout=10_000)
        assert await page.is_hidden("#drillbanner")
        # the trainer starts the drill from the console
        await page.goto(stack.url + "/#/drills")
        await page.wait_for_selector("#dr-text", timeout=10_000)
        await page.fill("#dr-text", SCENARIO)
        await page.click("#dr-start")
        await page.wait_for_selector("#drillbanner:not([hidden]) .drill-line", timeout=10_000)
        assert "訓練中" in await page.inner_text("#drillbanner")
        await page.wait_for_selector("#dr-summary", timeout=10_000)
        await shot(page, "20-drill-started-ja")
        # its alarms are marked, and the banner stays on every view
        await page.goto(stack.url + "/#/alarms")
        await page.wait_for_selector("tr[data-station='KITA-MP-03'] .badge.drill", timeout=20_000)
        assert "訓練" in await page.inner_text("tr[data-station='KITA-MP-03'] .badge.drill")
        assert await page.is_visible("#drillbanner")
        await shot(page, "21-drill-alarms-ja")
        # a portable generator to 北3丁目 from the dispatch board
        await page.goto(stack.url + "/#/dispatch")
        row = "tr[data-station='KITA-MP-03']"
        await page.wait_for_selector(f"{row} .res-pick", timeout=20_000)
        await page.select_option(f"{row} .res-pick", "kita-gen-2")
        await page.click(f"{row} .res-assign")
        await page.wait_for_selector(f"{row} .res[data-resource='kita-gen-2']", timeout=10_000)
        assert "移動中" in await page.inner_text(f"{row} .res")
        late = await page.get_attribute(f"{row} .res", "class")
        board = next(e for e in (await (await stack.client("trainer")).get("/api/v1/dispatch")).json()["data"]
                     if e["station"] == "KITA-MP-03")  # fmt: skip
        assert ("late" in late.split()) is board["resources"][0]["late"]
        await shot(page, "22-dispatch-generator-sent-ja")
        # in English: the same banner and marks
        await page.select_option("#lang", "en")
        await page.wait_for_function("() => document.documentElement.lang === 'en'", timeout=5_000)
        await page.wait_for_selector(f"{row} .res-next[data-state='on_site']", timeout=10_000)
        assert "DRILL" in await page.inner_text("#drillbanner")
        assert "on the way" in await page.inner_text(f"{row} .res")
        await page.click(f"{row} .res-next[data-state='on_site']")
        await page.wait_for_selector(f"{row} .res-next[data-state='running']", timeout=10_000)
        stack.sim.stations["KITA-MP-03"].set_level(1.0)  # the wet well is high: the pumps start on power
        await page.click(f"{row} .res-next[data-state='running']")
        await page.wait_for_selector(row, state="detached", timeout=20_000)  # it pumps: off the board
        await shot(page, "23-dispatch-generator-running-en")
        await page.goto(stack.url + "/#/alarms")
        await page.wait_for_selector(".badge.drill", timeout=10_000)
        assert "DRILL" in await page.inner_text(".badge.drill")
        # the trainer stops it from the banner; the report says the generator came before the spill
        did = await page.get_attribute("#drillbanner .drill-line", "data-drill")
        await page.click("#drillbanner .drill-stop")
        await page.wait_for_selector("#drillbanner", state="hidden", timeout=10_000)
        await page.goto(stack.url + f"/#/drills/{did}")
        await page.wait_for_selector("#dr-dispatch tr[data-verdict]", timeout=10_000)
        assert await page.get_attribute("#dr-dispatch tbody tr", "data-verdict") == "in_time"
        assert "before the spill" in await page.inner_text("#dr-dispatch")
        assert await page.locator("#dr-alarms tbody tr").count() >= 3
        assert "Drill report" in await page.inner_text("h2")
        await shot(page, "24-drill-report-en")
        await page.select_option("#lang", "ja")
        await page.wait_for_function("() => document.documentElement.lang === 'ja'", timeout=5_000)
        await page.wait_for_selector("#dr-dispatch tr[data-verdict]", timeout=10_000)
        assert "訓練報告" in await page.inner_text("h2") and "溢水前に到着" in await page.inner_text(
            "#dr-dispatch"
        )
        await shot(page, "25-drill-report-ja")
        assert errors == []
    finally:
        await ctx.close()
