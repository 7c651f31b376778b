"""The per-minute turn cap dropped a fast typist's messages (journaled `rate_limited`, never
seen by the agent nor stored in history) while the notice promised "I'll answer
everything". Now they are held and join the next turn the cap allows."""

from __future__ import annotations

from bot.models import CustomerKey, Role
from bot.pipeline.inbox import Fed
from tests.fakes.pipeline import START, make_settings, pipeline

ANA = "+5215512345678"


async def test_messages_over_the_turn_cap_are_answered_when_it_allows(
        db_url, tmp_path, openai_server, tenant):
    settings = make_settings(db_url, tmp_path, openai_server, tenant,
                             presenter={"enabled": False}, inbox={"debounce_seconds": 0},
                             limits={"turns_per_minute": 2})
    async with pipeline(settings) as p:
        for i in range(2):
            await p.say(ANA, f"question {i}")
            await p.settle()
        assert await p.app.unit.inbox.feed(p.message(ANA, "question 2")) is Fed.HELD
        assert await p.app.unit.inbox.feed(p.message(ANA, "question 3")) is Fed.HELD
        await p.advance(1)
        assert p.texts_to(ANA) == ["OK: question 0", "OK: question 1", p.app.settings.limits.notice]
        await p.advance(60)  # the window frees: the held messages are one turn, unprompted
        await p.settle()
        assert p.texts_to(ANA)[-1] == "OK: question 3"
        turns = [[m["content"] for m in r["messages"] if m["role"] == "user"]
                 for r in openai_server.chat_requests()]  # memory work asks the model too
        said = next(t for t in reversed(turns) if "question 3" in t)
        assert said[-2:] == ["question 2", "question 3"]
        history = await p.app.unit.memory.recent(CustomerKey(tenant, ANA), 20)
        assert [m.text for m in history if m.role is Role.CUSTOMER] == [
            f"question {i}" for i in range(4)]
        assert await p.app.unit.customers.journal_count(tenant, START, "rate_limited") == 0
        assert await p.app.unit.customers.journal_count(tenant, START, "answered") == 4


async def test_held_messages_are_answered_after_a_restart(db_url, tmp_path, openai_server,
                                                          tenant):
    settings = make_settings(db_url, tmp_path, openai_server, tenant,
                             presenter={"enabled": False}, inbox={"debounce_seconds": 0},
                             limits={"turns_per_minute": 1})
    async with pipeline(settings) as p:
        await p.say(ANA, "first")
        await p.settle()
        assert await p.app.unit.inbox.feed(p.message(ANA, "second")) is Fed.HELD
        await p.app.stop()  # before the cap allows the next turn
        assert p.texts_to(ANA) == ["OK: first", p.app.settings.limits.notice]
    async with pipeline(settings) as p:  # a minute later in a fresh daemon
        await p.advance(61)
        await p.settle()
        assert p.texts_to(ANA)[-1] == "OK: second"
