"""Journaled messages used to be recovered right after the gateway started — before
WhatsApp had connected, when every send fails — so they were marked failed and never
answered; a message arriving live before recovery could also be queued twice."""

from __future__ import annotations

import asyncio

from bot.clock import VirtualClock
from bot.gateway.base import GatewayError
from bot.gateway.memory import MemoryGateway
from tests.fakes.pipeline import START, make_settings, pipeline

ANA = "+5215512345678"
BOB = "+14155550123"


class NotYetConnected(MemoryGateway):
    """Refuses to send until connected, as the WhatsApp gateway does."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__(clock)
        self.connected = asyncio.Event()

    async def _send_text(self, chat: str, text: str) -> str:
        if not self.connected.is_set():
            raise GatewayError("not connected to WhatsApp")
        return await super()._send_text(chat, text)


async def test_recovery_waits_for_the_connection_and_answers_each_message_once(
        db_url, tmp_path, openai_server, tenant):
    settings = make_settings(db_url, tmp_path, openai_server, tenant)
    clock = VirtualClock(START)
    async with pipeline(settings, clock=clock) as crashed:
        await crashed.say(ANA, "are you open today?")
        for task in list(crashed.app.unit.inbox.tasks):  # the process dies mid-debounce
            task.cancel()
        await asyncio.gather(*crashed.app.unit.inbox.tasks, return_exceptions=True)

    gateway = NotYetConnected(clock)
    async with pipeline(settings, clock=clock, gateway=gateway) as p:
        recover = next(t for t in p.app.background if t.get_name() == "recover")
        await p.say(BOB, "hello?")  # live, still in its debounce window when recovery runs
        assert not recover.done() and gateway.sent == []  # nothing tried before connecting
        gateway.connected.set()
        await recover
        await p.settle()
        assert p.texts_to(ANA) == ["OK: are you open today?"]
        assert p.texts_to(BOB) == ["OK: hello?"]
        bodies = openai_server.chat_requests()
        assert len(bodies) == 2
        bob = next(b for b in bodies if "hello?" in str(b["messages"]))
        assert [m["content"] for m in bob["messages"] if m["role"] == "user"] == ["hello?"]
