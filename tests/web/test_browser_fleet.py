"""The fleet in a real browser: two numbers in one process, the fleet page and the number
switcher, on a desktop and on a phone (Debian's Chromium driven by Playwright).

Screenshots go to the test's folder, or to $WABOT_SCREENSHOTS_DIR when set (to look at).
"""

from __future__ import annotations

import os
from pathlib import Path

from bot.web.auth import login_code
from tests.fakes.pipeline import make_settings, pipeline
from tests.web.conftest import TOKEN
from tests.web.test_browser import CHROMIUM, _browser_or_skip, sqlite_only  # noqa: F401

ANA = "+5215512345678"
BOB = "+14155550123"


async def test_the_fleet_page_lists_both_numbers_and_the_switcher_scopes_every_page(
        sqlite_only, console_settings, db_url, openai_server, tmp_path, tenant):  # noqa: F811
    _browser_or_skip()
    from playwright.async_api import async_playwright, expect

    shots = Path(os.environ.get("WABOT_SCREENSHOTS_DIR") or tmp_path)
    second = make_settings(db_url, tmp_path / "second", openai_server, "shop-north",
                           presenter={"enabled": False}, inbox={"debounce_seconds": 0})
    async with pipeline(console_settings, serve_http=True) as home, \
            pipeline(second, clock=home.clock, shared=home.app.shared) as north:
        home.app.consoles.add(north.app.console, north.app.serving)
        openai_server.reply("¡Hola Ana! ¿En qué te ayudo?")
        await home.say(ANA, "Hola, ¿abren el domingo?", push_name="Ana")
        await home.settle()
        openai_server.reply("Hi Bob! Yes, the north shop opens at 9.")
        await north.say(BOB, "Hi, are you open on Sunday?", push_name="Bob")
        await north.settle()
        base = home.app.web.url
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM,
                                               args=["--no-sandbox", "--disable-gpu"])
            try:
                page = await browser.new_page(viewport={"width": 1100, "height": 800})
                await page.goto(f"{base}/login?code={login_code(TOKEN)}&next=/fleet")
                fleet = page.get_by_test_id("fleet")
                await expect(fleet.locator("tbody tr")).to_have_count(2)
                await expect(fleet.locator(f'tr[data-number="{tenant}"]')).to_contain_text(
                    "connected")
                north_row = fleet.locator('tr[data-number="shop-north"]')
                await expect(north_row).to_contain_text("1 in · 1 out")
                await expect(north_row).to_contain_text("this node")
                await page.screenshot(path=str(shots / "fleet-desktop.png"), full_page=True)

                # The switcher: the home's customers, then the same page of shop-north.
                await page.get_by_role("link", name="Customers").click()
                await expect(page.get_by_role("link", name="Ana")).to_be_visible()
                await page.get_by_label("Number").select_option("shop-north")
                await page.wait_for_url("**/n/shop-north/customers")
                await expect(page.get_by_role("link", name="Bob")).to_be_visible()
                await expect(page.get_by_role("link", name="Ana")).to_have_count(0)
                await expect(page.get_by_label("Number")).to_have_value("shop-north")
                await page.get_by_role("link", name="Bob").click()
                await expect(page.get_by_text("the north shop opens at 9")).to_be_visible()
                await page.screenshot(path=str(shots / "fleet-switched-desktop.png"),
                                      full_page=True)
                # The header's links stay on the chosen number.
                await page.get_by_role("link", name="Today").click()
                await page.wait_for_url("**/n/shop-north/")

                await page.set_viewport_size({"width": 390, "height": 844})  # a phone
                await page.goto(f"{base}/fleet")
                await expect(fleet.locator("tbody tr")).to_have_count(2)
                width = await page.evaluate("() => document.documentElement.scrollWidth")
                assert width <= 390, f"the fleet page is {width} px wide on a phone"
                await page.screenshot(path=str(shots / "fleet-phone.png"), full_page=True)
                await page.goto(f"{base}/n/shop-north/customers")
                await page.screenshot(path=str(shots / "fleet-switched-phone.png"),
                                      full_page=True)
            finally:
                await browser.close()
