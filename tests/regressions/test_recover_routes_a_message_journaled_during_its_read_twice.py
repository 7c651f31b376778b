"""`Inbox.recover()` used to stop recording live message ids before its journal SELECT: a
message fed live while that SELECT ran was journaled as "received", read back by the
SELECT and routed a second time — two copies of it in one turn, or two turns."""

from __future__ import annotations

import asyncio

from bot.clock import VirtualClock
from bot.gateway.memory import MemoryGateway
from tests.fakes.pipeline import START, make_settings, pipeline

ANA = "+5215512345678"


async def test_a_message_fed_live_during_recovery_read_is_routed_once(
        db_url, tmp_path, openai_server, tenant):
    settings = make_settings(db_url, tmp_path, openai_server, tenant)
    clock = VirtualClock(START)
    gateway = MemoryGateway(clock)
    gateway.connected = asyncio.Event()  # type: ignore[attr-defined]  # recovery waits
    async with pipeline(settings, clock=clock, gateway=gateway) as p:
        store = p.app.unit.customers
        real_read = store.journal_pending

        async def read_while_a_message_arrives(t: str):  # type: ignore[no-untyped-def]
            # WhatsApp delivers a message while the journal query is in flight.
            await p.say(ANA, "is the blue one in stock?")
            return await real_read(t)

        store.journal_pending = read_while_a_message_arrives  # type: ignore[method-assign]
        recovered = await p.app.unit.inbox.recover()
        store.journal_pending = real_read  # type: ignore[method-assign]
        await p.settle()

        assert recovered == 0
        assert p.texts_to(ANA) == ["OK: is the blue one in stock?"]
        [body] = openai_server.chat_requests()
        users = [m["content"] for m in body["messages"] if m["role"] == "user"]
        assert users == ["is the blue one in stock?"]
