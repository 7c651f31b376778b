"""With groups enabled, a group is a conversation of its own (`g:<id>`), and the lifecycle
rules treated it like a quiet lead: a "checking in" message posted to the whole group a day
later, unasked (WhatsApp restricts numbers for group spam). The agent's own follow-ups,
which someone in the group asked for, still go out."""

from __future__ import annotations

from tests.fakes.pipeline import pipeline
from tests.followups.test_followups import (  # noqa: F401  (fixtures)
    LEAD_RULE,
    configure,
    daily_business,
)

GROUP = "g:120363025246125486"


async def test_a_quiet_group_gets_no_rule_follow_up_but_a_quiet_lead_does(
        configure, openai_server):  # noqa: F811
    settings = configure(rules=[LEAD_RULE])
    openai_server.reply("¿Pudiste ver los tenis?", match="went quiet")
    async with pipeline(settings) as p:
        await p.say(GROUP, "hola a todos, ¿tienen tenis?")
        await p.say("+5215512345678", "hola, tienen tenis azules?")
        await p.settle()
        await p.advance(25 * 3600)  # the rule is due a day after the last message

        assert p.texts_to(GROUP) == ["OK: hola a todos, ¿tienen tenis?"]
        assert p.texts_to("+5215512345678")[-1] == "¿Pudiste ver los tenis?"
        assert p.gateway.chat_for(GROUP) == "120363025246125486@g.us"
