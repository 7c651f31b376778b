"""A crash (kill -9) or a stop between two bubbles of a reply left the journal `received`;
the restart answered the turn again and the customer got the whole reply a second time.
Each bubble's delivery is now recorded before the next send, and the restart resumes at
the first bubble that did not go out — the stored bubbles, not a new model answer."""

from __future__ import annotations

import asyncio

from bot.clock import VirtualClock
from bot.gateway.memory import MemoryGateway
from bot.models import CustomerKey, Role
from tests.fakes.pipeline import START, eventually, make_settings, pipeline

ANA = "+5215512345678"
FIRST = "Hola Ana.\n\nLa camisa azul cuesta 1290.\n\n¿Te la aparto?"


class DiesOnSecondBubble(MemoryGateway):
    """Sends the first bubble, then hangs on the second: the process dies there."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__(clock)
        self.hanging = asyncio.Event()

    async def _send_text(self, chat: str, text: str) -> str:
        if self.texts():
            self.hanging.set()
            await asyncio.Event().wait()
        return await super()._send_text(chat, text)


async def test_a_restart_after_bubble_one_of_three_sends_two_and_three_only(
        db_url, tmp_path, openai_server, tenant):
    settings = make_settings(db_url, tmp_path, openai_server, tenant,
                             inbox={"debounce_seconds": 0}, presenter={"enabled": False})
    clock = VirtualClock(START)
    crashing = DiesOnSecondBubble(clock)
    openai_server.reply(FIRST)
    async with pipeline(settings, clock=clock, gateway=crashing) as crashed:
        await crashed.say(ANA, "¿cuánto cuesta la camisa azul?")
        await eventually(crashing.hanging.is_set)
        for task in list(crashed.app.unit.inbox.tasks):  # killed between bubble 1 and 2
            task.cancel()
        await asyncio.gather(*crashed.app.unit.inbox.tasks, return_exceptions=True)
    assert crashing.texts() == ["Hola Ana."]

    openai_server.reply("Una respuesta distinta.\n\nDe otro intento.")  # asked again
    async with pipeline(settings, clock=clock) as restarted:
        await restarted.settle()
        # the rest goes out from the delivery retries, a background task of its own
        resume = [t for t in restarted.app.background if t.get_name() == "redelivery"]
        await restarted.clock.advance(120, resume)
        assert restarted.texts_to(ANA) == ["La camisa azul cuesta 1290.", "¿Te la aparto?"]
        history = await restarted.app.unit.memory.recent(CustomerKey(tenant, ANA), 10)
        # the history holds what the customer got, once
        assert [m.text for m in history if m.role is Role.AGENT] == [FIRST]
