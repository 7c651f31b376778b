"""A model endpoint answering HTTP 200 with something that is not a chat completion (an HTML
error page from a proxy, truncated JSON, an empty body, no choices, empty content) escaped
`bot/llm.py`: the customer got no reply, the turn's lines were missing from history, and
`wabot doctor` died with a traceback. Every malformed answer is now a model failure."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from bot.models import CustomerKey, Role
from tests.fakes.pipeline import START, pipeline
from tests.ops.test_doctor import clean_env, doctor, good_setup  # noqa: F401 (fixture)

ANA = "+5215512345678"
HTML = "<html><body><h1>502 Bad Gateway</h1></body></html>"
EMPTY_CHOICES = json.dumps({"id": "x", "object": "chat.completion", "created": 0,
                            "model": "m", "choices": []})
MALFORMED = {
    "html": (HTML, "text/html"),
    "html-as-json": (HTML, "application/json"),
    "truncated-json": ('{"id": "chatcmpl-1", "choices": [{"index": 0, "mess', "application/json"),
    "empty-body": ("", "application/json"),
    "empty-choices": (EMPTY_CHOICES, "application/json"),
    "choices-not-a-list": ('{"choices": 7}', "application/json"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
async def test_a_malformed_answer_gets_the_failure_reply_and_keeps_the_lines(
        case, settings, openai_server):
    body, content_type = MALFORMED[case]
    async with pipeline(settings) as p:
        openai_server.raw(body, content_type=content_type)
        await p.say(ANA, "do you have the blue one?")
        await p.settle()
        assert p.texts_to(ANA) == [p.app.settings.agents.failure_reply]
        key = CustomerKey(settings.tenant, ANA)
        history = await p.app.unit.memory.recent(key, 10)
        assert [(m.role, m.text) for m in history] == [
            (Role.CUSTOMER, "do you have the blue one?"),
            (Role.AGENT, p.app.settings.agents.failure_reply)]  # the reply is history too
        since = START - timedelta(days=1)
        assert await p.app.unit.customers.journal_count(settings.tenant, since, "failed") == 1


async def test_an_empty_answer_is_asked_again_then_fails(settings, openai_server):
    async with pipeline(settings) as p:
        openai_server.reply("")
        openai_server.reply("   ")
        await p.say(ANA, "hola")
        await p.settle()
        assert p.texts_to(ANA) == [p.app.settings.agents.failure_reply]
        assert len(openai_server.chat_requests()) == 2
        since = START - timedelta(days=1)
        assert await p.app.unit.customers.journal_count(settings.tenant, since, "failed") == 1
        assert await p.app.unit.customers.journal_count(settings.tenant, since, "answered") == 0


async def test_an_empty_answer_then_a_real_one_is_answered(settings, openai_server):
    async with pipeline(settings) as p:
        openai_server.reply("")
        openai_server.reply("Hola!")
        await p.say(ANA, "hola")
        await p.settle()
        assert p.texts_to(ANA) == ["Hola!"]


async def test_tool_calls_past_the_last_round_are_a_failure_not_silence(
        settings, openai_server):
    async with pipeline(settings) as p:
        for _ in range(4):
            openai_server.tool_call("no_such_tool", {})
        await p.say(ANA, "hola")
        await p.settle()
        assert p.texts_to(ANA) == [p.app.settings.agents.failure_reply]
        since = START - timedelta(days=1)
        assert await p.app.unit.customers.journal_count(settings.tenant, since, "failed") == 1


def test_doctor_says_the_endpoint_is_not_openai_compatible(
        clean_env, tmp_path, openai_server):  # noqa: F811
    from tests.fakes.openai_server import Raw

    config = good_setup(tmp_path, openai_server.base_url, f"sqlite:///{tmp_path / 'w.db'}")
    openai_server.models_raw = Raw(HTML.encode(), 200, "text/html")
    openai_server.raw(HTML, content_type="text/html")
    result = doctor("--config", str(config))
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.exit_code == 1
    assert "✗ LLM endpoint: " in result.output and "not an OpenAI-compatible" in result.output
