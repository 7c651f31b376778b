"""Issue #24 (Low): a customer's first named message still showed "Name: unknown yet" in
that turn's prompt (the name was stored only when the turn committed), and a name given
only on a burst's first line (`simulate`) was lost for the whole burst."""

from __future__ import annotations

from bot.models import CustomerKey
from tests.fakes.pipeline import make_settings, pipeline

ANA = "+5215512345678"


def system_prompt(openai_server) -> str:
    return str(openai_server.chat_requests()[-1]["messages"][0]["content"])


async def test_the_turn_that_brings_the_name_uses_it(db_url, tmp_path, openai_server, tenant):
    settings = make_settings(db_url, tmp_path, openai_server, tenant,
                             presenter={"enabled": False}, inbox={"debounce_seconds": 0})
    async with pipeline(settings) as p:
        await p.say(ANA, "hola")  # WhatsApp gave no name yet
        await p.settle()
        assert "Name: unknown yet" in system_prompt(openai_server)
        await p.say(ANA, "soy Ana", push_name="Ana")
        await p.settle()
        prompt = system_prompt(openai_server)
        assert "unknown yet" not in prompt and "Ana" in prompt


async def test_a_name_on_a_bursts_first_line_is_the_bursts(db_url, tmp_path, openai_server,
                                                           tenant):
    settings = make_settings(db_url, tmp_path, openai_server, tenant,
                             presenter={"enabled": False}, inbox={"debounce_seconds": 2})
    async with pipeline(settings) as p:
        await p.say(ANA, "hola", push_name="Ana")
        await p.say(ANA, "quiero un pastel")  # same burst, no name on this line
        await p.settle()
        assert len(openai_server.chat_requests()) == 1  # one turn
        assert "unknown yet" not in system_prompt(openai_server)
        customer = await p.app.unit.customers.get(CustomerKey(tenant, ANA))
        assert customer is not None and customer.name == "Ana"
