"""A lead asked the agent to check back tomorrow, then stayed silent: the next day they got
the agent's follow-up and the built-in "lead silent" nudge within seconds of each other.
Proactive messages to one customer now keep `followups.min_gap_hours` apart whatever their
source, and a rule yields to the follow-up the agent scheduled near it."""

from __future__ import annotations

from datetime import timedelta

from bot.business import DAYS, Business
from tests.fakes.pipeline import START, make_settings, pipeline

ANA = "+5215512345678"
OPEN_DAILY = Business(name="Casa Azul", timezone="America/Mexico_City",
                      hours=dict.fromkeys(DAYS, "09:00-19:00"))
LEAD_SILENT = {"name": "lead_silent", "stage": "lead", "after_hours": 24,
               "reason": "They went quiet: check in gently."}


def settings_with(db_url, tmp_path, openai_server, tenant, **followups):
    return make_settings(db_url, tmp_path, openai_server, tenant, presenter={"enabled": False},
                         inbox={"debounce_seconds": 0},
                         followups={"rules": [LEAD_SILENT], **followups})


async def test_the_rule_yields_to_the_follow_up_the_agent_scheduled_for_the_same_time(
        db_url, tmp_path, openai_server, tenant):
    openai_server.tool_call("schedule_follow_up",
                            {"when": "tomorrow", "reason": "ask again about the cake"})
    openai_server.reply("¡Claro! Te escribo mañana.")
    openai_server.reply("Hola Ana, ¿pensaste en el pastel?", match="ask again about the cake")
    openai_server.reply("¿Te ayudo con algo?", match="They went quiet")
    settings = settings_with(db_url, tmp_path, openai_server, tenant)
    async with pipeline(settings, business=OPEN_DAILY) as p:
        await p.say(ANA, "pregúntame mañana otra vez")
        await p.settle()
        kinds = {fu.kind: fu.run_at for fu in await p.app.unit.followups.pending(ANA)}
        assert kinds == {"agent": START + timedelta(days=1),
                         "lead_silent": START + timedelta(days=1)}  # due together
        await p.advance(2 * 86400)
        assert p.texts_to(ANA) == ["¡Claro! Te escribo mañana.",
                                   "Hola Ana, ¿pensaste en el pastel?"]
        assert await p.app.unit.followups.pending(ANA) == []


async def test_proactive_messages_keep_the_minimum_gap_whatever_their_source(
        db_url, tmp_path, openai_server, tenant):
    openai_server.reply("¿Te ayudo con algo?", match="They went quiet")
    openai_server.reply("¿Pudiste ver el catálogo?", match="the catalogue")
    catalogue = {"name": "catalogue", "stage": "lead", "after_hours": 25,
                 "reason": "Ask whether they saw the catalogue."}
    settings = settings_with(db_url, tmp_path, openai_server, tenant, min_gap_hours=4,
                             rules=[LEAD_SILENT, catalogue])
    async with pipeline(settings, business=OPEN_DAILY) as p:
        await p.say(ANA, "hola")
        await p.settle()
        await p.advance(25 * 3600 + 60)  # both rules fell due, an hour apart
        assert p.texts_to(ANA) == ["OK: hola", "¿Te ayudo con algo?"]
        [moved] = await p.app.unit.followups.pending(ANA)
        assert moved.kind == "catalogue" and moved.run_at == START + timedelta(hours=28)
        await p.advance(3 * 3600)
        assert p.texts_to(ANA)[-1] == "¿Pudiste ver el catálogo?"
