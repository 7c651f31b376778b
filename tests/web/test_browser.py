"""The console in a real browser: Debian's Chromium driven by Playwright (no browser download).

Logs in with a one-time link, watches the QR state turn into "connected", opens a customer,
pauses and resumes the agent, and sends a message as the business. Skipped only where
Chromium is absent and not in CI; in CI (CI=true) a missing browser fails the test.
With WABOT_SCREENSHOTS=docs/img it writes the guides' screenshots there (the dashboard and a
conversation on a phone, light and dark), so they show the console as it is.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest
import segno

from bot.gateway.memory import MemoryGateway
from bot.models import CustomerKey, Stage
from bot.web.auth import login_code
from tests.fakes.pipeline import START, pipeline
from tests.web.conftest import TOKEN

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ANA = "+5215512345678"


def _browser_or_skip() -> None:
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append("chromium (apt-get install chromium)")
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        missing.append("playwright (pip install playwright)")
    if missing:
        message = "the browser test needs " + " and ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(message + ": CI must run it")
        pytest.skip(message)


class LinkingGateway(MemoryGateway):
    """The in-memory gateway with the WhatsApp one's connection state: a QR, then connected."""

    def __init__(self, clock, state_dir: Path) -> None:
        super().__init__(clock)
        self.connected = asyncio.Event()
        self.connected_as: str | None = None
        self.status = "waiting for QR scan (see journalctl or the console)"
        self.qr_png_path = state_dir / "login-qr.png"
        self.pair_code = None
        segno.make("2@wabot-test-qr-code,not-a-real-one", error="L").save(
            str(self.qr_png_path), scale=6)

    @property
    def linking(self):
        return self  # links by QR from the console, as the WhatsApp Web gateway does

    def scanned(self) -> None:
        self.connected_as = "+5215500005678"
        self.status = "connected as +52155****5678"
        self.qr_png_path.unlink(missing_ok=True)
        self.connected.set()

    def went_offline(self) -> None:
        self.status = "offline: retrying in 30 s"
        self.connected.clear()


@pytest.fixture
def sqlite_only(db_url):
    if not db_url.startswith("sqlite"):
        pytest.skip("one backend is enough for the browser")


async def seed(p) -> None:
    script = [("Hola, ¿tienen la bolsa azul en tamaño mediano?",
               "¡Hola Ana! Sí, la bolsa azul mediana está disponible por $890. "
               "¿Te la aparto?"),
              ("Sí porfa, paso el sábado", "¡Listo! Queda apartada a tu nombre hasta el sábado.")]
    for said, answer in script:
        p._server.reply(answer)
        await p.say(ANA, said, push_name="Ana")
        await p.settle()
    for i, phone in enumerate(["+14155550123", "+5215598765432", "+34600111222"]):
        p._server.reply("¡Hola! ¿En qué te puedo ayudar?")
        await p.say(phone, "hola", push_name=["Bob", "Lupita", "Marta"][i])
        await p.settle()
    await p.app.unit.customers.set_stage(CustomerKey(p.settings.tenant, "+5215598765432"),
                                    Stage.CUSTOMER)


async def light_and_dark(page, path: Path) -> None:
    """The page as it is, then as a browser set to dark shows it (`NAME-dark.png`)."""
    await page.screenshot(path=str(path), full_page=True)
    await page.emulate_media(color_scheme="dark")
    await page.screenshot(path=str(path.with_name(f"{path.stem}-dark.png")), full_page=True)
    await page.emulate_media(color_scheme="light")


async def test_owner_logs_in_sees_the_qr_then_pauses_and_writes_as_the_business(
        sqlite_only, console_settings, openai_server, tmp_path):
    _browser_or_skip()
    from playwright.async_api import async_playwright, expect

    from bot.clock import VirtualClock

    clock = VirtualClock(START)
    console_settings.state_dir.mkdir(parents=True, exist_ok=True)
    gateway = LinkingGateway(clock, console_settings.state_dir)
    shots = ROOT / os.environ["WABOT_SCREENSHOTS"] if os.environ.get("WABOT_SCREENSHOTS") \
        else tmp_path
    async with pipeline(console_settings, clock=clock, gateway=gateway, serve_http=True) as p:
        p._server = openai_server
        await seed(p)
        base = p.app.web.url
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM,
                                               args=["--no-sandbox", "--disable-gpu"])
            try:
                page = await browser.new_page(viewport={"width": 1000, "height": 1300},
                                              color_scheme="light")
                await page.goto(f"{base}/login?code={login_code(TOKEN)}")
                status = page.get_by_test_id("connection-status")
                await expect(status).to_contain_text("waiting for QR scan")
                qr = page.get_by_alt_text("QR code to link WhatsApp")
                await expect(qr).to_be_visible()
                assert await qr.evaluate("img => img.naturalWidth") > 0  # the PNG loaded
                gateway.scanned()  # the page follows without a reload
                await expect(status).to_contain_text("connected as +52155****5678",
                                                     timeout=10_000)
                await expect(qr).to_have_count(0)
                await light_and_dark(page, shots / "console-dashboard.png")

                await page.get_by_role("link", name="Customers").click()
                await page.get_by_role("link", name="Ana").click()
                pause_state = page.get_by_test_id("pause-state")
                await expect(pause_state).to_contain_text("on: the agent answers")
                await page.get_by_role("button", name="Pause the agent").click()
                await expect(pause_state).to_contain_text("off: the agent is silent")
                await page.get_by_role("button", name="Resume the agent").click()
                await expect(pause_state).to_contain_text("on: the agent answers")
                typed = "Ana, soy Rosa: te guardo también el monedero azul 😊"
                box = page.get_by_label("Send as the business")
                await box.fill(typed)
                gateway.went_offline()  # a failed send changes nothing and says why
                await page.get_by_role("button", name="Send", exact=True).click()
                await expect(page.get_by_role("alert")).to_contain_text(
                    "Not sent: WhatsApp is not connected")
                await expect(box).to_have_value(typed)
                await expect(pause_state).to_contain_text("on: the agent answers")
                await page.screenshot(path=str(tmp_path / "console-not-sent.png"), full_page=True)
                gateway.scanned()
                await page.evaluate(  # how the form looks once submitted, kept over the load
                    "() => document.addEventListener('submit', () => {"
                    " const b = document.querySelector('form.send button');"
                    " sessionStorage.setItem('sending', JSON.stringify([b.textContent,"
                    " b.disabled])); })")
                await page.get_by_role("button", name="Send", exact=True).click()
                await expect(page.get_by_role("status")).to_contain_text("Sent as the business")
                assert await page.evaluate("() => JSON.parse(sessionStorage.getItem('sending'))"
                                           ) == ["Sending…", True]
                await expect(page.get_by_role("alert")).to_have_count(0)
                await expect(pause_state).to_contain_text("paused until")
                await page.set_viewport_size({"width": 420, "height": 900})  # a phone
                await light_and_dark(page, shots / "console-conversation-phone.png")
                await page.get_by_role("link", name="why did it say that?").first.click()
                await expect(page.get_by_role("heading", name="Why did it say that?")
                             ).to_be_visible()
            finally:
                await browser.close()
    assert p.texts_to(ANA)[-1] == "Ana, soy Rosa: te guardo también el monedero azul 😊"
