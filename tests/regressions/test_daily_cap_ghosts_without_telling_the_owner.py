"""A customer over the daily token cap was silently left unanswered: the owner was never
told. The first capped message of the day now alerts the owner's own chat, once."""

from __future__ import annotations

from bot.clock import VirtualClock
from bot.gateway.memory import MemoryGateway
from bot.pipeline.inbox import Fed
from tests.fakes.pipeline import START, make_settings, pipeline

ANA = "+5215512345678"
OWNER = "+5215500000000"


async def test_the_owner_is_alerted_once_when_a_customer_reaches_the_daily_cap(
        db_url, tmp_path, openai_server, tenant):
    settings = make_settings(db_url, tmp_path, openai_server, tenant,
                             presenter={"enabled": False}, limits={"daily_tokens": 30})
    clock = VirtualClock(START)
    gateway = MemoryGateway(clock)
    gateway.connected_as = OWNER  # type: ignore[attr-defined]  # as the WhatsApp gateway knows
    async with pipeline(settings, clock=clock, gateway=gateway) as p:
        for text in ("one", "two"):
            await p.say(ANA, text)
            await p.settle()
        for text in ("three", "four"):
            assert await p.app.unit.inbox.feed(p.message(ANA, text)) is Fed.CAPPED
        alerts = [t for t in gateway.texts(gateway.chat_for(OWNER)) if "daily limit" in t]
        assert len(alerts) == 1 and ANA in alerts[0]
