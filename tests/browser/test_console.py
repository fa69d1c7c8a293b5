"""The operator console in a real browser (Debian's Chromium, headless) against the whole stack: the
simulated fleet on real Modbus TCP, collector, alarms, SQLite, the API on uvicorn.

An operator signs in, sees a station go to power failure when the simulator cuts its mains (within 2 s
of the sample), hears the critical alarm, acknowledges it and sees its state change, sees the dispatch
board re-rank when a station with a sooner overflow joins, sees plainly when the page loses its own
connection, and gets it back. Screenshots go to test-artifacts/browser/.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from pumpwatch.simulators.scenarios import power_outage
from tests.browser.conftest import ARTIFACTS
from tests.browser.sse import SseReader, tenants_in
from tests.browser.stack import Stack, running_stack

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path_factory.mktemp("console")) as s:
        s.live()
        yield s


async def new_page(browser, stack: Stack, **kw):
    ctx = await browser.new_context(**{"viewport": {"width": 1280, "height": 900}, "locale": "ja-JP", **kw})
    page = await ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # anything the Content-Security-Policy blocked is a bug of the page (api/headers.py)
    page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    page.errors = errors
    return ctx, page


async def login(page, stack: Stack, username: str, lang: str | None = None) -> None:
    await page.goto(stack.url + "/")
    await page.wait_for_selector("#login-dialog[open]", timeout=10_000)
    if lang is not None:  # chosen on the sign-in form: remembered, it wins over the user's locale
        await page.select_option("#login-lang", lang)
        await page.wait_for_function("l => document.documentElement.lang === l", arg=lang, timeout=5_000)
    if not (ARTIFACTS / "00-login.png").exists():
        await shot(page, "00-login", full=False)
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", stack.password)
    await page.click("#login-form button[type=submit]")
    await page.wait_for_selector("#login-dialog", state="hidden", timeout=10_000)


async def shot(page, name: str, full: bool = True) -> None:
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full)


def tto(stack: Stack, sid: str) -> float | None:
    s = stack.system.live.station(sid).get("tto_spill_min")
    return s.value if s is not None and s.value is not None else None


async def test_outage_ack_and_dispatch_reorder_in_the_browser(browser, stack: Stack) -> None:
    # Two Kita stations with clearly different times to overflow: the later one is cut first.
    ttos = {sid: tto(stack, sid) for sid in stack.system.fleet.stations if sid.startswith("KITA-")}
    known = sorted((v, k) for k, v in ttos.items() if v is not None and v < 1000)
    assert len(known) >= 2, f"no time-to-overflow estimates after warm-up: {ttos}"
    soon, late = known[0][1], known[-1][1]
    assert known[-1][0] - known[0][0] > 10, known

    ctx, page = await new_page(browser, stack)
    try:
        await login(page, stack, "kita-taro")
        await page.wait_for_selector(f'.tile[data-station="{late}"]', timeout=10_000)
        assert await page.locator(".tile").count() == 8  # Kita's stations only
        assert "MINAMI" not in await page.content()
        await page.wait_for_function("() => document.querySelector('#who').textContent.includes('北 太郎')")
        await page.wait_for_selector(f'.tile[data-station="{late}"][data-status="normal"]', timeout=10_000)
        await shot(page, "01-overview-ja")

        # The simulator cuts the mains of one station: the page shows it within 2 s of the sample.
        seen_sample: list[float] = []

        def on_samples(ids: set[str]) -> None:
            s = stack.system.live.station(late).get("mains_failed")
            if late in ids and s is not None and s.value and not seen_sample:
                seen_sample.append(time.monotonic())

        stack.system.live.listeners.append(on_samples)
        stack.sim.schedule(power_outage([late], at=stack.clock.now()))
        await page.wait_for_function(
            "sid => { const s = window.__pumpwatch.stations.get(sid);"
            " return s && s.values.mains_failed && s.values.mains_failed.value === true; }",
            arg=late,
            timeout=10_000,
            polling=50,
        )
        lag = time.monotonic() - seen_sample[0]
        stack.system.live.listeners.remove(on_samples)
        print(f"sample to browser: {lag:.3f} s")
        assert lag < 2.0, f"{lag:.2f} s from the sample to the browser"
        await page.wait_for_selector(
            f'.tile[data-station="{late}"][data-status="power_failure"]', timeout=10_000
        )
        # the critical alarm sounded (the cue is counted even where no speaker is)
        await page.wait_for_function("() => (window.__pumpwatchChimes || 0) >= 1", timeout=10_000)
        await shot(page, "02-overview-power-failure")

        # Alarms: unacknowledged first; acknowledge it and see its state change.
        await page.click('#nav a[data-view="alarms"]')
        row = f'tr[data-station="{late}"][data-name="power_failure"]'
        await page.wait_for_selector(f'{row}[data-state="unacked_active"]', timeout=10_000)
        first = page.locator(".alarms-table tbody tr").first
        assert await first.get_attribute("data-state") == "unacked_active"
        await shot(page, "03-alarms-unacked")
        await page.click(f'{row} button[data-act="ack"]')
        await page.wait_for_selector(f'{row}[data-state="acked_active"]', timeout=10_000)
        assert await page.locator(f'{row} button[data-act="ack"]').count() == 0
        await shot(page, "04-alarms-acked")
        async with httpx.AsyncClient(base_url=stack.url, cookies=await cookie_jar(ctx)) as client:
            # the page's own session cookie (HttpOnly) works for the API too
            alarms = (await client.get("/api/v1/alarms", params={"station": late})).json()["data"]
        pf = next(a for a in alarms if a["name"] == "power_failure")
        assert pf["state"] == "acked_active"
        assert pf["acked_by"] == "kita-taro"

        # Shelve it with a reason: it leaves the list for the shelved tab; unshelve brings it back.
        await page.click(f'{row} button[data-act="shelve"]')
        await page.wait_for_selector("#shelve-dialog[open]")
        await page.fill("#shelve-form textarea[name=reason]", "発電機手配済み (generator on its way)")
        await page.select_option("#shelve-form select[name=minutes]", "15")
        await shot(page, "04b-shelve-dialog", full=False)
        await page.click('#shelve-form button[type="submit"]')
        await page.wait_for_selector(row, state="detached", timeout=10_000)
        await page.click('#al-tabs button[data-tab="hidden"]')
        await page.wait_for_selector(f'{row} button[data-act="unshelve"]', timeout=10_000)
        assert "発電機手配済み" in await page.inner_text(row)
        await page.click(f'{row} button[data-act="unshelve"]')
        await page.wait_for_selector(row, state="detached", timeout=10_000)
        await page.click('#al-tabs button[data-tab="open"]')
        await page.wait_for_selector(f'{row}[data-state="acked_active"]', timeout=10_000)
        # the journal has who did what
        await page.click('#al-tabs button[data-tab="journal"]')
        await page.wait_for_selector(".journal-table", timeout=10_000)
        journal = await page.inner_text(".journal-table")
        assert "kita-taro" in journal
        assert "発電機手配済み" in journal
        assert journal.count("kita-taro") == 3  # acknowledged, shelved, unshelved
        await shot(page, "04c-journal")

        # Dispatch: the station is on the board; a station with a sooner overflow joins and goes first.
        await page.click('#nav a[data-view="dispatch"]')
        await page.wait_for_selector(f'tr[data-rank="1"][data-station="{late}"]', timeout=15_000)
        cell = page.locator(f'tr[data-station="{late}"] td.count-down')
        before = await cell.inner_text()
        await page.wait_for_timeout(1500)
        assert await cell.inner_text() != before, "the countdown runs between updates"
        await shot(page, "05-dispatch-one")
        stack.sim.schedule(power_outage([soon], at=stack.clock.now()))
        await page.wait_for_selector(f'tr[data-rank="1"][data-station="{soon}"]', timeout=15_000)
        await page.wait_for_selector(f'tr[data-rank="2"][data-station="{late}"]', timeout=5_000)
        await shot(page, "06-dispatch-reordered")

        # Station detail: mimic, trend, assets.
        await page.goto(f"{stack.url}/#/station/{late}")
        await page.wait_for_selector('#sd-status[data-status="power_failure"]', timeout=10_000)
        await page.wait_for_selector("#sd-chart polyline", timeout=10_000)
        assert await page.locator("#sd-assets tr[data-pump]").count() == 2
        await shot(page, "07-station-detail")

        # English, then the page loses its own connection: banner, everything greyed, then back.
        await page.select_option("#lang", "en")
        await page.click('#nav a[data-view="overview"]')
        await page.wait_for_selector(".tile", timeout=10_000)
        assert (await page.inner_text('#nav a[data-view="alarms"]')).startswith("Alarms")
        await page.route("**/api/v1/stream*", lambda route: route.abort())
        hub = stack.app.state.hub
        for sub in list(hub.subscribers):
            sub.dropped = True
            sub.ready.set()
        await page.wait_for_selector("#banner:not([hidden])", timeout=15_000)
        assert await page.evaluate("document.body.classList.contains('offline')")
        statuses = await page.locator(".tile").evaluate_all("els => els.map(e => e.dataset.status)")
        assert set(statuses) == {"stale"}, statuses
        await shot(page, "08-connection-lost-en")
        await page.unroute("**/api/v1/stream*")
        await page.wait_for_selector("#banner", state="hidden", timeout=20_000)
        await page.wait_for_selector(f'.tile[data-station="{late}"][data-status="power_failure"]')
        assert not page.errors, page.errors
    finally:
        await ctx.close()


async def test_phone_layout(browser, stack: Stack) -> None:
    ctx, page = await new_page(
        browser, stack, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    try:
        await login(page, stack, "op-kita", lang="en")
        assert await page.inner_text("#login-form button[type=submit]") == "Sign in"
        await page.wait_for_selector(".tile", timeout=10_000)
        assert (await page.inner_text('#nav a[data-view="overview"]')) == "Overview"
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the page scrolls sideways on a phone ({width} px)"
        await shot(page, "09-phone-overview", full=False)
        await page.click('#nav a[data-view="dispatch"]')
        await page.wait_for_selector("#dp-body", timeout=10_000)
        assert await page.evaluate("document.documentElement.scrollWidth") <= 390
        await shot(page, "10-phone-dispatch", full=False)
        assert not page.errors, page.errors
    finally:
        await ctx.close()


async def cookie_jar(ctx) -> httpx.Cookies:
    jar = httpx.Cookies()
    for c in await ctx.cookies():
        jar.set(c["name"], c["value"])
    return jar


async def test_tenant_a_never_sees_tenant_b_in_the_page_or_its_stream(browser, stack: Stack) -> None:
    stack.sim.schedule(power_outage(["MINAMI-MP-03"], at=stack.clock.now()))
    ctx, page = await new_page(browser, stack)
    try:
        await login(page, stack, "op-kita")
        await page.wait_for_selector(".tile", timeout=10_000)
        async with httpx.AsyncClient(
            base_url=stack.url, cookies=await cookie_jar(ctx), timeout=httpx.Timeout(10, read=None)
        ) as client:
            async with client.stream("GET", "/api/v1/stream") as r:
                assert r.status_code == 200
                s = SseReader(r)
                try:
                    events = await s.collect(4)
                finally:
                    await s.close()
            assert events and events[0].event == "snapshot"
            assert all(tenants_in(e) <= {"kita"} for e in events)
            assert (await client.get("/api/v1/console/stations/MINAMI-MP-03")).status_code == 404
        for view in ("overview", "alarms", "dispatch"):
            await page.click(f'#nav a[data-view="{view}"]')
            await page.wait_for_timeout(500)
            assert "MINAMI" not in await page.content(), view
        ids = await page.evaluate("[...window.__pumpwatch.stations.keys()]")
        assert ids and all(i.startswith("KITA-") for i in ids)
    finally:
        await ctx.close()
        stack.sim.set_mains(["MINAMI-MP-03"], ok=True)


async def test_a_viewer_sees_alarms_but_cannot_acknowledge(browser, stack: Stack) -> None:
    stack.sim.schedule(power_outage(["KITA-MP-06"], at=stack.clock.now()))
    ctx, page = await new_page(browser, stack, locale="en-GB")
    try:
        await login(page, stack, "view-kita")
        # the user's locale (ja) wins over the browser's: the role reads 閲覧者 (viewer)
        await page.wait_for_function("() => document.querySelector('#who').textContent.includes('閲覧者')")
        await page.click('#nav a[data-view="alarms"]')
        row = 'tr[data-station="KITA-MP-06"][data-name="power_failure"]'
        await page.wait_for_selector(row, timeout=15_000)
        assert await page.locator("button[data-act]").count() == 0
        await shot(page, "11-viewer-alarms")
        await page.click("#logout")
        await page.wait_for_selector("#login-dialog[open]", timeout=10_000)
    finally:
        await ctx.close()
        stack.sim.set_mains(["KITA-MP-06"], ok=True)


async def test_station_view_shows_which_safety_alarms_are_armed(browser, stack: Stack) -> None:
    """The station page lists its kind's safety functions (rules/safety.yaml) and what arms each, in the
    user's language; the demo fleet arms them all."""
    ctx, page = await new_page(browser, stack)
    try:
        await login(page, stack, "op-kita")
        await page.goto(f"{stack.url}/#/station/KITA-MP-01")
        await page.wait_for_selector('#sd-coverage tr[data-function="power_failure"]', timeout=10_000)
        rows = page.locator("#sd-coverage tr[data-function]")
        expected = len(stack.system.coverage.stations["KITA-MP-01"].functions)
        assert await rows.count() == expected
        assert set(await rows.evaluate_all("els => els.map(e => e.dataset.state)")) == {"armed"}
        pf = await page.inner_text('#sd-coverage tr[data-function="power_failure"]')
        assert "停電" in pf and "監視中" in pf and "mains_failed" in pf
        ftr = await page.inner_text('#sd-coverage tr[data-function="fails_to_run"][data-pump="2"]')
        assert "2号ポンプ" in ftr and "pump2_current_a" in ftr
        await shot(page, "12-station-coverage")
        await page.select_option("#lang", "en")
        await page.wait_for_function(
            "() => document.querySelector('#sd-coverage tr[data-function=\"power_failure\"]')"
            "?.textContent.includes('armed')"
        )
        assert "Mains power failure" in await page.inner_text(
            '#sd-coverage tr[data-function="power_failure"]'
        )
        assert not page.errors, page.errors
    finally:
        await ctx.close()


async def test_the_console_shows_the_servers_status(browser, stack: Stack) -> None:
    """The status word and colour on the page are the server's (alarms/status.py), with no copy of the
    rules in the page. A station in power failure whose telemetry then goes dead raises a comm-loss
    alarm suppressed by the power failure: the server (and so the page) keeps `power_failure`, with the
    suppressed alarm listed apart, while every value shows it is lost."""
    sid = "MINAMI-MP-01"
    ctrl = next(
        c.id for c in stack.system.fleet.modbus_controllers() if any(u.station == sid for u in c.units)
    )
    tile = f'.tile[data-station="{sid}"]'
    stack.sim.schedule(power_outage([sid], at=stack.clock.now()))
    ctx, page = await new_page(browser, stack)
    try:
        await login(page, stack, "centre")
        await page.wait_for_selector(f'{tile}[data-status="power_failure"]', timeout=15_000)
        await stack.sim.stop_controller(ctrl)
        async with await stack.client("centre") as client:
            t0 = time.monotonic()
            while True:  # the comm-loss alarm comes, suppressed by the power failure it is explained by
                alarms = (
                    await client.get("/api/v1/alarms", params={"station": sid, "view": "all_open"})
                ).json()
                cl = [a for a in alarms["data"] if a["name"] == "comm_loss" and a["active"]]
                if cl:
                    break
                assert time.monotonic() - t0 < 20, alarms
                await asyncio.sleep(0.2)
            assert cl[0]["suppressed_by"] == "power_failure" and cl[0]["hidden"]
            server = (await client.get(f"/api/v1/stations/{sid}")).json()
            assert (server["status"], server["suppressed_alarms"], server["live"]) == (
                "power_failure",
                ["comm_loss"],
                False,
            )
            # the page got the lost values, and still shows the server's word, the cause
            await page.wait_for_function(
                "sid => { const s = window.__pumpwatch.stations.get(sid);"
                " return s && s.suppressed_alarms.includes('comm_loss')"
                " && s.values.wet_well_level_m.quality === 'comm_loss'; }",
                arg=sid,
                timeout=10_000,
            )
            assert await page.get_attribute(tile, "data-status") == "power_failure"
            assert "stale" in (await page.get_attribute(tile, "class")).split()  # nothing of it is live
            assert await page.locator(f"{tile} .alarms .suppressed").count() == 1
            await shot(page, "12-power-failure-then-blind")
            # every tile says what the server says (statuses move while time runs: compare a few times)
            for _ in range(20):
                body = (await client.get("/api/v1/stations")).json()
                want = {s["id"]: s["status"] for s in body["data"]}
                got = await page.locator(".tile").evaluate_all(
                    "els => Object.fromEntries(els.map(e => [e.dataset.station, e.dataset.status]))"
                )
                if got == want:
                    break
                await asyncio.sleep(0.3)
            assert got == want
            # and the summary counts follow the server's ladder, as the snapshot sent it
            ladder = await page.evaluate("window.__pumpwatch.statusLadder")
            assert ladder[:3] == ["maintenance", "power_failure", "comm_loss"]
        assert not page.errors, page.errors
    finally:
        await ctx.close()
        await stack.sim.start_controller(ctrl)
        stack.sim.set_mains([sid], ok=True)


async def test_the_console_and_the_api_docs_run_under_the_strict_csp(browser, stack: Stack) -> None:
    """No inline script or style anywhere: the level bars get their geometry through the CSSOM, and
    Swagger UI (local, pinned files) renders the spec, fetched with the session cookie."""
    ctx, page = await new_page(browser, stack, locale="en-GB")
    try:
        response = await page.goto(stack.url + "/")
        assert "script-src 'self'" in response.headers["content-security-policy"]
        await login(page, stack, "centre")
        await page.wait_for_selector(".tile .lbar .fill", timeout=15_000)
        width = await page.eval_on_selector(".tile .lbar .fill", "e => e.style.width")
        assert width.endswith("%") and float(width[:-1]) > 0, width
        left = await page.eval_on_selector(".tile .lbar .mark", "e => getComputedStyle(e).left")
        assert left.endswith("px") and float(left[:-2]) > 0, left
        await page.goto(f"{stack.url}/#/station/KITA-MP-01")
        await page.wait_for_selector("#sd-legend i", timeout=15_000)
        assert await page.eval_on_selector("#sd-legend i", "e => e.style.background") != ""
        await page.goto(stack.url + "/docs")
        await page.wait_for_selector(".swagger-ui .opblock", timeout=20_000)
        assert await page.locator(".swagger-ui .opblock").count() >= 30
        await shot(page, "50-docs", full=False)
        assert not page.errors, page.errors
    finally:
        await ctx.close()
