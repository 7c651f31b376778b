"""A message of only zero-width characters ("\\u200b") cost a model call although the
customer sent nothing to answer, and "S\\u200bTOP" — STOP on screen — did not opt out."""

from __future__ import annotations

import pytest

from bot.models import CustomerKey
from bot.pipeline.inbox import Fed
from tests.fakes.pipeline import pipeline

ANA = "+5215512345678"


@pytest.fixture
def db_url(tmp_path):
    return f"sqlite:///{tmp_path / 'wabot.db'}"  # what is stored does not matter here


@pytest.fixture
def settings_overrides():
    return {"presenter": {"enabled": False}, "inbox": {"debounce_seconds": 0}}


@pytest.mark.parametrize("text", ["\u200b", "\u200b\u200c\u200d\u2060\ufeff", " \u200b \n",
                                  "\u3164", "\u2800\u00ad"])
async def test_a_message_that_shows_nothing_is_ignored_without_a_model_call(
        settings, openai_server, text):
    async with pipeline(settings) as p:
        assert await p.app.unit.inbox.feed(p.message(ANA, text)) is Fed.IGNORED
        await p.settle()
        assert openai_server.chat_requests() == []
        assert p.texts_to(ANA) == []


@pytest.mark.parametrize("text", ["S\u200bTOP", "\u2060stop\u200d", "BA\u00adJA"])
async def test_stop_with_invisible_characters_opts_out(settings, openai_server, text):
    async with pipeline(settings) as p:
        assert await p.app.unit.inbox.feed(p.message(ANA, text)) is Fed.FILTERED
        await p.settle()
        customer = await p.app.unit.customers.get(CustomerKey(settings.tenant, ANA))
        assert customer is not None and customer.opted_out
        assert openai_server.chat_requests() == []
