"""The messages sent without the model speak the business's language, and the failure
reply is part of the conversation: stored, exported, and the owner is told."""

from __future__ import annotations

import pytest

from bot.business import Business
from bot.messages import TEXTS, language_code
from bot.models import CustomerKey, Role
from tests.fakes.pipeline import make_settings, pipeline

ANA = "+5215512345678"
OWNER = "+5215599990000"


def business(language: str) -> Business:
    return Business(name="Casa Azul", language=language, timezone="America/Mexico_City")


@pytest.mark.parametrize(("language", "code"), [
    ("Spanish", "es"), ("español (México)", "es"), ("es-MX", "es"), ("Castellano", "es"),
    ("English", "en"), ("the customer's language", "en"), ("French", "en"), ("", "en")])
def test_the_language_is_read_from_the_profile(language, code):
    assert language_code(language) == code


async def test_a_spanish_business_fails_stops_and_limits_in_spanish(
        tmp_path, openai_server, tenant):
    es = TEXTS["es"]
    settings = make_settings(f"sqlite:///{tmp_path / 'w.db'}", tmp_path, openai_server, tenant,
                             presenter={"enabled": False}, inbox={"debounce_seconds": 0},
                             limits={"turns_per_minute": 2}, memory={"insights": False})
    async with pipeline(settings, business=business("Spanish")) as p:
        p.gateway.connected_as = OWNER  # type: ignore[attr-defined]
        openai_server.error(500, "upstream down")
        await p.say(ANA, "hola")
        await p.settle()
        assert p.texts_to(ANA) == [es["failure_reply"]]
        history = await p.app.unit.memory.window(CustomerKey(tenant, ANA), 10_000)
        assert [(m.role, m.text, m.kind) for m in history] == [
            (Role.CUSTOMER, "hola", "chat"), (Role.AGENT, es["failure_reply"], "failure")]
        [alert] = p.gateway.texts(p.gateway.chat_for(OWNER))
        assert ANA in alert and "failure reply" in alert

        for i in range(3):  # two turns a minute: the third gets the notice, then its turn
            await p.say(ANA, f"pregunta {i}")
            await p.settle()
        texts = p.texts_to(ANA)
        assert texts.count(es["rate_notice"]) == 1 and texts[-1] == "OK: pregunta 2"

        await p.advance(120)
        await p.say(ANA, "BAJA")
        await p.settle()
        assert p.texts_to(ANA)[-1] == es["stop_reply"]


async def test_other_languages_fall_back_to_english_and_the_owner_text_wins(
        tmp_path, openai_server, tenant):
    settings = make_settings(f"sqlite:///{tmp_path / 'w.db'}", tmp_path, openai_server, tenant,
                             presenter={"enabled": False}, inbox={"debounce_seconds": 0},
                             followups={"optout": {"stop_reply": "Ciao!"}})
    async with pipeline(settings, business=business("Italian")) as p:
        openai_server.error(500, "upstream down")
        await p.say(ANA, "ciao")
        await p.settle()
        await p.say(ANA, "STOP")
        await p.settle()
        assert p.texts_to(ANA) == [TEXTS["en"]["failure_reply"], "Ciao!"]
