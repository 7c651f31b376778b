"""A shop of 2,000 products and 30 documents, driven through the whole pipeline with the fake
OpenAI-wire server: the prompt stays in budget, the price and the policy come from the search
tool, and a product's picture goes out through the gateway and into the history."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.agents.prompt import prompt_tokens
from bot.app import App
from bot.business import Business
from bot.clock import VirtualClock
from bot.gateway.memory import MemoryGateway
from bot.models import CustomerKey, InboundMessage
from tests.fakes.openai_server import FakeOpenAI, Reply
from tests.fakes.pipeline import START, make_settings
from tests.knowledge.data import PNG_1PX, TARGET, documents, products

CUSTOMER = "+5215511112222"


@dataclass
class Shop:
    app: App
    clock: VirtualClock
    gateway: MemoryGateway
    server: FakeOpenAI
    n: int = 0

    async def ask(self, phone: str, text: str) -> list[str]:
        self.n += 1
        chat = self.gateway.chat_for(phone)
        await self.app.unit.inbox.feed(InboundMessage(
            tenant=self.app.settings.tenant, phone=phone, msg_id=f"K{self.n:04d}",
            timestamp=self.clock.now(), text=text, chat=chat))
        pending = await self.clock.wait(self.app.unit.inbox.tasks, 3600)
        assert not pending
        return self.gateway.texts(chat)


def answer_from_tool(body: dict[str, Any]) -> Reply | str:
    """The model after a tool result: quote the first result's facts."""
    last = body["messages"][-1]
    if last["role"] != "tool":
        return "¿En qué te ayudo?"
    result = json.loads(last["content"])
    if "results" not in result:
        return "Listo: " + last["content"]
    top = result["results"][0]
    if top["type"] == "product":
        return f"{top['name']}: {top['price']:g} {top['currency']} ({top['availability']})"
    return f"Según {top['source']} ({top['section']}): {top['text']}"


@pytest.fixture
async def shop(db_url: str, tmp_path: Path, tenant: str,
               openai_server: FakeOpenAI) -> AsyncIterator[Shop]:
    folder = tmp_path / "kb"
    documents(folder, 30)
    (folder / "pictures").mkdir()
    (folder / "pictures" / "mochila.png").write_bytes(PNG_1PX)
    settings = make_settings(db_url, tmp_path, openai_server, tenant,
                             knowledge={"dir": str(folder)}, memory={"insights": False})
    business = Business(name="Tienda Norte", timezone="America/Mexico_City",
                        products=products(2000))
    clock = VirtualClock(START)
    gateway = MemoryGateway(clock)
    app = App(settings, gateway, clock=clock, business=business, heartbeat=False)
    openai_server.responder = answer_from_tool
    await app.start()
    assert app.unit.library is not None
    report = await app.unit.library.sync()  # waits for the start-up sync, then finds nothing new
    assert report.errors == []
    try:
        yield Shop(app, clock, gateway, openai_server)
    finally:
        await app.unit.library.index.forget_tenant(tenant)
        await app.stop()


async def test_paraphrase_reaches_the_product_price_through_the_tool_within_budget(
        shop: Shop) -> None:
    shop.server.tool_call("search_knowledge",
                          {"query": "mochilas impermeables de senderismo color ambar"})
    texts = await shop.ask(CUSTOMER, "¿tienen mochilas para senderismo que no se mojen, ámbar?")
    assert texts == ["Mochila Impermeable Senderismo Ámbar: 899.5 MXN (4 in stock)"]
    first = shop.server.chat_requests()[0]
    system = first["messages"][0]["content"]
    assert TARGET.name not in system  # not featured: the price came from the search
    shown = [line for line in system.splitlines() if line.startswith("- ") and " MXN" in line]
    more = re.search(r"…and (\d+) more products: call search_knowledge", system)
    assert more and shown and len(shown) + int(more.group(1)) == 2000
    assert prompt_tokens(first["messages"]) <= shop.app.settings.llm.context_tokens
    assert {t["function"]["name"] for t in first["tools"]} >= {"search_knowledge", "send_media"}


async def test_policy_question_reaches_the_right_document_chunk(shop: Shop) -> None:
    shop.server.tool_call("search_knowledge",
                          {"query": "cuántos días tengo para devolver algo", "scope": "documents"})
    [text] = await shop.ask(CUSTOMER, "¿hasta cuándo puedo regresar un pedido?")
    assert text.startswith("Según politica-devoluciones.md (Política de devoluciones › Plazo "
                           "para devolver): Tienes 30 días naturales")


async def test_product_picture_is_sent_and_recorded_in_history(shop: Shop) -> None:
    shop.server.tool_call("send_media", {"product": "MCH-AMB-30", "caption": "Esta es 🎒"})
    await shop.ask(CUSTOMER, "mándame foto de la mochila ámbar")
    chat = shop.gateway.chat_for(CUSTOMER)
    [(to, media)] = shop.gateway.media_sent
    assert (to, media.kind, media.mimetype, media.data, media.caption) == (
        chat, "image", "image/png", PNG_1PX, "Esta es 🎒")
    history = await shop.app.unit.memory.window(CustomerKey(shop.app.settings.tenant, CUSTOMER), 4000)
    assert any(m.text == "[sent image: mochila.png] Esta es 🎒" and m.kind == "media"
               for m in history)


async def test_a_document_is_sent_by_its_source_and_unknown_ones_are_refused(shop: Shop) -> None:
    shop.server.tool_call("send_media", {"document": "politica-devoluciones.md"})
    await shop.ask(CUSTOMER, "mándame la política")
    shop.server.tool_call("send_media", {"document": "../../etc/passwd"})
    texts = await shop.ask(CUSTOMER, "y este otro")
    [(_, media)] = shop.gateway.media_sent
    assert (media.kind, media.filename) == ("document", "politica-devoluciones.md")
    assert "no document named '../../etc/passwd'" in texts[-1]
