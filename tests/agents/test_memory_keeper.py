"""Memory that lasts: the rolling summary and insight extraction, in the background, through
the whole pipeline (memory gateway, real stores, fake OpenAI-wire server, virtual clock)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest

from bot.agents.memory_keeper import (
    INSIGHTS_MARKER,
    SUMMARY_MARKER,
    MemoryKeeper,
    fact_key,
    fresh_facts,
    parse_facts,
)
from bot.agents.prompt import prompt_tokens
from bot.models import CustomerKey, MemoryMessage, Role
from bot.ops.status import read_status
from bot.settings import MemorySettings
from bot.stores.memory_base import Fact
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.pipeline import START, Pipeline, eventually, make_settings, pipeline

ANA = "+5215512345678"
BOB = "+14155550123"
UNCAPPED = {"turns_per_minute": 10_000, "messages_per_minute": 10_000, "daily_tokens": 0}


def memory_settings(db_url: str, tmp_path: Path, server: FakeOpenAI, tenant: str,
                    **memory: Any):
    """No presentation delays, debounce or rate caps (the virtual clock hardly moves), and
    memory work right after each turn."""
    return make_settings(db_url, tmp_path, server, tenant, presenter={"enabled": False},
                         inbox={"debounce_seconds": 0}, limits=UNCAPPED,
                         memory={"delay_seconds": 0, **memory})


def system_of(body: dict) -> str:
    return body["messages"][0]["content"]


def turns(server: FakeOpenAI) -> list[dict]:
    """The chat requests of customer turns (not the background memory work)."""
    return [b for b in server.chat_requests()
            if SUMMARY_MARKER not in system_of(b) and INSIGHTS_MARKER not in system_of(b)]


def summaries(server: FakeOpenAI) -> list[dict]:
    return [b for b in server.chat_requests() if SUMMARY_MARKER in system_of(b)]


def insight_calls(server: FakeOpenAI) -> list[dict]:
    return [b for b in server.chat_requests() if INSIGHTS_MARKER in system_of(b)]


def user_of(body: dict) -> str:
    return body["messages"][-1]["content"]


def chat_texts(body: dict) -> list[str]:
    return [m["content"] for m in body["messages"][1:]]


async def turn(p: Pipeline, phone: str, text: str) -> None:
    """One customer turn, then the memory work it triggered."""
    await p.say(phone, text)
    await p.settle()
    await p.app.unit.keeper.idle()



# --- a fake model that summarizes and extracts like a careful one would -------------------

DOG = re.compile(r"dog is called (\w+)")


def careful_model(body: dict) -> str:
    """Summaries keep the dog (from the previous summary or the new messages) and count the
    rounds; insights find the dog in new customer lines; turns echo."""
    system, user = system_of(body), user_of(body)
    if SUMMARY_MARKER in system:
        rounds = re.search(r"Round (\d+)\.", user)
        n = int(rounds.group(1)) + 1 if rounds else 1
        dogs = sorted(set(DOG.findall(user)))
        kept = " ".join(f"The customer's dog is called {d}." for d in dogs)
        return f"Round {n}. {kept} They chatted about products.".replace("  ", " ")
    if INSIGHTS_MARKER in system:
        new = user.partition("New messages")[2]
        found = [m for m in DOG.findall(new)]
        return json.dumps({"facts": [{"key": "dog_name", "value": d, "category": "detail"}
                                     for d in found[-1:]]})
    said = [m["content"] for m in body["messages"] if m["role"] == "user"]
    return "OK: " + (said[-1][:200] if said else "welcome!")


# --- the rolling summary -------------------------------------------------------------------


async def test_a_summary_folds_the_oldest_messages_and_the_prompt_reads_after_it(
        db_url, tmp_path, openai_server, tenant):
    openai_server.responder = careful_model
    settings = memory_settings(db_url, tmp_path, openai_server, tenant, insights=False,
                               summarize_after_messages=6, keep_recent_messages=2)
    async with pipeline(settings) as p:
        key = CustomerKey(tenant, ANA)
        await turn(p, ANA, "hello, my dog is called Pixel")
        for i in range(2, 11):
            await turn(p, ANA, f"question number {i}")
        profile = await p.app.unit.memory.profile(key)
        assert profile.summarized_upto > 0
        assert await p.app.unit.memory.count(key, after_seq=profile.summarized_upto) <= 6
        assert "dog is called Pixel" in profile.summary
        # Rolling: each summary request carries the previous summary.
        calls = summaries(openai_server)
        assert len(calls) >= 3
        assert "Previous summary:\n(none yet)" in user_of(calls[0])
        assert "Round 1." in user_of(calls[1])
        await p.say(ANA, "what is my dog called?")
        await p.settle()
        last = turns(openai_server)[-1]
        assert "Summary of your earlier conversations:" in system_of(last)
        assert "dog is called Pixel" in system_of(last)
        assert "hello, my dog is called Pixel" not in chat_texts(last)  # folded, not repeated
        assert chat_texts(last)[-1] == "what is my dog called?"
        assert prompt_tokens(last["messages"]) <= settings.llm.context_tokens


async def test_few_but_long_messages_are_folded_before_they_fall_out_of_the_window(
        db_url, tmp_path, openai_server, tenant):
    openai_server.responder = careful_model
    settings = memory_settings(db_url, tmp_path, openai_server, tenant, insights=False,
                               summarize_after_messages=40, keep_recent_messages=2)
    async with pipeline(settings) as p:
        key = CustomerKey(tenant, ANA)
        await p.app.unit.memory.append(key, [
            MemoryMessage(Role.CUSTOMER, f"long story {i}: " + "words " * 600, START)
            for i in range(6)])  # 6 messages, far under 40, ~7,000 estimated tokens
        await turn(p, ANA, "so, what do you think?")
        profile = await p.app.unit.memory.profile(key)
        assert summaries(openai_server)
        assert profile.summarized_upto >= 5  # all but the newest few


async def test_the_summary_is_kept_within_its_budget(db_url, tmp_path, openai_server, tenant):
    long_summary = "The customer said many things. " * 400  # ~12,000 characters
    openai_server.reply(long_summary, match=SUMMARY_MARKER)
    openai_server.reply("Short: likes blue sneakers.", match="Shorten this summary")
    settings = memory_settings(db_url, tmp_path, openai_server, tenant, insights=False,
                               summarize_after_messages=4, keep_recent_messages=2,
                               summary_tokens=200)
    assert len(long_summary) > 3 * 200
    async with pipeline(settings) as p:
        for i in range(3):
            await turn(p, ANA, f"line {i}")
        profile = await p.app.unit.memory.profile(CustomerKey(tenant, ANA))
        assert profile.summary == "Short: likes blue sneakers."
        assert len(summaries(openai_server)) == 2  # the summary, then the shortening


async def test_summary_and_insight_tokens_count_to_the_business_not_the_customer(
        db_url, tmp_path, openai_server, tenant):
    # issue #16.3: counted against the customer, they brought the daily cap ~17% closer.
    openai_server.responder = careful_model
    settings = memory_settings(db_url, tmp_path, openai_server, tenant,
                               summarize_after_messages=4, keep_recent_messages=2)
    async with pipeline(settings) as p:
        for i in range(3):
            await turn(p, ANA, f"my dog is called Rex{i}")
        customer = await p.app.unit.customers.get(CustomerKey(tenant, ANA))
        calls = len(openai_server.chat_requests())
        assert calls > 3  # turns plus background calls
        assert customer is not None and customer.tokens_in == 10 * 3  # fake usage: 10/5
        assert customer.tokens_out == 5 * 3
        status = await read_status(p.app.unit.db, p.app.settings, p.clock.now())
        assert status.memory_tokens == 15 * (calls - 3)
        assert (status.tokens_in, status.tokens_out) == (10 * calls, 5 * calls)


# --- never in the way of a reply -------------------------------------------------------------


@pytest.mark.parametrize("marker", [SUMMARY_MARKER, INSIGHTS_MARKER],
                         ids=["summary", "insights"])
async def test_replies_flow_while_memory_work_is_held(db_url, tmp_path, openai_server, tenant,
                                                     marker):
    openai_server.responder = careful_model
    gate = openai_server.hold(match=marker)
    settings = memory_settings(db_url, tmp_path, openai_server, tenant,
                               summarize_after_messages=4, keep_recent_messages=2)
    async with pipeline(settings) as p:
        key = CustomerKey(tenant, ANA)
        for i in range(3):
            await p.say(ANA, f"my dog is called Rex{i}")
            await p.settle()
        await gate.wait_arrived()  # the background call is stuck at the model
        for i in range(3, 8):
            await p.say(ANA, f"still there? {i}")
            await eventually(lambda i=i: p.texts_to(ANA)[-1:] == [f"OK: still there? {i}"])
        await p.say(BOB, "hello")
        await eventually(lambda: p.texts_to(BOB) == ["OK: hello"])
        assert len(p.texts_to(ANA)) == 8
        gate.release()
        await p.app.unit.keeper.idle()
        profile = await p.app.unit.memory.profile(key)
        if marker == SUMMARY_MARKER:
            assert profile.summarized_upto > 0
        else:
            assert profile.facts["dog_name"].value == "Rex2"


async def test_triggers_while_a_pass_runs_coalesce_into_one_more_pass(
        db_url, tmp_path, openai_server, tenant):
    openai_server.responder = careful_model
    gate = openai_server.hold(match=INSIGHTS_MARKER)
    settings = memory_settings(db_url, tmp_path, openai_server, tenant)
    async with pipeline(settings) as p:
        await p.say(ANA, "my dog is called Rex")
        await p.settle()
        await gate.wait_arrived()
        for i in range(5):
            await p.say(ANA, f"more {i}")
            await p.settle()
        assert len(p.app.unit.keeper.tasks) == 1
        gate.release()
        await p.app.unit.keeper.idle()
        assert len(insight_calls(openai_server)) == 2  # the held pass and one for the rest
        assert "more 4" in user_of(insight_calls(openai_server)[1])


async def test_a_failing_memory_call_is_contained(db_url, tmp_path, openai_server, tenant):
    openai_server.error(500, match=SUMMARY_MARKER)
    openai_server.reply("not json at all", match=INSIGHTS_MARKER)
    settings = memory_settings(db_url, tmp_path, openai_server, tenant,
                               summarize_after_messages=4, keep_recent_messages=2)
    async with pipeline(settings) as p:
        for i in range(4):
            await turn(p, ANA, f"hello {i}")
        assert p.texts_to(ANA) == [f"OK: hello {i}" for i in range(4)]
        assert p.app.unit.chats.failures == 0
        profile = await p.app.unit.memory.profile(CustomerKey(tenant, ANA))
        assert profile.summarized_upto > 0  # the next trigger summarized after the failure


async def test_stop_does_not_wait_for_work_still_in_its_delay(
        db_url, tmp_path, openai_server, tenant):
    settings = make_settings(db_url, tmp_path, openai_server, tenant,
                             presenter={"enabled": False}, inbox={"debounce_seconds": 0},
                             limits=UNCAPPED)
    loop = asyncio.get_running_loop()
    async with pipeline(settings) as p:
        await p.say(ANA, "hello")
        await p.settle()
        assert len(p.app.unit.keeper.tasks) == 1  # waiting out memory.delay_seconds
        stopping = loop.time()
    assert loop.time() - stopping < settings.memory.stop_grace_seconds
    assert not p.app.unit.keeper.tasks
    assert insight_calls(openai_server) == []


# --- insights --------------------------------------------------------------------------------


async def test_insights_merge_into_the_profile_without_duplicates(
        db_url, tmp_path, openai_server, tenant):
    openai_server.reply({"facts": [
        {"key": "Dog Name", "value": "Pixel", "category": "detail"},
        {"key": "shoe size", "value": "38", "category": "preference"},
        {"key": "objection", "value": "shipping is too slow", "category": "objection"},
    ]}, match=INSIGHTS_MARKER)
    openai_server.reply({"facts": [
        {"key": "dog_name", "value": " pixel ", "category": "detail"},  # the same fact
        {"key": "shoe_size", "value": "39", "category": "preference"},  # updated
        {"key": "bought", "value": "blue sneakers", "category": "purchase"},
        {"key": "", "value": "nameless", "category": "detail"},  # malformed: skipped
    ]}, match=INSIGHTS_MARKER)
    settings = memory_settings(db_url, tmp_path, openai_server, tenant)
    async with pipeline(settings) as p:
        key = CustomerKey(tenant, ANA)
        await turn(p, ANA, "my dog Pixel chewed my size 38 shoes, shipping was slow")
        first = await p.app.unit.memory.profile(key)
        await p.advance(3600)
        await turn(p, ANA, "actually I'm a 39 now, and I bought the blue sneakers")
        profile = await p.app.unit.memory.profile(key)
        assert sorted(profile.facts) == ["bought", "dog_name", "objection", "shoe_size"]
        assert profile.facts["shoe_size"].value == "39"
        assert profile.facts["dog_name"].value == "Pixel"
        assert profile.facts["dog_name"].updated_at == first.facts["dog_name"].updated_at
        assert profile.facts["bought"].category == "purchase"
        calls = insight_calls(openai_server)
        assert len(calls) == 2
        assert calls[0]["response_format"]["type"] == "json_schema"
        assert calls[0]["response_format"]["json_schema"]["strict"] is True
        assert "- dog_name (detail): Pixel" in user_of(calls[1])  # known facts are shown
        assert "shoes" not in user_of(calls[1])  # only messages not read before
        await p.say(ANA, "thanks")
        await p.settle()
        system = system_of(turns(openai_server)[-1])
        assert '- "dog_name" ("detail"): "Pixel"' in system
        assert '- "shoe_size" ("preference"): "39"' in system


async def test_insights_run_every_n_turns(db_url, tmp_path, openai_server, tenant):
    openai_server.responder = careful_model
    settings = memory_settings(db_url, tmp_path, openai_server, tenant, insights_every_turns=3)
    async with pipeline(settings) as p:
        for i in range(7):
            await turn(p, ANA, f"message {i}")
        assert len(insight_calls(openai_server)) == 2
        assert "message 0" in user_of(insight_calls(openai_server)[0])
        assert "message 5" in user_of(insight_calls(openai_server)[1])


def test_fact_parsing_and_dedupe_are_pure():
    now = START
    found = parse_facts(json.dumps({"facts": [
        {"key": "Dog's Name!", "value": "  Pixel  ", "category": "detail"},
        {"key": "dog_s_name", "value": "Pixel", "category": "detail"},
        {"key": "city", "value": "Puebla", "category": "nonsense"},
        "not an object",
    ]}), now)
    assert [(f.key, f.value, f.category) for f in found] == [
        ("dog_s_name", "Pixel", "detail"), ("city", "Puebla", "detail")]
    assert parse_facts("{oops", now) == [] and parse_facts("[]", now) == []
    known = {"dog_s_name": Fact("dog_s_name", "pixel", "detail", now)}
    assert [f.key for f in fresh_facts(found, known)] == ["city"]
    by_tool = {"dog's_name": Fact("dog's_name", "Rex", "detail", now)}  # remember_fact's key
    assert [(f.key, f.value) for f in fresh_facts(found, by_tool)] == [
        ("dog's_name", "Pixel"), ("city", "Puebla")]
    assert fact_key("  Shoe Size (EU) ") == "shoe_size_eu"


# --- the acceptance test: a 5,000-message relationship ------------------------------------------


async def a_long_relationship(db_url: str, tmp_path: Path, server: FakeOpenAI, tenant: str,
                              messages: int) -> None:
    """`messages` (a multiple of 5) between Ana and her agent; the dog she names in message
    10 is long out of the prompt's window by the last one, which asks for it. The suite runs
    500; `python -m tests.bench.bench_memory_keeper` runs the 5,000 of the acceptance test."""
    server.responder = careful_model
    # Customers write in bursts (four lines, one answer): 5,000 messages in 1,001 turns.
    settings = memory_settings(db_url, tmp_path, server, tenant, insights_every_turns=5)
    settings.inbox.debounce_seconds = 1
    async with pipeline(settings) as p:
        key = CustomerKey(tenant, ANA)
        budget = settings.llm.context_tokens
        assert await p.app.unit.chats.proactive(key, "Welcome the customer.")  # message 1
        n, biggest = 1, 0
        while n < messages - 4:
            for i in range(n + 1, n + 5):
                await p.say(ANA, "by the way my dog is called Pixel" if i == 10 else
                            f"message {i}: do you have the sneakers in another colour? "
                            "I saw them on your page last week and my sister wants a pair")
            await p.settle()
            n += 5
            if n % (messages // 10) == 1:
                biggest = max(biggest, prompt_tokens(turns(server)[-1]["messages"]))
        await p.app.unit.keeper.idle()
        assert await p.app.unit.memory.count(key) == messages - 4
        for i in range(messages - 3, messages):
            await p.say(ANA, f"message {i}: one more thing")
        await p.say(ANA, "what is my dog called again?")  # the last message
        await p.settle()
        assert await p.app.unit.memory.count(key) == messages + 1  # and the agent's answer
        dog = (await p.app.unit.memory.oldest(key, 0, 10))[-1]
        assert dog.text == "by the way my dog is called Pixel"
        last = turns(server)[-1]
        assert chat_texts(last)[-1] == "what is my dog called again?"
        assert dog.text not in chat_texts(last)  # long out of the window…
        assert "dog is called Pixel" in system_of(last)  # …but in the summary
        assert '- "dog_name" ("detail"): "Pixel"' in system_of(last)  # and in the profile
        assert prompt_tokens(last["messages"]) <= budget
        assert 0 < biggest <= budget
        assert len(turns(server)) == messages // 5 + 1


async def test_a_500_message_relationship_keeps_the_prompt_bounded_and_the_dog_remembered(
        db_url, tmp_path, openai_server, tenant):
    # 500 messages are about three times the prompt budget and a dozen summary rounds.
    await a_long_relationship(db_url, tmp_path, openai_server, tenant, 500)


async def test_memory_keeper_can_be_driven_directly(db_url, tmp_path, openai_server, tenant):
    """The keeper on its own (no pipeline): what `wabot` tools or a backfill would use."""
    from bot.agents.agent import Budget
    from bot.clock import VirtualClock
    from bot.llm import LLM
    from bot.stores.customers import Contact, CustomerStore
    from bot.stores.db import Database
    from bot.stores.memory_sql import SqlMemoryStore

    openai_server.responder = careful_model
    db = Database(db_url)
    await db.create_all()
    memory = SqlMemoryStore(db)
    await memory.start()
    customers = CustomerStore(db)
    llm = LLM.from_settings(api_key="test", base_url=openai_server.base_url, model="fake-model",
                            timeout=5, max_retries=0, temperature=0, max_tokens=600)
    keeper = MemoryKeeper(memory, customers, llm, VirtualClock(START),
                          MemorySettings(delay_seconds=0, summarize_after_messages=10,
                                         keep_recent_messages=4, summary_rounds=2,
                                         summary_chunk_messages=10), Budget())
    key = CustomerKey(tenant, ANA)
    try:
        await customers.touch(key, Contact(), START, inbound=1)
        await memory.append(key, [MemoryMessage(Role.CUSTOMER, f"line {i}", START)
                                  for i in range(100)])
        assert await keeper.summarize(key) == 2  # a backlog is worked off over triggers
        assert (await memory.profile(key)).summarized_upto == (await memory.oldest(key, 0, 20))[-1].seq
        keeper.schedule(key)
        await keeper.idle()
        assert "Round 4." in (await memory.profile(key)).summary
    finally:
        await keeper.stop()
        await memory.forget(key)
        await customers.forget(key)
        await llm.close()
        await db.close()
