"""The journal revisit waits for what it holds: a capped customer until the next UTC day,
failed turns a probe at a time, and nothing at all once nothing waits (issue #21)."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.agents.prompt import RULES
from bot.pipeline.inbox import Fed
from bot.pipeline.later.capped_and_failed import PROBE
from tests.fakes.openai_server import Error, Reply
from tests.fakes.pipeline import make_settings, pipeline

ANA = "+5215512345678"
MIDNIGHT = datetime(2026, 1, 6, tzinfo=UTC)  # the first UTC midnight after START


def probes(server) -> int:
    return sum(b["messages"] == PROBE for b in server.chat_requests())


async def test_a_capped_customer_is_answered_at_the_next_utc_day_and_not_looked_at_before(
        db_url, tmp_path, openai_server, tenant):
    # Each fake completion uses 15 tokens: two turns spend a 30-token day.
    settings = make_settings(db_url, tmp_path, openai_server, tenant,
                             presenter={"enabled": False}, limits={"daily_tokens": 30})
    async with pipeline(settings) as p:
        for text in ("one", "two"):
            await p.say(ANA, text)
            await p.settle()
        assert await p.app.unit.inbox.feed(p.message(ANA, "three")) is Fed.CAPPED
        p.clock.woken.clear()
        await p.advance((MIDNIGHT - p.clock.now()).total_seconds() - 1)
        assert p.texts_to(ANA)[-1] != "OK: three"
        await p.advance(1)
        await p.settle()
        assert p.texts_to(ANA)[-1] == "OK: three"
        # One pass a minute after the cap (the journal written), one at midnight.
        assert p.clock.woken["revisit"] == 2


class Outage:
    def __init__(self) -> None:
        self.down = True

    def __call__(self, body: dict) -> Reply | Error:
        if self.down:
            return Error(503, "the model is overloaded")
        turn = RULES in body["messages"][0]["content"]
        return Reply("OK: back" if turn else "ok")


async def test_failed_turns_are_probed_for_every_probe_seconds_then_nothing(
        db_url, tmp_path, openai_server, tenant):
    outage = openai_server.responder = Outage()
    settings = make_settings(db_url, tmp_path, openai_server, tenant,
                             presenter={"enabled": False}, inbox={"debounce_seconds": 0},
                             retry={"probe_seconds": 60})
    async with pipeline(settings) as p:
        await p.say(ANA, "where is my order?")
        await p.settle()
        await p.advance(10 * 60 + 1)
        assert probes(openai_server) == 10
        outage.down = False
        await p.advance(60)
        await p.settle()
        assert p.texts_to(ANA)[-1] == "OK: back"
        p.clock.woken.clear()
        await p.advance(7 * 86400)
        assert probes(openai_server) == 11 and not p.clock.woken["revisit"]
