"""Signing in with a second factor in a real browser (Debian's Chromium): an engineer whose role needs one
enrols from the console (a QR code made by the API, the code from the app, ten recovery codes shown once),
then signs in again in two steps. The authenticator app is pyotp on the stack's FakeClock."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pyotp
import pytest
import pytest_asyncio

from tests.auth import add_user
from tests.browser.conftest import ARTIFACTS
from tests.browser.stack import Stack, running_stack

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path_factory.mktemp("mfa"), warm_up_s=0) as s:
        add_user(s.system.engine, "eng-kita", [("kita", "engineer")], enrol=False)
        yield s


async def _password_step(page, stack: Stack) -> None:
    await page.wait_for_selector("#login-dialog[open]", timeout=10_000)
    await page.fill("#login-form input[name=username]", "eng-kita")
    await page.fill("#login-form input[name=password]", stack.password)
    await page.click("#login-form button[type=submit]")


async def test_enrol_from_the_console_then_sign_in_in_two_steps(browser, stack: Stack) -> None:
    ctx = await browser.new_context(viewport={"width": 420, "height": 900}, locale="ja-JP")
    page = await ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(f"{e}: {e.stack}"))
    try:
        await page.goto(stack.url + "/")
        await _password_step(page, stack)
        await page.wait_for_selector("#enrol-form:not([hidden])", timeout=10_000)
        assert "認証アプリ" in await page.inner_text("#enrol-form")
        await page.wait_for_function(
            "() => document.querySelector('#enrol-qr').naturalWidth > 100", timeout=10_000
        )
        await page.screenshot(path=str(ARTIFACTS / "mfa-01-enrol.png"))
        secret = (await page.inner_text("#enrol-secret")).replace(" ", "")
        await page.fill("#enrol-form input[name=code]", "000000")
        await page.click("#enrol-form button[type=submit]")
        await page.wait_for_selector("#enrol-error:not([hidden])", timeout=5_000)
        await page.fill("#enrol-form input[name=code]", pyotp.TOTP(secret).at(stack.clock.now()))
        await page.click("#enrol-form button[type=submit]")
        await page.wait_for_selector("#recovery-form:not([hidden])", timeout=10_000)
        codes = await page.locator("#recovery-codes li").all_inner_texts()
        assert len(codes) == 10 and all(len(c) == 19 for c in codes), codes
        await page.screenshot(path=str(ARTIFACTS / "mfa-02-recovery-codes.png"))
        await page.click("#recovery-form button[type=submit]")
        await page.wait_for_selector("#login-dialog", state="hidden", timeout=10_000)
        await page.wait_for_function("() => document.querySelector('#who').textContent.includes('eng-kita')")
        await page.wait_for_selector(".tile", timeout=10_000)  # the console is in use: kita's stations

        await page.click("#logout")
        stack.clock.advance(30)  # the next code: the one used to enrol is spent
        await _password_step(page, stack)
        await page.wait_for_selector("#mfa-form:not([hidden])", timeout=10_000)
        await page.screenshot(path=str(ARTIFACTS / "mfa-03-second-step.png"))
        await page.fill("#mfa-form input[name=code]", pyotp.TOTP(secret).at(stack.clock.now()))
        await page.click("#mfa-form button[type=submit]")
        await page.wait_for_selector("#login-dialog", state="hidden", timeout=10_000)
        await page.wait_for_function("() => document.querySelector('#who').textContent.includes('eng-kita')")
        assert errors == []
    finally:
        await ctx.close()
