"""The console's views beyond the live ones, in a real browser (Debian's Chromium) against the whole stack,
in Japanese and in English: the network map (markers coloured by the server's status, discharge links,
power areas, an incident's stations highlighted), the incidents list and detail (phases, member stations on
a timeline, a note that moves the phase on), on-call now and next with an alarm's messages, the alarm KPIs
as charts, the system's health and the admin view (users, grants, audit log). Screenshots go to
var/screenshots/ (not committed)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from pumpwatch.api.auth import mfa
from pumpwatch.simulators.scenarios import power_outage
from tests.auth import add_user, totp_secret
from tests.browser.stack import Stack, running_stack
from tests.conftest import REPO

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

SHOTS = REPO / "var" / "screenshots"
OUT = ["KITA-MP-01", "KITA-MP-02", "KITA-MP-03"]  # kita-feeder-1: three stations lose mains → one incident


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path_factory.mktemp("views")) as s:
        for lang in ("ja", "en"):  # Kita's admin, also on the centre's staff (the system view)
            add_user(s.system.engine, f"chief-{lang}", [("kita", "admin"), ("centre", "operator")])
        s.sim.schedule(power_outage(OUT, at=s.clock.now()))
        await s.advance(120, step=10)
        s.live()
        yield s


async def sign_in(browser, stack: Stack, lang: str):  # type: ignore[no-untyped-def]
    SHOTS.mkdir(parents=True, exist_ok=True)
    ctx = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="ja-JP")
    page = await ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    page.errors = errors
    await page.goto(stack.url + "/")
    await page.wait_for_selector("#login-dialog[open]", timeout=10_000)
    await page.select_option("#login-lang", lang)
    await page.wait_for_function("l => document.documentElement.lang === l", arg=lang, timeout=5_000)
    name = f"chief-{lang}"
    await page.fill("input[name=username]", name)
    await page.fill("input[name=password]", stack.password)
    await page.click("#login-form button[type=submit]")
    await page.wait_for_selector("#mfa-form:not([hidden])", timeout=10_000)  # an admin gives a code
    await page.fill("#mfa-form input[name=code]", mfa.code_at(totp_secret(name), stack.clock.now()))
    await page.click("#mfa-form button[type=submit]")
    await page.wait_for_selector("#login-dialog", state="hidden", timeout=10_000)
    return ctx, page


async def goto(page, view: str) -> None:  # type: ignore[no-untyped-def]
    await page.evaluate("h => { location.hash = h; }", view)


async def shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


@pytest.mark.parametrize("lang", ["ja", "en"])
async def test_map_incidents_oncall_kpis_system_admin(browser, stack: Stack, lang: str) -> None:
    words = {"ja": ("地図", "事案", "当番", "管理"), "en": ("Map", "Incidents", "On call", "Admin")}[lang]
    async with await stack.client("centre") as api:
        (inc,) = (await api.get("/api/v1/incidents", params={"tenant": "kita"})).json()["data"]
        alarms = (await api.get("/api/v1/alarms", params={"station": "KITA-MP-01"})).json()["data"]
    pf = next(a for a in alarms if a["name"] == "power_failure")
    ctx, page = await sign_in(browser, stack, lang)
    try:
        views = ("map", "incidents", "oncall", "admin")
        nav = [await page.inner_text(f'#nav a[data-view="{v}"]') for v in views]
        assert nav == list(words)

        await page.wait_for_selector('.tile[data-station="KITA-MP-08"]', timeout=10_000)
        await shot(page, f"overview-{lang}")

        # Map: Kita's 8 stations, coloured by the status the server sent; 7 discharge links, 3 power areas.
        await goto(page, "#/map")
        await page.wait_for_selector('.mk[data-station="KITA-MP-08"]', timeout=10_000)
        assert await page.locator(".mk").count() == 8
        for sid in OUT:
            await page.wait_for_selector(f'.mk.st-power_failure[data-station="{sid}"]', timeout=10_000)
        server = await page.evaluate(
            "() => Object.fromEntries([...window.__pumpwatch.stations.values()].map(s => [s.id, s.status]))"
        )
        for sid, status in server.items():
            assert await page.get_attribute(f'.mk[data-station="{sid}"]', "data-status") == status
        assert await page.locator("path.mp-link").count() == 7
        assert await page.locator("path.mp-arrow").count() == 7  # which way each one runs
        assert await page.locator("path.mp-area").count() == 3
        assert "PUMPWATCH_MAP_TILES_URL" in await page.inner_text("#mp-tiles")  # the schematic, said so
        level = await page.inner_text('.mk[data-station="KITA-MP-05"] .mk-level')
        assert level.endswith(" m"), level
        await shot(page, f"map-{lang}")
        # the incident's stations highlighted
        await goto(page, f"#/map/{inc['id']}")
        await page.wait_for_function("() => document.querySelectorAll('.mk.hl').length === 3", timeout=10_000)
        lit = [await e.get_attribute("data-station") for e in await page.query_selector_all(".mk.hl")]
        assert sorted(lit) == OUT
        await shot(page, f"map-incident-{lang}")

        # Incidents: the list, then the detail with its phases, timeline and notes; a note moves it on.
        await goto(page, "#/incidents")
        await page.wait_for_selector(f'tr[data-incident="{inc["id"]}"]', timeout=10_000)
        await shot(page, f"incidents-{lang}")
        await page.click(f'tr[data-incident="{inc["id"]}"] a')
        await page.wait_for_selector(".tl-row", timeout=10_000)
        assert await page.locator(".tl-row").count() == 3
        before = await page.get_attribute("ol.phases li.now", "data-phase")
        options = await page.eval_on_selector_all(
            "#in-form select[name=phase] option", "os => os.map(o => o.value)"
        )
        after = options[1]  # the next phase
        await page.fill("#in-form textarea[name=text]", f"generators to 01-03 ({lang})")
        await page.select_option("#in-form select[name=phase]", after)
        await page.click("#in-form button[type=submit]")
        await page.wait_for_selector(f'ol.phases li.now[data-phase="{after}"]', timeout=10_000)
        assert f"generators to 01-03 ({lang})" in await page.inner_text("#in-notes")
        assert before != after
        await shot(page, f"incident-detail-{lang}")

        # On call: now and next per rotation; one alarm's messages.
        await goto(page, "#/oncall")
        await page.wait_for_selector('tr[data-rotation="kita-duty"]', timeout=10_000)
        assert await page.inner_text('tr[data-rotation="kita-duty"] .oc-now')
        assert await page.inner_text('tr[data-rotation="kita-duty"] .oc-next') not in ("", "–")
        await goto(page, f"#/oncall/{pf['id']}")
        await page.wait_for_function(
            "() => !document.querySelector('#oc-deliveries').textContent.includes('…')"
            " && document.querySelector('#oc-deliveries').textContent.trim().length > 0",
            timeout=10_000,
        )
        assert await page.input_value("#oc-alarm") == str(pf["id"])
        await shot(page, f"oncall-{lang}")

        # KPIs: the rate chart with its flood line, the bad actors (the three power failures among them).
        await goto(page, "#/kpis")
        await page.wait_for_selector("svg.chart.rate line.threshold", state="attached", timeout=10_000)
        assert await page.locator("svg.chart.rate rect").count() >= 1
        assert await page.locator('svg.chart.actors g[data-name="power_failure"]').count() == 3
        await shot(page, f"kpis-{lang}")

        # System health (the centre's staff): shards, historian, notifier, system alarms.
        await page.wait_for_selector('#nav a[data-view="system"]:not([hidden])', timeout=15_000)
        await goto(page, "#/system")
        await page.wait_for_function(
            "() => document.querySelector('#sy-notifier').textContent.trim().length > 0", timeout=10_000
        )
        assert await page.inner_text("#sy-shards")
        await shot(page, f"system-{lang}")

        # Admin: Kita's users with their grants, the audit log (the note just written among it).
        await goto(page, "#/admin")
        await page.wait_for_selector('tr[data-user="op-kita"]', timeout=10_000)
        assert await page.locator('tr[data-user="op-minami"]').count() == 0  # not a tenant this admin has
        await page.wait_for_selector('.audit-table tr[data-action="incident.note"]', timeout=10_000)
        await shot(page, f"admin-{lang}")
        assert not page.errors, page.errors
    except BaseException:
        await shot(page, f"failed-{lang}")  # what the page showed, beside the errors it logged
        print("page errors:", page.errors)
        raise
    finally:
        await ctx.close()
