"""Opt-out: STOP / BAJA (configurable, whole message, any case or accents) or the agent's
judgement means no proactive message ever again, one confirmation, and a way back."""

from __future__ import annotations

from datetime import timedelta

import pytest

import tests.fakes.pipeline as pipeline_module
from bot.models import CustomerKey, Role
from bot.pipeline.inbox import Fed
from bot.pipeline.optout import plain
from tests.fakes.pipeline import pipeline
from tests.followups.test_followups import DAILY, LEAD_RULE

ANA = "+5215512345678"
BOB = "+14155550123"


@pytest.fixture(autouse=True)
def daily_business(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline_module, "BUSINESS", DAILY)


@pytest.fixture
def settings_overrides():
    return {"presenter": {"enabled": False}, "inbox": {"debounce_seconds": 0},
            "followups": {"rules": [LEAD_RULE]}}


def test_keywords_match_the_whole_message_ignoring_case_accents_and_punctuation():
    assert plain("  ¡BAJA!! ") == "baja"
    assert plain("Cancelar Suscripción.") == "cancelar suscripcion"
    assert plain("No más mensajes") == "no mas mensajes"


async def test_stop_opts_out_with_one_confirmation_and_cancels_follow_ups(
        settings, openai_server):
    async with pipeline(settings) as p:
        await p.say(ANA, "hi, do you have sneakers?")
        await p.settle()
        key = CustomerKey(settings.tenant, ANA)
        assert len(await p.app.unit.followups.pending(ANA)) == 1  # the lead rule
        requests = len(openai_server.chat_requests())
        assert await p.app.unit.inbox.feed(p.message(ANA, "STOP")) is Fed.FILTERED
        await p.settle()
        customer = await p.app.unit.customers.get(key)
        assert customer is not None and customer.opted_out
        assert p.texts_to(ANA) == ["OK: hi, do you have sneakers?",
                                   p.app.settings.followups.optout.stop_reply]
        assert len(openai_server.chat_requests()) == requests  # no agent turn
        assert await p.app.unit.followups.pending(ANA) == []
        history = await p.app.unit.memory.recent(key, 10)
        assert [(m.role, m.kind) for m in history[-2:]] == [(Role.CUSTOMER, "chat"),
                                                            (Role.AGENT, "optout")]
        # Nothing proactive ever again, even a follow-up that was somehow left behind.
        await p.app.unit.followups.schedule(key, "agent", "checking in",
                                       p.clock.now() + timedelta(hours=1))
        await p.advance(5 * 86400)
        assert len(p.texts_to(ANA)) == 2


@pytest.mark.parametrize("text", ["baja", "  BAJA!! ", "Cancelar suscripción",
                                  "No más mensajes.", "unsubscribe"])
async def test_stop_words_in_any_form(settings, text):
    async with pipeline(settings) as p:
        assert await p.app.unit.inbox.feed(p.message(ANA, text)) is Fed.FILTERED
        await p.settle()
        customer = await p.app.unit.customers.get(CustomerKey(settings.tenant, ANA))
        assert customer is not None and customer.opted_out  # a first message can be STOP


async def test_a_sentence_with_stop_in_it_is_for_the_agent(settings):
    async with pipeline(settings) as p:
        assert await p.app.unit.inbox.feed(p.message(ANA, "stop by the shop tomorrow?")) is Fed.QUEUED
        await p.settle()
        customer = await p.app.unit.customers.get(CustomerKey(settings.tenant, ANA))
        assert customer is not None and not customer.opted_out


async def test_an_opted_out_customer_who_writes_is_answered_but_never_followed_up(
        settings, openai_server):
    openai_server.tool_call("schedule_follow_up", {"when": "in 2 days", "reason": "x"})
    openai_server.reply("Sure!")
    async with pipeline(settings) as p:
        await p.say(ANA, "stop")
        await p.settle()
        await p.say(ANA, "actually, how much are the loafers?")
        await p.settle()
        assert p.texts_to(ANA)[-1] == "Sure!"  # they wrote first: answering is fine
        tool = next(m for m in openai_server.chat_requests()[1]["messages"]
                    if m["role"] == "tool")
        assert "opted out" in tool["content"]
        assert await p.app.unit.followups.pending(ANA) == []  # no rule, no agent follow-up


async def test_start_opts_back_in_and_is_confirmed(settings, openai_server):
    async with pipeline(settings) as p:
        assert await p.app.unit.inbox.feed(p.message(BOB, "start")) is Fed.QUEUED  # just a word
        await p.say(ANA, "BAJA")
        await p.say(ANA, "Alta")
        await p.settle()
        customer = await p.app.unit.customers.get(CustomerKey(settings.tenant, ANA))
        assert customer is not None and not customer.opted_out
        assert p.texts_to(ANA) == [p.app.settings.followups.optout.stop_reply,
                                   p.app.settings.followups.optout.start_reply]


async def test_the_agent_opts_a_customer_out_on_its_own_judgement(settings, openai_server):
    openai_server.tool_call("set_opt_out", {"opted_out": True})
    openai_server.reply("Understood, we won't write to you first again.")
    async with pipeline(settings) as p:
        await p.say(ANA, "please don't send me any more of your messages")
        await p.settle()
        key = CustomerKey(settings.tenant, ANA)
        customer = await p.app.unit.customers.get(key)
        assert customer is not None and customer.opted_out
        assert p.texts_to(ANA) == ["Understood, we won't write to you first again."]
        assert await p.app.unit.followups.pending(ANA) == []
        await p.advance(3 * 86400)
        assert len(p.texts_to(ANA)) == 1


async def test_the_owner_typing_stop_in_a_chat_is_not_an_opt_out(settings):
    async with pipeline(settings) as p:
        await p.say(ANA, "hi")
        await p.settle()
        await p.app.unit.inbox.feed(p.message(ANA, "stop", from_owner=True))
        await p.settle()
        customer = await p.app.unit.customers.get(CustomerKey(settings.tenant, ANA))
        assert customer is not None and not customer.opted_out
