""""Send as the business" with WhatsApp offline: the page hung 30 s, then showed a green
banner "Not sent: … cannot sending to +52155****2222", the typed text was gone, and the
agent was paused 12 h anyway; `POST /api/v1/messages` answered 502 and paused too. A failed
send now changes nothing: no pause, no owner line, no customer made; the page shows a red
error in plain words with the text kept, and an offline gateway fails at once."""

from __future__ import annotations

import asyncio
import re

import httpx

from bot.models import CustomerKey, Role
from tests.web.conftest import TOKEN, api, console_settings, served  # noqa: F401  (fixtures)

ANA = "+5215512345678"
ANA_URL = "%2B5215512345678"
NEW = "+5215599990000"


def offline(p) -> None:
    p.gateway.connected = asyncio.Event()  # a transport that is not connected
    p.gateway.status = "offline: retrying in 30 s"


async def state(p, phone: str = ANA):
    key = CustomerKey(p.settings.tenant, phone)
    customer = await p.app.unit.customers.get(key)
    lines = await p.app.unit.memory.recent(key, 50)
    return customer, [m for m in lines if m.role is Role.OWNER]


async def test_the_api_refuses_at_once_when_offline_and_pauses_nobody(served, api):  # noqa: F811
    await served.say(ANA, "is anyone there?")
    await served.settle()
    offline(served)
    before = len(served.gateway.sent)
    sent = await api.post("/api/v1/messages", json={"to": ANA, "text": "Hi Ana, it's Rosa"})
    assert sent.status_code == 502, sent.text
    error = sent.json()["error"]
    assert "not connected" in error and "offline: retrying in 30 s" in error
    assert "cannot sending" not in error
    assert len(served.gateway.sent) == before  # never reached the transport
    customer, owner_lines = await state(served)
    assert customer.paused_until is None and owner_lines == []
    to_new = await api.post("/api/v1/messages", json={"to": NEW, "text": "hola"})
    assert to_new.status_code == 502
    assert await served.app.unit.customers.get(CustomerKey(served.settings.tenant, NEW)) is None


async def test_a_send_whatsapp_refuses_restores_the_pause_it_found(served, api):  # noqa: F811
    await served.say(ANA, "is anyone there?")
    await served.settle()
    served.gateway.fail_sends = True  # connected, and WhatsApp refuses the message
    sent = await api.post("/api/v1/messages", json={"to": ANA, "text": "Hi Ana"})
    assert sent.status_code == 502
    assert "nothing was sent" in sent.json()["error"]
    customer, owner_lines = await state(served)
    assert customer.paused_until is None and owner_lines == []
    assert await served.app.unit.customers.get(CustomerKey(served.settings.tenant, NEW)) is None
    to_new = await api.post("/api/v1/messages", json={"to": NEW, "text": "hola"})
    assert to_new.status_code == 502
    assert await served.app.unit.customers.get(CustomerKey(served.settings.tenant, NEW)) is None


async def test_the_page_shows_a_red_error_keeps_the_text_and_does_not_pause(served):  # noqa: F811
    await served.say(ANA, "is anyone there?")
    await served.settle()
    offline(served)
    async with httpx.AsyncClient(base_url=served.app.web.url, headers={"Accept": "text/html"},
                                 timeout=10) as b:
        await b.post("/login", data={"token": TOKEN})
        page = (await b.get(f"/customers/{ANA_URL}")).text
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)
        typed = "Ana, soy Rosa: <te guardo> la bolsa"
        got = await b.post(f"/customers/{ANA_URL}/send", data={"csrf": csrf, "text": typed},
                           follow_redirects=True)
    assert got.status_code == 502
    error = re.search(r'<p class="error" role="alert"[^>]*>(.*?)</p>', got.text, re.S)
    assert error, "no red error on the page"
    assert "not sent" in error.group(1).lower() and "not connected" in error.group(1)
    assert 'class="notice"' not in got.text  # no green banner
    kept = re.search(r'<textarea id="send-text"[^>]*>(.*?)</textarea>', got.text, re.S)
    assert kept and kept.group(1) == "Ana, soy Rosa: &lt;te guardo&gt; la bolsa"
    assert 'data-testid="pause-state">on: the agent answers<' in got.text
    customer, owner_lines = await state(served)
    assert customer.paused_until is None and owner_lines == []
