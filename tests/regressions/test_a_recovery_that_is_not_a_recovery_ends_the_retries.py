"""After a model outage the one-word probe succeeded while conversations still failed (a
provider rate-limiting the burst of retries with 429, or a probe answered with only tool
calls counted as "back"): the single retry failed, every waiting customer was marked final,
and when the model was fully back nobody was answered. Now the retries go on until a turn
really succeeds (one customer alone first, backoff, the age limit), a failed retry sends
nothing, and the doctor flags an endpoint whose answer is empty or only tool calls."""

from __future__ import annotations

from bot.agents.prompt import RULES
from bot.ops.doctor import check_llm
from bot.pipeline.later.capped_and_failed import PROBE
from tests.fakes.openai_server import Error, Reply, ToolCall, ToolCalls
from tests.fakes.pipeline import START, make_settings, pipeline

ANA, BOB, CAROL = "+5215512345678", "+14155550123", "+447700900123"


class Endpoint:
    """Down; then the probe answers (in words or only with a tool call) while turns get 429."""

    def __init__(self) -> None:
        self.down = True
        self.turns_limited = False
        self.probe_in_tools = False

    def __call__(self, body: dict) -> Reply | Error | ToolCalls:
        if self.down:
            return Error(503, "the model is overloaded")
        if body["messages"] == PROBE:
            return ToolCalls((ToolCall("lookup", {}),)) if self.probe_in_tools else Reply("ok")
        if self.turns_limited:
            return Error(429, "rate limit reached")
        said = [m["content"] for m in body["messages"] if m["role"] == "user"]
        return Reply("OK: " + said[-1])


def turns(server) -> int:
    return sum(RULES in b["messages"][0]["content"] for b in server.chat_requests())


def settings_for(db_url, tmp_path, server, tenant, **retry):
    return make_settings(db_url, tmp_path, server, tenant, presenter={"enabled": False},
                         inbox={"debounce_seconds": 0}, retry={"probe_seconds": 60, **retry})


async def test_retries_go_on_through_a_rate_limit_until_the_turns_succeed(
        db_url, tmp_path, openai_server, tenant):
    endpoint = openai_server.responder = Endpoint()
    async with pipeline(settings_for(db_url, tmp_path, openai_server, tenant)) as p:
        failure = p.app.settings.agents.failure_reply
        for phone in (ANA, BOB, CAROL):
            await p.say(phone, f"hola, soy {phone[-4:]}")
            await p.settle()
        assert turns(openai_server) == 3
        endpoint.down, endpoint.turns_limited = False, True  # the probe passes, turns get 429
        await p.advance(20 * 60)
        await p.settle()
        retried = turns(openai_server) - 3
        assert 1 <= retried <= 20  # one customer at a time, never the whole burst each pass
        for phone in (ANA, BOB, CAROL):
            assert p.texts_to(phone) == [failure]  # a failed retry sends nothing
        endpoint.turns_limited = False
        await p.advance(31 * 60)  # the longest wait between two retries
        await p.settle()
        for phone in (ANA, BOB, CAROL):
            assert p.texts_to(phone) == [failure, f"OK: hola, soy {phone[-4:]}"]
        assert await p.app.unit.customers.journal_count(tenant, START, "answered") == 3
        done = turns(openai_server)
        await p.advance(6 * 3600)
        assert turns(openai_server) == done


async def test_a_probe_answered_only_with_a_tool_call_is_not_a_recovery(
        db_url, tmp_path, openai_server, tenant):
    endpoint = openai_server.responder = Endpoint()
    async with pipeline(settings_for(db_url, tmp_path, openai_server, tenant)) as p:
        await p.say(ANA, "¿dónde está mi pedido?")
        await p.settle()
        endpoint.down, endpoint.probe_in_tools = False, True
        await p.advance(10 * 60)
        await p.settle()
        assert turns(openai_server) == 1  # not retried: the model did not answer in words
        endpoint.probe_in_tools = False
        await p.advance(60)
        await p.settle()
        assert p.texts_to(ANA)[-1] == "OK: ¿dónde está mi pedido?"


async def test_retries_end_at_the_age_limit(db_url, tmp_path, openai_server, tenant):
    endpoint = openai_server.responder = Endpoint()
    settings = settings_for(db_url, tmp_path, openai_server, tenant, max_age_hours=1)
    async with pipeline(settings) as p:
        await p.say(ANA, "hola")
        await p.settle()
        endpoint.down, endpoint.turns_limited = False, True
        await p.advance(3600)
        await p.settle()
        tried = turns(openai_server)
        assert tried > 2  # retried more than once
        await p.advance(6 * 3600)
        assert turns(openai_server) == tried
        assert len(p.texts_to(ANA)) == 1


async def test_the_doctor_flags_an_endpoint_that_answers_without_words(
        tmp_path, openai_server, tenant):
    settings = make_settings(f"sqlite:///{tmp_path / 'w.db'}", tmp_path, openai_server, tenant)
    openai_server.tool_call("lookup", {})
    tools_only = await check_llm(settings, 3.0)
    assert not tools_only.ok and "only tool calls" in tools_only.detail
    openai_server.reply("")
    empty = await check_llm(settings, 3.0)
    assert not empty.ok and "no text" in empty.detail
    good = await check_llm(settings, 3.0)
    assert good.ok, good.detail
