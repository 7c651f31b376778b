"""The alerts page in a real browser, at a phone's width: the unread badge in the menu, the
list, marking one read and then all (Chromium driven by Playwright, as test_browser)."""

from __future__ import annotations

from bot.web.auth import login_code
from tests.fakes.pipeline import pipeline
from tests.web.conftest import TOKEN
from tests.web.test_browser import CHROMIUM, _browser_or_skip, sqlite_only  # noqa: F401

ANA = "+5215512345678"


async def test_the_owner_reads_and_clears_alerts_on_a_phone(
        sqlite_only, console_settings, tmp_path):  # noqa: F811
    _browser_or_skip()
    from playwright.async_api import async_playwright, expect

    async with pipeline(console_settings, serve_http=True) as p:
        alerts = p.app.unit.alerts
        await alerts.alert("human_requested", f"{ANA} asks for a person: quiere un reembolso "
                           "del pastel de tres leches", ANA)
        await alerts.alert("daily_cap", f"{ANA} reached the daily limit of 20000 tokens: "
                           "their next messages wait until tomorrow", ANA)
        await alerts.alert("restarted_after_crash", "wabot restarted after a crash: the "
                           "previous run (pid 4242 on vps) stopped without shutting down")
        await alerts.drain()
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM,
                                               args=["--no-sandbox", "--disable-gpu"])
            try:
                page = await browser.new_page(viewport={"width": 390, "height": 844})
                await page.goto(f"{p.app.web.url}/login?code={login_code(TOKEN)}")
                badge = page.get_by_test_id("alerts-unread")
                await expect(badge).to_have_text("3")
                await page.get_by_role("link", name="Alerts").click()
                await expect(page.get_by_test_id("alert")).to_have_count(3)
                await expect(page.get_by_test_id("unread")).to_have_text("3 unread")
                await page.screenshot(path=str(tmp_path / "alerts-phone.png"), full_page=True)
                await page.get_by_role("button", name="Mark read").first.click()
                await expect(page.get_by_test_id("unread")).to_have_text("2 unread")
                await expect(badge).to_have_text("2")
                await page.get_by_role("button", name="Mark all read").click()
                await expect(page.get_by_test_id("unread")).to_have_text("0 unread")
                await expect(badge).to_have_count(0)
                await page.screenshot(path=str(tmp_path / "alerts-read.png"), full_page=True)
            finally:
                await browser.close()
    assert alerts.unread == 0
