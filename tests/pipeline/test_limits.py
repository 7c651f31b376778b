"""Allow/deny lists and per-customer caps: nobody runs up the LLM bill."""

from __future__ import annotations

import pytest

from bot.agents.agent import MAX_TOOL_ROUNDS
from bot.agents.prompt import RULES
from bot.models import CustomerKey
from bot.pipeline.inbox import Fed
from tests.fakes.pipeline import START, make_settings, pipeline

ANA = "+5215512345678"
BOB = "+14155550123"
EVE = "+447700900666"


def turn_requests(server) -> list[dict]:
    """Chat requests made by a customer's turn (not background summaries or insights)."""
    return [b for b in server.chat_requests() if RULES in b["messages"][0]["content"]]


@pytest.mark.parametrize("access", [{"deny": [EVE]}, {"allow": [ANA, BOB]}])
async def test_denied_numbers_get_no_reply_and_cost_nothing(
        db_url, tmp_path, openai_server, tenant, access):
    settings = make_settings(db_url, tmp_path, openai_server, tenant, access=access)
    async with pipeline(settings) as p:
        assert await p.app.unit.inbox.feed(p.message(EVE, "eve-secret-question")) is Fed.DENIED
        await p.say(ANA, "hello")
        await p.settle()
        assert p.texts_to(EVE) == [] and p.texts_to(ANA) == ["OK: hello"]
        assert [o for o in p.gateway.sent if o.chat == p.gateway.chat_for(EVE)] == []  # no ticks
        assert all("eve-secret" not in str(b) for b in openai_server.chat_requests())
        assert ("agent_created", EVE) not in p.events
        key = CustomerKey(tenant, EVE)
        assert await p.app.unit.customers.get(key) is None
        assert await p.app.unit.memory.count(key) == 0
        assert await p.app.unit.customers.journal_count(tenant, START, "denied") == 1


async def test_the_owner_still_writes_in_a_denied_chat(db_url, tmp_path, openai_server, tenant):
    settings = make_settings(db_url, tmp_path, openai_server, tenant, access={"deny": [EVE]})
    async with pipeline(settings) as p:
        assert await p.app.unit.inbox.feed(p.message(EVE, "we are closed", from_owner=True)) \
            is Fed.OWNER


async def test_a_flood_of_500_messages_in_a_minute_makes_a_bounded_number_of_calls(
        db_url, tmp_path, openai_server, tenant):
    # No debounce and no typing delays: without the limiter this flood is ~150 turns.
    settings = make_settings(db_url, tmp_path, openai_server, tenant,
                             presenter={"enabled": False}, inbox={"debounce_seconds": 0})
    limits = settings.limits
    async with pipeline(settings) as p:
        outcomes = []
        for i in range(500):  # ten a second for 50 s
            outcomes.append(await p.app.unit.inbox.feed(p.message(ANA, f"spam {i}")))
            if i % 10 == 9:
                await p.advance(1.0)
        await p.say(BOB, "a normal question")
        await p.settle()
        turns = turn_requests(openai_server)
        per_turn = MAX_TOOL_ROUNDS + 1
        assert len(turns) <= (limits.turns_per_minute + 1) * per_turn  # Bob's turn too
        assert len(openai_server.chat_requests()) <= 3 * (limits.turns_per_minute + 1) * per_turn
        assert outcomes.count(Fed.QUEUED) <= limits.messages_per_minute
        assert outcomes.count(Fed.HELD) >= 500 - limits.messages_per_minute  # none dropped
        assert p.texts_to(ANA).count(p.app.settings.limits.notice) == 1  # one notice, not 400
        assert p.texts_to(BOB) == ["OK: a normal question"]  # everyone else is untouched
        await p.advance(61)  # what is still held joins the turn the next minute allows
        await p.settle()
        assert len(turn_requests(openai_server)) <= (2 * limits.turns_per_minute + 1) * per_turn
        assert await p.app.unit.customers.journal_count(tenant, START, "answered") == 501
        assert await p.app.unit.memory.count(CustomerKey(tenant, ANA)) >= 500  # all in history


async def test_the_minute_window_slides(db_url, tmp_path, openai_server, tenant):
    settings = make_settings(db_url, tmp_path, openai_server, tenant,
                             presenter={"enabled": False}, inbox={"debounce_seconds": 0},
                             limits={"turns_per_minute": 2})
    async with pipeline(settings) as p:
        for i in range(3):
            await p.say(ANA, f"question {i}")
            await p.settle()
        # The third waits for the window to slide, then is answered on its own.
        assert p.texts_to(ANA) == ["OK: question 0", "OK: question 1",
                                   p.app.settings.limits.notice, "OK: question 2"]
        await p.advance(61)
        await p.say(ANA, "and now?")
        await p.settle()
        assert p.texts_to(ANA)[-1] == "OK: and now?"


async def test_messages_joining_a_waiting_turn_are_free(db_url, tmp_path, openai_server, tenant):
    settings = make_settings(db_url, tmp_path, openai_server, tenant,
                             limits={"turns_per_minute": 1})
    async with pipeline(settings) as p:  # the default 2 s debounce merges the burst
        for text in ("hi", "I want", "the blue one", "in size 40"):
            assert await p.app.unit.inbox.feed(p.message(ANA, text)) is Fed.QUEUED
            await p.advance(0.5)
        await p.settle()
        assert p.texts_to(ANA) == ["OK: in size 40"]


async def test_the_daily_token_budget(db_url, tmp_path, openai_server, tenant):
    # Each fake completion uses 15 tokens: two turns spend a 30-token day.
    settings = make_settings(db_url, tmp_path, openai_server, tenant,
                             presenter={"enabled": False}, limits={"daily_tokens": 30})
    async with pipeline(settings) as p:
        budget_notice = p.app.settings.limits.budget_notice  # in the business's language
        for text in ("one", "two"):
            await p.say(ANA, text)
            await p.settle()
        assert await p.app.unit.inbox.feed(p.message(ANA, "three")) is Fed.CAPPED
        assert await p.app.unit.inbox.feed(p.message(ANA, "four")) is Fed.CAPPED
        await p.say(BOB, "hello")
        await p.settle()
        assert p.texts_to(ANA) == ["OK: one", "OK: two", budget_notice]  # notice once
        assert p.texts_to(BOB) == ["OK: hello"]  # the budget is per customer
        used = await p.app.unit.customers.usage_on(CustomerKey(tenant, ANA), "2026-01-05")
        assert (used.tokens_in, used.tokens_out, used.msgs_out) == (20, 10, 3)
        await p.advance(9 * 3600 + 60)  # a new UTC day: the kept messages are answered
        assert p.texts_to(ANA)[-1] == "OK: four"
        await p.say(ANA, "good morning")
        await p.settle()
        assert p.texts_to(ANA)[-1] == "OK: good morning"
