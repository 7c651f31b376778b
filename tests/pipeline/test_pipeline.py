"""The customer-agent pipeline end to end: memory gateway, real stores, real openai client
against the fake OpenAI-wire server, on a virtual clock."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.agents.prompt import prompt_tokens
from bot.clock import VirtualClock
from bot.gateway.memory import MemoryGateway
from bot.models import CustomerKey, MemoryMessage, Role
from bot.pipeline.inbox import Fed
from tests.conftest import _postgres_url
from tests.fakes.pipeline import START, eventually, make_settings, pipeline

ANA = "+5215512345678"
BOB = "+14155550123"


@pytest.fixture(params=["sqlite", "postgres", pytest.param("mongo", marks=pytest.mark.mongo)])
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    """Where the pipeline keeps its data: SQLite, PostgreSQL, or SQLite with the agents'
    memory in MongoDB (a database of the test's own, dropped after)."""
    if request.param == "postgres":
        yield {"db_url": _postgres_url()}
        return
    sqlite = f"sqlite:///{tmp_path / 'wabot.db'}"
    if request.param == "sqlite":
        yield {"db_url": sqlite}
        return
    from pymongo import AsyncMongoClient

    url = request.getfixturevalue("mongodb_url")
    name = "wabot_test_" + uuid.uuid4().hex[:12]
    yield {"db_url": sqlite, "mongodb_url": url, "mongodb_database": name}
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
    await client.drop_database(name)
    await client.close()


@pytest.fixture
def db_url(stores: dict[str, Any]) -> str:
    return str(stores["db_url"])


@pytest.fixture
def settings_overrides(stores: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in stores.items() if k != "db_url"}  # MongoDB for the memory


def user_texts(body: dict) -> list[str]:
    return [m["content"] for m in body["messages"] if m["role"] == "user"]


def all_text(body: dict) -> str:
    return json.dumps(body["messages"], ensure_ascii=False)


async def test_a_reply_reaches_the_customer_like_a_person(settings, openai_server):
    openai_server.reply("Hola Ana!\n\nWe have the blue one in sizes 22 to 30.")
    async with pipeline(settings) as p:
        await p.say(ANA, "hola", push_name="Ana")
        await p.settle()
        actions = [o.action for o in p.gateway.sent]
        assert p.texts_to(ANA) == ["Hola Ana!", "We have the blue one in sizes 22 to 30."]
        assert actions[0] == "read" and actions[1] == "composing" and actions[-1] == "paused"
        first_send = next(o for o in p.gateway.sent if o.action == "text")
        assert first_send.at is not None and first_send.at > START  # typed, not instant
        customer = await p.app.unit.customers.get(CustomerKey(settings.tenant, ANA))
        assert customer is not None and customer.name == "Ana" and customer.msgs_out == 2


async def test_one_agent_per_customer_under_50_concurrent_first_messages(settings):
    async with pipeline(settings) as p:
        msgs = [p.message(ANA, f"message {i}") for i in range(50)]
        msgs += [p.message(f"+1415555{i:04d}", "hi") for i in range(50)]
        results = await asyncio.gather(*(p.app.unit.inbox.feed(m) for m in msgs))
        assert results.count(Fed.QUEUED) == 100
        await p.settle()
        created = [phone for event, phone in p.events if event == "agent_created"]
        assert created.count(ANA) == 1
        assert len(created) == 51
        assert len(p.texts_to(ANA)) == 1  # the burst was one turn
        rows = await p.app.unit.customers.all(settings.tenant)
        assert len(rows) == 51


async def test_single_flight_creation_when_loads_race(settings):
    async with pipeline(settings) as p:
        key = CustomerKey(settings.tenant, ANA)

        async def use() -> int:
            async with p.app.unit.registry.use(key) as agent:
                return id(agent)

        ids = await asyncio.gather(*(use() for _ in range(50)))
        assert len(set(ids)) == 1
        assert p.events == [("agent_created", ANA)]


async def test_idle_agent_is_evicted_and_reloads_with_full_context(settings, openai_server):
    async with pipeline(settings) as p:
        await p.say(ANA, "my dog is called Pixel")
        await p.settle()
        await p.advance(29 * 60)
        assert CustomerKey(settings.tenant, ANA) in p.app.unit.registry
        await p.advance(3 * 60)  # idle TTL is 30 min
        assert CustomerKey(settings.tenant, ANA) not in p.app.unit.registry
        assert ("agent_evicted", ANA) in p.events
        await p.say(ANA, "what is my dog called?")
        await p.settle()
        assert [e for e, _ in p.events] == ["agent_created", "agent_evicted", "agent_loaded"]
        # The turn's request (the memory pass may have asked the model after it).
        [*_, last] = [r for r in openai_server.chat_requests()
                      if "what is my dog called?" in user_texts(r)]
        assert user_texts(last) == ["my dog is called Pixel", "what is my dog called?"]
        assert "OK: my dog is called Pixel" in all_text(last)  # the agent's own reply too


@pytest.fixture
def instant(stores, tmp_path, openai_server, tenant):
    """Settings with no debounce and no presentation delays: turns start at once, so a
    test can hold the model's answer without moving the clock."""
    return make_settings(**stores, state_dir=tmp_path, server=openai_server, tenant=tenant,
                         presenter={"enabled": False}, inbox={"debounce_seconds": 0})


async def test_agent_is_never_evicted_during_a_turn(instant, openai_server):
    gate = openai_server.hold()
    async with pipeline(instant) as p:
        await p.say(ANA, "hello")
        await gate.wait_arrived()
        p.app.unit.registry.idle_seconds = 0
        assert p.app.unit.registry.sweep() == 0
        gate.release()
        await p.settle()
        # Out of its turn it can go, and goes: the sweeper was waiting for that.
        assert CustomerKey(p.settings.tenant, ANA) not in p.app.unit.registry
        assert ("agent_evicted", ANA) in p.events


async def test_a_burst_becomes_one_turn(settings, openai_server):
    async with pipeline(settings) as p:
        await p.say(ANA, "hi")
        await p.advance(0.7)
        await p.say(ANA, "I want")
        await p.advance(0.7)
        await p.say(ANA, "the blue one")
        await p.settle()
        requests = openai_server.chat_requests()
        assert len(requests) == 1
        assert user_texts(requests[0]) == ["hi", "I want", "the blue one"]
        assert p.texts_to(ANA) == ["OK: the blue one"]



async def test_messages_of_one_chat_are_handled_in_order(instant, openai_server):
    gate = openai_server.hold()
    async with pipeline(instant) as p:
        await p.say(ANA, "first")
        await gate.wait_arrived()  # the first turn is waiting on the model
        await p.say(ANA, "second")
        chat = p.app.unit.chats._chats[CustomerKey(instant.tenant, ANA)]
        assert [m.text for m in chat.pending] == ["second"]  # queued behind the turn
        assert len(openai_server.chat_requests()) == 1
        gate.release()
        await p.settle()
        assert p.texts_to(ANA) == ["OK: first", "OK: second"]
        second = [(m["role"], m["content"]) for m in openai_server.chat_requests()[1]["messages"]]
        assert second[1:] == [("user", "first"), ("assistant", "OK: first"), ("user", "second")]


async def test_chats_run_concurrently(instant, openai_server):
    gate = openai_server.hold(match="slow")
    async with pipeline(instant) as p:
        await p.say(ANA, "slow question")
        await gate.wait_arrived()
        await p.say(BOB, "quick question")
        await eventually(lambda: p.texts_to(BOB) == ["OK: quick question"])
        assert p.texts_to(ANA) == []
        gate.release()
        await p.settle()
        assert p.texts_to(ANA) == ["OK: slow question"]


async def test_a_duplicate_message_id_is_answered_once(settings, openai_server):
    async with pipeline(settings) as p:
        assert await p.app.unit.inbox.feed(p.message(ANA, "hello", msg_id="WA1")) is Fed.QUEUED
        await p.settle()
        assert await p.app.unit.inbox.feed(p.message(ANA, "hello", msg_id="WA1")) is Fed.DUPLICATE
        await p.settle()
        assert p.texts_to(ANA) == ["OK: hello"]
        assert len(openai_server.chat_requests()) == 1


async def test_a_message_left_unanswered_by_a_crash_is_answered_after_restart(
        settings, openai_server):
    clock = VirtualClock(START)
    gateway = MemoryGateway(clock)
    async with pipeline(settings, clock=clock, gateway=gateway) as p:
        await p.say(ANA, "are you open today?")
        # The process dies inside the debounce window: no graceful stop, nothing answered.
        for task in list(p.app.unit.inbox.tasks):
            task.cancel()
        await asyncio.gather(*p.app.unit.inbox.tasks, return_exceptions=True)
        assert gateway.texts() == []
    async with pipeline(settings, clock=clock, gateway=gateway) as p2:
        await p2.settle()
        assert p2.texts_to(ANA) == ["OK: are you open today?"]
    async with pipeline(settings, clock=clock, gateway=gateway) as p3:
        await p3.settle()  # a third start finds nothing left to answer
        assert p3.texts_to(ANA) == ["OK: are you open today?"]


async def test_one_customers_text_never_reaches_another_customers_request(
        settings, openai_server):
    async with pipeline(settings) as p:
        for i in range(3):
            await p.say(ANA, f"ana-secret-{i}")
            await p.say(BOB, f"bob-secret-{i}")
            await p.advance(5)
        await p.settle()
        requests = openai_server.chat_requests()
        assert len(requests) == 6
        for body in requests:
            text = all_text(body)
            assert ("ana-secret" in text) != ("bob-secret" in text)


async def test_an_llm_failure_on_one_customer_leaves_the_others_answered(
        settings, openai_server):
    openai_server.error(500, match="boom")
    settings.llm.timeout = 1  # the client's timeout, not the 5 s of the other tests
    openai_server.hang(30, match="slow")  # longer than the client's timeout
    async with pipeline(settings) as p:
        await p.say(ANA, "boom")
        await p.say(BOB, "hello")
        await p.say("+447700900123", "slow")
        await p.settle()
        failure = p.app.settings.agents.failure_reply
        assert p.texts_to(ANA) == [failure]
        assert p.texts_to(BOB) == ["OK: hello"]
        assert p.texts_to("+447700900123") == [failure]
        await p.say(ANA, "are you back?")
        await p.settle()
        assert p.texts_to(ANA)[-1] == "OK: are you back?"
        assert p.app.unit.chats.failures == 2


async def test_a_failed_send_is_recorded_and_the_daemon_carries_on(settings):
    async with pipeline(settings) as p:
        p.gateway.fail_sends = True
        await p.say(ANA, "hello")
        await p.settle()
        p.gateway.fail_sends = False
        await p.say(BOB, "hello")
        await p.settle()
        assert p.texts_to(BOB) == ["OK: hello"]
        assert p.app.unit.chats.failures == 1


async def test_a_5000_message_history_keeps_the_prompt_within_budget(settings, openai_server):
    async with pipeline(settings) as p:
        key = CustomerKey(settings.tenant, ANA)
        history = [MemoryMessage(Role.CUSTOMER if i % 2 else Role.AGENT,
                                 f"message number {i} " + "blah " * 30, START)
                   for i in range(5000)]
        for i in range(0, 5000, 500):
            await p.app.unit.memory.append(key, history[i:i + 500])
        await p.say(ANA, "and one more")
        await p.settle()
        body = openai_server.chat_requests()[-1]
        assert prompt_tokens(body["messages"]) <= settings.llm.context_tokens
        assert user_texts(body)[-1] == "and one more"
        assert "message number 4999" in all_text(body)
        assert "message number 10 " not in all_text(body)


async def test_tool_calls_remember_facts_and_move_the_stage(settings, openai_server):
    openai_server.tool_call("remember_fact", {"key": "dog_name", "value": "Pixel"},
                            ("set_stage", {"stage": "customer", "reason": "bought sneakers"}))
    openai_server.reply("Noted!")
    async with pipeline(settings) as p:
        await p.say(ANA, "I bought the sneakers, my dog Pixel loves them")
        await p.settle()
        key = CustomerKey(settings.tenant, ANA)
        profile = await p.app.unit.memory.profile(key)
        customer = await p.app.unit.customers.get(key)
        assert profile.facts["dog_name"].value == "Pixel"
        assert customer is not None and customer.stage == "customer"
        assert [c.to_stage.value for c in profile.stages] == ["customer"]
        assert p.texts_to(ANA) == ["Noted!"]
        tool_msgs = [m for m in openai_server.chat_requests()[1]["messages"]
                     if m["role"] == "tool"]
        assert len(tool_msgs) == 2 and all('"ok": true' in m["content"] for m in tool_msgs)


async def test_unsupported_and_empty_messages_have_a_defined_outcome(settings, openai_server):
    from bot.models import MessageKind

    async with pipeline(settings) as p:
        assert await p.app.unit.inbox.feed(p.message(ANA, "   ")) is Fed.IGNORED
        assert await p.app.unit.inbox.feed(
            p.message(ANA, "", kind=MessageKind.REACTION)) is Fed.IGNORED
        assert await p.app.unit.inbox.feed(
            p.message(ANA, "", kind=MessageKind.STICKER)) is Fed.QUEUED
        await p.settle()
        assert "sticker" in user_texts(openai_server.chat_requests()[0])[0]
        huge = "x" * 100_000 + "\u202e\u0000 emoji 🎉"
        await p.say(BOB, huge)
        await p.settle()
        sent = user_texts(openai_server.chat_requests()[-1])[-1]
        assert len(sent) <= settings.inbox.max_text_chars + 40
        assert sent.endswith("[message truncated]")
