"""The daily token cap ghosted a customer (issue #16.3): messages over it were dropped,
background memory work counted against the customer, tool definitions were not counted
where usage is estimated, and `wabot status` did not show who was at the cap. Now capped
messages are kept (stored in history, journaled `capped`) and answered once the cap allows;
memory work is a business line; estimates include the tools; status shows the cap."""

from __future__ import annotations

import json

from bot.agents.prompt import RULES, prompt_tokens
from bot.models import CustomerKey, Role
from bot.ops.status import format_status, read_status
from bot.pipeline.inbox import Fed
from bot.pipeline.later.instructions import AFTER_CAP
from bot.stores.customers import utc_day
from bot.stores.usage_lines import LINES, MEMORY
from tests.fakes.pipeline import START, make_settings, pipeline

ANA = "+5215512345678"


def turn_requests(server) -> list[dict]:
    return [b for b in server.chat_requests() if RULES in b["messages"][0]["content"]]


async def test_capped_messages_are_kept_and_answered_once_the_owner_raises_the_cap(
        db_url, tmp_path, openai_server, tenant):
    settings = make_settings(db_url, tmp_path, openai_server, tenant,
                             presenter={"enabled": False}, limits={"daily_tokens": 30})
    async with pipeline(settings) as p:
        for text in ("one", "two"):
            await p.say(ANA, text)
            await p.settle()
        assert await p.app.unit.inbox.feed(p.message(ANA, "three")) is Fed.CAPPED
        assert await p.app.unit.inbox.feed(p.message(ANA, "four")) is Fed.CAPPED
        await p.advance(120)  # the revisit finds them still over the cap
        history = await p.app.unit.memory.recent(CustomerKey(tenant, ANA), 20)
        assert [m.text for m in history if m.role is Role.CUSTOMER][-2:] == ["three", "four"]
        report = format_status(await read_status(p.app.unit.db, p.app.settings, p.clock.now()))
        assert "1 customer(s) at their cap · 2 message(s) kept" in report
        assert len(turn_requests(openai_server)) == 2
    raised = make_settings(db_url, tmp_path, openai_server, tenant,
                           presenter={"enabled": False}, limits={"daily_tokens": 10_000})
    async with pipeline(raised) as p:  # the owner raised the cap and restarted
        await p.settle()
        assert p.texts_to(ANA) == ["OK: four"]  # both, in one late turn
        late = turn_requests(openai_server)[-1]
        said = [m["content"] for m in late["messages"] if m["role"] == "user"]
        assert said[-2:] == ["three", "four"]
        assert AFTER_CAP.split("{when}")[0] in late["messages"][0]["content"]
        assert await p.app.unit.customers.journal_count(tenant, START, "capped") == 0
        assert await p.app.unit.customers.journal_count(tenant, START, "answered") == 4
        history = await p.app.unit.memory.recent(CustomerKey(tenant, ANA), 20)
        assert [m.text for m in history if m.role is Role.CUSTOMER].count("three") == 1


async def test_memory_work_is_not_counted_against_the_customers_cap(
        db_url, tmp_path, openai_server, tenant):
    settings = make_settings(db_url, tmp_path, openai_server, tenant,
                             presenter={"enabled": False}, memory={"delay_seconds": 0})
    async with pipeline(settings) as p:
        await p.say(ANA, "my dog is called Rex")
        await p.settle()
        await p.app.unit.keeper.idle()
        assert len(openai_server.chat_requests()) == 2  # the turn, then insight extraction
        used = await p.app.unit.customers.usage_on(CustomerKey(tenant, ANA), utc_day(START))
        assert (used.tokens_in, used.tokens_out) == (10, 5)  # the turn's own
        async with p.app.unit.db.connect() as conn:
            line = (await conn.execute(LINES.select().where(
                LINES.c.tenant == tenant, LINES.c.line == MEMORY))).mappings().one()
        assert (line["tokens_in"], line["tokens_out"]) == (10, 5)
        status = await read_status(p.app.unit.db, p.app.settings, p.clock.now())
        assert (status.tokens_in, status.tokens_out, status.memory_tokens) == (20, 10, 15)


async def test_without_reported_usage_the_estimate_counts_the_tool_definitions(
        db_url, tmp_path, openai_server, tenant):
    settings = make_settings(db_url, tmp_path, openai_server, tenant,
                             presenter={"enabled": False})
    openai_server.raw(json.dumps({  # some servers send no `usage`
        "id": "x", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "hello"}}]}))
    async with pipeline(settings) as p:
        await p.say(ANA, "hi")
        await p.settle()
        [turn] = turn_requests(openai_server)
        tools = len(json.dumps(turn["tools"])) // 3
        used = await p.app.unit.customers.usage_on(CustomerKey(tenant, ANA), utc_day(START))
        assert used.tokens_in >= tools + len(json.dumps(turn["messages"])) // 3
        assert used.tokens_out > 0


async def test_the_prompt_budget_leaves_room_for_the_tool_definitions(
        db_url, tmp_path, openai_server, tenant):
    settings = make_settings(db_url, tmp_path, openai_server, tenant,
                             presenter={"enabled": False}, inbox={"debounce_seconds": 0},
                             llm={"context_tokens": 2500, "history_tokens": 2400})
    async with pipeline(settings) as p:
        for i in range(60):  # a history far over the budget
            await p.say(ANA, f"message {i}: do you have the sneakers in another colour? "
                             "My sister wants a pair for her birthday next month")
            await p.settle()
            await p.advance(11)  # under the turns cap
        last = turn_requests(openai_server)[-1]
        sent = prompt_tokens(last["messages"]) + len(json.dumps(last["tools"])) // 3 + 4
        assert sent <= settings.llm.context_tokens
