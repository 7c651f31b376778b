"""Over `messages_per_minute` a message was journaled `rate_limited`, never stored in the
customer's history nor seen by the agent, while the notice promised "Give me a minute and
I'll answer everything" (issue #16.2). Now every message is journaled and stored in
history, and the held ones are answered in the next turn the cap allows, within the
minute the notice promises."""

from __future__ import annotations

from bot.agents.prompt import RULES
from bot.models import CustomerKey, Role
from bot.pipeline.inbox import Fed
from bot.pipeline.later.instructions import FLOOD
from tests.fakes.pipeline import START, make_settings, pipeline

ANA = "+5215512345678"


def turn_requests(server) -> list[dict]:
    return [b for b in server.chat_requests() if RULES in b["messages"][0]["content"]]


async def customer_lines(p, tenant) -> list[str]:
    history = await p.app.unit.memory.recent(CustomerKey(tenant, ANA), 1000)
    return [m.text for m in history if m.role is Role.CUSTOMER]


async def test_15_messages_5_seconds_apart_are_all_stored_and_answered(
        db_url, tmp_path, openai_server, tenant):
    settings = make_settings(db_url, tmp_path, openai_server, tenant,
                             presenter={"enabled": False})
    async with pipeline(settings) as p:  # the default caps and debounce
        outcomes = []
        for i in range(15):
            outcomes.append(await p.app.unit.inbox.feed(p.message(ANA, f"question {i}")))
            await p.advance(5)
        assert Fed.HELD in outcomes and Fed.RATE_LIMITED not in outcomes
        notice = p.app.settings.limits.notice
        assert "answer everything" in notice  # what the customer was promised
        held_at = p.clock.now()
        await p.advance(60)  # "give me a minute"
        await p.settle()
        assert await customer_lines(p, tenant) == [f"question {i}" for i in range(15)]
        assert await p.app.unit.customers.journal_count(tenant, START, "answered") == 15
        assert (p.clock.now() - held_at).total_seconds() <= 60 + 2  # the debounce
        replies = p.texts_to(ANA)
        assert replies.count(notice) == 1 and replies[-1] == "OK: question 14"
        asked = [m["content"] for r in turn_requests(openai_server) for m in r["messages"]
                 if m["role"] == "user"]
        assert all(f"question {i}" in asked for i in range(15))  # the agent saw every one


async def test_a_200_message_flood_is_stored_and_answered_in_one_turn(
        db_url, tmp_path, openai_server, tenant):
    settings = make_settings(db_url, tmp_path, openai_server, tenant,
                             presenter={"enabled": False})
    async with pipeline(settings) as p:
        # Long lines: the flood does not fit the prompt, the agent is told so.
        texts = [f"flood {i} " + "blah " * 40 for i in range(200)]
        outcomes = [await p.app.unit.inbox.feed(p.message(ANA, t)) for t in texts]
        assert outcomes.count(Fed.QUEUED) == p.app.settings.limits.messages_per_minute
        assert outcomes.count(Fed.HELD) == 200 - p.app.settings.limits.messages_per_minute
        await p.advance(60)
        await p.settle()
        assert [t.strip() for t in await customer_lines(p, tenant)] == [
            t.strip() for t in texts]
        assert await p.app.unit.customers.journal_count(tenant, START, "answered") == 200
        turns = turn_requests(openai_server)
        assert len(turns) == 1  # one answer for the whole flood
        system = turns[0]["messages"][0]["content"]
        assert FLOOD.split("{n}")[0] in system and "200 messages" in system
        assert texts[-1].strip() in str(turns[0]["messages"][-1]["content"]).strip()
        assert p.texts_to(ANA).count(p.app.settings.limits.notice) == 1
        customer = await p.app.unit.customers.get(CustomerKey(tenant, ANA))
        assert customer is not None and customer.msgs_in == 200


async def test_one_long_message_is_not_a_flood(db_url, tmp_path, openai_server, tenant):
    settings = make_settings(db_url, tmp_path, openai_server, tenant,
                             presenter={"enabled": False})
    async with pipeline(settings) as p:
        await p.say(ANA, "a long story " * 300)
        await p.settle()
        [turn] = turn_requests(openai_server)
        assert FLOOD.split("{n}")[0] not in turn["messages"][0]["content"]
        assert p.texts_to(ANA)[-1].startswith("OK: a long story")
