"""A turn's write comes straight after its reply went out, before "typing…" ends.

A crash between a reply leaving and its turn's write sends the reply again (the next owner
of the number cannot tell it went); on WhatsApp Web ending "typing…" is two more calls
through the Go layer, so they wait until the turn is on record.
"""

from __future__ import annotations

from bot.clock import VirtualClock
from bot.gateway.memory import MemoryGateway
from bot.models import CustomerKey
from tests.fakes.pipeline import START, Pipeline, pipeline

ANA = "+5215512345678"


class Watching(MemoryGateway):
    """Records, when "typing…" ends, which of the customer's messages still wait."""

    pipeline: Pipeline | None = None

    def __init__(self, *a: object, **kw: object) -> None:
        super().__init__(*a, **kw)  # type: ignore[arg-type]
        self.waiting_at_pause: list[set[str]] = []

    async def _set_typing(self, chat: str, typing: bool) -> None:
        if not typing and self.pipeline is not None:
            app = self.pipeline.app
            pending = await app.unit.customers.journal_pending(self.pipeline.settings.tenant)
            self.waiting_at_pause.append({m.msg_id for m in pending})
        await super()._set_typing(chat, typing)


async def test_the_turn_is_written_before_typing_ends(settings, openai_server):
    openai_server.reply("Hola Ana!\n\nWe have the blue one in sizes 22 to 30.")
    clock = VirtualClock(START)
    gateway = Watching(clock)
    async with pipeline(settings, clock=clock, gateway=gateway) as p:
        gateway.pipeline = p
        msg_id = await p.say(ANA, "hola", push_name="Ana")
        await p.settle()
        assert p.texts_to(ANA) == ["Hola Ana!", "We have the blue one in sizes 22 to 30."]
        assert [o.action for o in gateway.sent][-1] == "paused"  # typing still ends
        assert gateway.waiting_at_pause, "typing never ended"
        assert all(msg_id not in waiting for waiting in gateway.waiting_at_pause), (
            "typing ended while the turn was not yet written")
        customer = await p.app.unit.customers.get(CustomerKey(settings.tenant, ANA))
        assert customer is not None and customer.msgs_out == 2
