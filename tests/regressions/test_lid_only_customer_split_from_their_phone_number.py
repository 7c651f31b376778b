"""A customer WhatsApp showed only by LID was dropped (or, once kept, became a second
customer): real protobuf events through the stand-in Go layer and the whole App.

First message: the LID is in neither whatsmeow's map nor our store → journaled and answered
under the LID. Later WhatsApp names the phone number (SenderAlt) → one customer, whole
history, and the receipts and typing of that LID-addressed chat go to the LID."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from neonize.aioze.events import ConnectedEv, MessageEv
from sqlalchemy import select

from bot.clock import VirtualClock
from bot.gateway.web.gateway import NeonizeGateway
from bot.gateway.web.tuning import Tuning
from bot.models import CustomerKey, Role
from bot.settings import WhatsAppSettings
from bot.stores.customers import JOURNAL
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.pipeline import START, Pipeline, make_settings, pipeline
from tests.gateway.web.builders import (
    CUSTOMER,
    CUSTOMER_E164,
    CUSTOMER_LID,
    StandInClient,
    StandInFactory,
    event,
    jid,
    text,
)
from tests.gateway.web.conftest import reachable  # noqa: F401  (fixture)

LID_KEY = f"lid:{CUSTOMER_LID}"


@pytest.fixture
async def running(db_url: str, tmp_path: Path, openai_server: FakeOpenAI, tenant: str,
                  reachable: tuple[str, int],  # noqa: F811
                  ) -> AsyncIterator[tuple[Pipeline, StandInClient]]:
    clock = VirtualClock(START)
    factory = StandInFactory()
    gateway = NeonizeGateway(
        tenant,
        WhatsAppSettings(probe_host=reachable[0], probe_port=reachable[1], call_timeout=2.0),
        clock, state_dir=tmp_path / "wa",
        tuning=Tuning(client_factory=factory, console=io.StringIO()))
    settings = make_settings(db_url, tmp_path, openai_server, tenant)
    async with pipeline(settings, clock=clock, gateway=gateway) as p:  # type: ignore[arg-type]
        client = await factory.next_client()
        await client.fire(ConnectedEv, ConnectedEv(status=True))
        yield p, client


def sent_to(client: StandInClient) -> list[tuple[str, str]]:
    return [(args[0].User, args[0].Server) for args, _ in client.called("send_message")]


async def journal_phones(p: Pipeline) -> list[str]:
    j = JOURNAL.c
    async with p.app.unit.db.connect() as conn:
        rows = await conn.execute(select(j.phone).where(j.tenant == p.settings.tenant)
                                  .order_by(j.id))
        return [r.phone for r in rows]


async def test_lid_only_customer_answered_by_lid_then_merged_into_their_number(
    running: tuple[Pipeline, StandInClient], openai_server: FakeOpenAI,
) -> None:
    p, client = running
    lid = jid(CUSTOMER_LID, "lid")
    openai_server.reply("¡Hola! Sí, la tenemos en azul.")

    await client.fire(MessageEv, event(text("hola, ¿tienen la camisa?"), msg_id="L1",
                                       chat=lid, sender=lid))
    await p.settle()

    assert sent_to(client) == [(CUSTOMER_LID, "lid")]  # answered, by LID
    assert await journal_phones(p) == [LID_KEY]

    openai_server.reply("Te la aparto, Ana.")
    client.calls.clear()
    await client.fire(MessageEv, event(text("la quiero"), msg_id="L2", chat=lid, sender=lid,
                                       sender_alt=jid(CUSTOMER, device=2)))
    await p.settle()

    tenant = p.settings.tenant
    customers = await p.app.unit.customers.all(tenant)
    assert [(c.phone, c.lid, c.msgs_in) for c in customers] == [
        (CUSTOMER_E164, f"{CUSTOMER_LID}@lid", 2)]
    assert await journal_phones(p) == [CUSTOMER_E164, CUSTOMER_E164]
    history = await p.app.unit.memory.recent(CustomerKey(tenant, CUSTOMER_E164), 10)
    assert [(m.role, m.text) for m in history] == [
        (Role.CUSTOMER, "hola, ¿tienen la camisa?"), (Role.AGENT, "¡Hola! Sí, la tenemos en azul."),
        (Role.CUSTOMER, "la quiero"), (Role.AGENT, "Te la aparto, Ana.")]
    assert await p.app.unit.memory.count(CustomerKey(tenant, LID_KEY)) == 0
    # the second turn's prompt held the first (the agent knew the whole conversation)
    assert "hola, ¿tienen la camisa?" in str(openai_server.chat_requests()[-1]["messages"])
    # the chat is still addressed by LID: receipt and typing there, the send to the number
    # (whatsmeow send.go rewrites that one to the LID itself)
    [(_, read)] = client.called("mark_read")
    assert (read["chat"].User, read["chat"].Server) == (CUSTOMER_LID, "lid")
    typing = {(a[0].User, a[0].Server) for a, _ in client.called("send_chat_presence")}
    assert typing == {(CUSTOMER_LID, "lid")}
    assert sent_to(client) == [(CUSTOMER, "s.whatsapp.net")]


async def test_lid_customer_merged_at_start_when_a_phone_customer_has_the_lid(
    running: tuple[Pipeline, StandInClient],
) -> None:
    p, _ = running
    tenant = p.settings.tenant
    app: Any = p.app
    from bot.stores.customers import Contact

    await app.unit.customers.touch(CustomerKey(tenant, LID_KEY), Contact(lid=f"{CUSTOMER_LID}@lid"),
                              START, inbound=1)
    await app.unit.customers.touch(CustomerKey(tenant, CUSTOMER_E164),
                              Contact(name="Ana", lid=f"{CUSTOMER_LID}@lid"), START, inbound=1)

    assert await app.unit.identity.start() == 1

    assert [(c.phone, c.name, c.msgs_in) for c in await app.unit.customers.all(tenant)] == [
        (CUSTOMER_E164, "Ana", 2)]
