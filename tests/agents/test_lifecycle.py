"""The customer lifecycle: which moves the agent may make, and the churn rule on the clock."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from loguru import logger

from bot.agents import lifecycle
from bot.agents.lifecycle import churn_silent, next_churn, run_churn_sweep, transition_error
from bot.agents.tools import TurnContext, set_stage
from bot.clock import VirtualClock
from bot.models import CustomerKey, Stage
from bot.stores.customers import Contact, CustomerStore
from bot.stores.db import Database
from bot.stores.memory_sql import SqlMemoryStore
from tests.fakes.pipeline import START, make_settings, pipeline

L, C, A, X = Stage.LEAD, Stage.CUSTOMER, Stage.ACTIVE_USER, Stage.CHURNED


@pytest.mark.parametrize(("current", "target", "reason", "allowed"), [
    (L, C, "bought the blue sneakers", True),
    (C, A, "third order this month", True),
    (L, A, "uses it daily, bought in the shop", True),
    (A, C, "stopped ordering regularly", True),
    (C, X, "said they are moving abroad", True),
    (X, C, "came back and ordered again", True),
    (X, L, "wrote again, has not bought", True),
    (L, X, "asked us never to write", True),
    (C, L, "changed their mind", False),  # a buyer cannot become a lead again
    (A, L, "whatever", False),
    (L, C, "", False),  # every change needs a reason
    (L, C, "ok", False),
    (C, C, "still a customer", True),  # no change, nothing to refuse
])
def test_which_moves_are_allowed(current, target, reason, allowed):
    assert (transition_error(current, target, reason) is None) is allowed


@pytest.fixture
async def stores(db_url):
    db = Database(db_url)
    await db.create_all()
    memory = SqlMemoryStore(db)
    await memory.start()
    try:
        yield CustomerStore(db), memory
    finally:
        await db.close()


async def test_the_agent_moves_the_stage_with_a_tool_and_the_history_keeps_why(stores, tenant):
    customers, memory = stores
    key = CustomerKey(tenant, "+5215512345678")
    await customers.touch(key, Contact(), START, inbound=1)
    ctx = TurnContext(key, START, Stage.LEAD, customers, memory)

    assert json.loads(await set_stage(ctx, {"stage": "customer", "reason": "bought sneakers"})) \
        == {"ok": True, "stage": "customer"}
    refused = json.loads(await set_stage(ctx, {"stage": "lead", "reason": "changed mind"}))
    assert "cannot become a lead" in refused["error"]
    assert "reason" in json.loads(await set_stage(ctx, {"stage": "active_user"}))["error"]
    assert "stage must be one of" in json.loads(
        await set_stage(ctx, {"stage": "vip", "reason": "big spender"}))["error"]
    ctx.now = START + timedelta(days=30)
    await set_stage(ctx, {"stage": "active_user", "reason": "orders every week"})

    customer = await customers.get(key)
    assert customer is not None and customer.stage == "active_user"
    history = (await memory.profile(key)).stages
    assert [(c.from_stage, c.to_stage, c.reason) for c in history] == [
        (L, C, "bought sneakers"), (C, A, "orders every week")]
    assert history[1].at == START + timedelta(days=30)


async def test_the_churn_rule_marks_long_silent_customers_only(stores, tenant):
    customers, memory = stores
    now = START + timedelta(days=365)

    async def customer(phone, last_inbound_days_ago, stage=Stage.LEAD, *, inbound=True,
                       tenant_=tenant):
        key = CustomerKey(tenant_, phone)
        await customers.touch(key, Contact(), now - timedelta(days=last_inbound_days_ago),
                              inbound=int(inbound))
        await customers.set_stage(key, stage)
        return key

    silent = await customer("+15550000001", 100, Stage.CUSTOMER)
    recent = await customer("+15550000002", 10, Stage.ACTIVE_USER)
    gone = await customer("+15550000003", 200, Stage.CHURNED)
    never_wrote = await customer("+15550000004", 120, inbound=False)  # we wrote first
    elsewhere = await customer("+15550000005", 100, tenant_=tenant + "x")

    marked = await churn_silent(customers, memory, tenant, now, after_days=90)

    assert sorted(k.phone for k in marked) == [silent.phone, never_wrote.phone]
    for key, stage in ((silent, X), (recent, A), (gone, X), (never_wrote, X), (elsewhere, L)):
        found = await customers.get(key)
        assert found is not None and found.stage == stage.value, key
    change = (await memory.profile(silent)).stages
    assert [(c.from_stage, c.to_stage, c.reason, c.at) for c in change] == [
        (C, X, "silent for 100 days", now)]
    assert (await memory.profile(gone)).stages == []
    assert (await memory.profile(elsewhere)).stages == []
    assert await churn_silent(customers, memory, tenant, now, after_days=90) == []  # once only
    await customers.forget(elsewhere)


async def test_the_churn_sweep_pages_through_any_number_of_customers(stores, tenant,
                                                                     monkeypatch):
    customers, memory = stores
    monkeypatch.setattr(lifecycle, "SWEEP_PAGE", 2)
    for i in range(5):
        await customers.touch(CustomerKey(tenant, f"+1555000010{i}"), Contact(), START,
                              inbound=1)
    marked = await churn_silent(customers, memory, tenant, START + timedelta(days=91), 90)
    assert len(marked) == 5


async def test_the_next_churn_is_when_the_longest_silent_customer_passes_the_days(
        stores, tenant):
    customers, memory = stores
    days, second = timedelta(days=90), timedelta(seconds=1)
    ana, bob = CustomerKey(tenant, "+15550001"), CustomerKey(tenant, "+15550002")
    assert await next_churn(customers, tenant, START, 90) == START + days + second  # a new one
    await customers.touch(ana, Contact(), START, inbound=1)
    await customers.touch(bob, Contact(), START + timedelta(days=3), inbound=1)
    assert await next_churn(customers, tenant, START + timedelta(days=5), 90) \
        == START + days + second
    assert await churn_silent(customers, memory, tenant, START + days, 90) == []
    assert await churn_silent(customers, memory, tenant, START + days + second, 90) == [ana]
    assert await next_churn(customers, tenant, START + days, 90) \
        == START + timedelta(days=3) + days + second


async def test_the_sweep_wakes_only_when_someone_can_churn(stores, tenant):
    customers, memory = stores
    clock = VirtualClock(START)
    ana = CustomerKey(tenant, "+15550001")
    await customers.touch(ana, Contact(), START, inbound=1)
    sweep = asyncio.create_task(run_churn_sweep(customers, memory, clock, tenant, 2, 3600),
                                name="churn-sweep")
    try:
        await clock.advance(2 * 86400, {sweep})
        assert (await customers.get(ana)).stage == "lead" and not clock.woken
        await clock.advance(1, {sweep})
        assert (await customers.get(ana)).stage == "churned"
        await clock.advance(30 * 86400, {sweep})  # nobody left to churn: a new customer's days
        assert clock.woken["churn-sweep"] <= 1 + 30 // 2  # not 24 a day
        # The agent moves a long-silent customer back: the next sweep on the interval
        # looks again, as it did when the sweep ran every interval.
        await customers.set_stage(ana, Stage.LEAD)
        await clock.advance(3600, {sweep})
        assert (await customers.get(ana)).stage == "churned"
    finally:
        sweep.cancel()


async def test_the_daemon_sweeps_on_its_clock_and_the_agent_sees_the_new_stage(
        db_url, tmp_path, openai_server, tenant):
    settings = make_settings(db_url, tmp_path, openai_server, tenant,
                             agents={"sweep_seconds": 3600},
                             memory={"churn_after_days": 2, "churn_sweep_minutes": 60})
    lines: list[str] = []
    sink = logger.add(lines.append, level="INFO", format="{message}")
    try:
        async with pipeline(settings) as p:
            key = CustomerKey(tenant, "+5215512345678")
            await p.say(key.phone, "hola")
            await p.settle()
            # The sweep is a background task of the App: let it finish at every wake-up.
            sweep = {t for t in p.app.background if t.get_name() == "churn-sweep"}
            assert len(sweep) == 1
            await p.clock.advance(47 * 3600, sweep)
            assert (await p.app.unit.customers.get(key)).stage == "lead"
            await p.clock.advance(2 * 3600, sweep)  # silent for 2 days: the next sweep
            assert (await p.app.unit.customers.get(key)).stage == "churned"
            stages = (await p.app.unit.memory.profile(key)).stages
            assert [(c.to_stage, c.reason) for c in stages] == [(X, "silent for 2 days")]
            assert "customer marked churned: silent for 2 days" in "".join(lines)
            await p.say(key.phone, "I'm back!")
            await p.settle()
            system = openai_server.chat_requests()[-1]["messages"][0]["content"]
            assert "Lifecycle stage: churned" in system
    finally:
        logger.remove(sink)


async def test_the_churn_rule_can_be_switched_off(db_url, tmp_path, openai_server, tenant):
    settings = make_settings(db_url, tmp_path, openai_server, tenant,
                             agents={"sweep_seconds": 30 * 86400},
                             memory={"churn_after_days": 0},
                             # a journal pass an hour, not a minute: 400 virtual days of
                             # minutes took a minute of real time
                             retry={"probe_seconds": 3600})
    async with pipeline(settings) as p:
        key = CustomerKey(tenant, "+5215512345678")
        await p.say(key.phone, "hola")
        await p.settle()
        assert not {t for t in p.app.background if t.get_name() == "churn-sweep"}
        await p.advance(400 * 24 * 3600)
        assert (await p.app.unit.customers.get(key)).stage == "lead"
