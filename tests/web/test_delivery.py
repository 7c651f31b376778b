"""The Cloud API's per-message statuses in the console, over real HTTP: Meta's status
callbacks (through the webhook on the console's server) show on the customer page and in
`GET /customers/{phone}/messages`; a message skipped outside the 24-hour window is a note."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.app import App
from bot.clock import VirtualClock
from bot.gateway.cloud.gateway import CloudGateway
from bot.models import CustomerKey
from bot.stores.outbound import OutboundStore
from bot.web import delivery
from tests.fakes import meta_webhooks as meta
from tests.fakes.graph_server import FakeGraph
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.pipeline import BUSINESS, START, make_settings
from tests.web.conftest import TOKEN
from tests.web.test_pages import HTML

WA = "5215512345678"
PHONE = "+" + WA
URL_PHONE = "%2B" + WA
T0 = START.timestamp()


class Served:
    def __init__(self, app: App, gateway: CloudGateway, clock: VirtualClock) -> None:
        self.app, self.gateway, self.clock = app, gateway, clock
        assert app.web is not None
        self.url = app.web.url
        self.api = httpx.AsyncClient(base_url=self.url, timeout=10,
                                     headers={"Authorization": f"Bearer {TOKEN}"})

    async def meta(self, payload: dict[str, Any]) -> None:
        async with httpx.AsyncClient(timeout=10) as c:
            assert (await meta.post(c, self.url + "/webhooks/whatsapp", payload)
                    ).status_code == 200

    async def settle(self) -> None:
        assert not await self.clock.wait(self.app.unit.inbox.tasks, 3600)
        await self.gateway.flush()

    async def lines(self) -> list[dict[str, Any]]:
        r = await self.api.get(f"/api/v1/customers/{URL_PHONE}/messages")
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()["items"]
        return items


@pytest.fixture
async def served(tmp_path: Path, openai_server: FakeOpenAI, graph_server: FakeGraph,
                 tenant: str) -> AsyncIterator[Served]:
    settings = make_settings(
        f"sqlite:///{tmp_path / 'wabot.db'}", tmp_path, openai_server, tenant,
        whatsapp={"transport": "cloud"},
        cloud={"phone_number_id": graph_server.phone_number_id,
               "access_token": graph_server.token, "app_secret": meta.APP_SECRET,
               "verify_token": meta.VERIFY_TOKEN, "graph_url": graph_server.graph_url},
        http={"port": 0, "api_token": TOKEN}, presenter={"enabled": False},
        inbox={"debounce_seconds": 0}, followups={"enabled": False},
        memory={"insights": False})
    clock = VirtualClock(START)
    gateway = CloudGateway(tenant, settings.cloud, clock)
    app = App(settings, gateway, clock=clock, business=BUSINESS, heartbeat=False,
              serve_http=True)
    await app.start()
    s = Served(app, gateway, clock)
    try:
        yield s
    finally:
        await s.settle()
        await s.api.aclose()
        await app.stop()


async def _wamids(s: Served) -> list[str]:
    return [e.wamid for e in await OutboundStore(s.app.unit.db, s.app.settings.tenant).recent()
            if e.status != "skipped"]


async def test_meta_statuses_show_per_agent_message_in_the_api_and_the_page(
        served: Served) -> None:
    s = served
    await s.meta(meta.text(WA, "hola", msg_id="wamid.IN1", at=T0))
    await s.settle()
    before = [line for line in await s.lines() if line["role"] == "agent"]
    assert [line["delivery"]["status"] for line in before] == ["accepted"]
    [first] = await _wamids(s)
    for state in ("sent", "read", "delivered"):  # out of order: never moves backwards
        await s.meta(meta.status(first, WA, state, at=T0 + 5))
    await s.clock.advance(60)
    await s.meta(meta.text(WA, "¿y en rojo?", msg_id="wamid.IN2", at=T0 + 60))
    await s.settle()
    second = next(w for w in await _wamids(s) if w != first)
    await s.meta(meta.status(second, WA, "failed", error=(131026, "Message undeliverable"),
                             at=T0 + 70))

    lines = await s.lines()
    assert [(line["role"], (line["delivery"] or {}).get("status")) for line in lines] == [
        ("customer", None), ("agent", "read"), ("customer", None), ("agent", "failed")]
    assert lines[3]["delivery"]["error"] == "131026: Message undeliverable"

    async with httpx.AsyncClient(base_url=s.url, headers=HTML, timeout=10) as b:
        await b.post("/login", data={"token": TOKEN})
        page = (await b.get(f"/customers/{URL_PHONE}")).text
    assert 'class="delivery read"' in page and "✓✓ read" in page
    assert 'class="delivery failed"' in page and "131026: Message undeliverable" in page


async def test_a_follow_up_skipped_outside_the_window_is_a_note(served: Served) -> None:
    s = served
    await s.meta(meta.text(WA, "hola", msg_id="wamid.IN1", at=T0))
    await s.settle()
    await s.clock.advance(25 * 3600)
    key = CustomerKey(s.app.settings.tenant, PHONE)
    assert await s.app.unit.chats.proactive(key, "ask about the blouse") is False
    await s.settle()

    lines = await s.lines()
    notes = [line for line in lines if line["kind"] == "skipped"]
    assert len(notes) == 1 and notes[0]["role"] == "note"
    assert "outside the 24-hour window" in notes[0]["text"]
    assert lines[-1] is notes[0]  # where it happened: after the first reply

    async with httpx.AsyncClient(base_url=s.url, headers=HTML, timeout=10) as b:
        await b.post("/login", data={"token": TOKEN})
        page = (await b.get(f"/customers/{URL_PHONE}")).text
    assert "message skipped" in page and "Not sent: outside the 24-hour window" in page


def test_a_line_with_no_known_send_carries_no_delivery() -> None:
    lines = [{"role": "agent", "at": START.isoformat(), "text": "hi", "kind": "chat"}]
    assert delivery.annotate(lines, [])[0]["delivery"] is None
