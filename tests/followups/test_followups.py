"""Proactive follow-ups: scheduled by the agent or by rules, persisted in APScheduler's job
store, re-checked when due, delivered like any reply. Virtual clock, no sleeping: jobs run
when the clock passes them, or the job function is called directly."""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from loguru import logger
from sqlalchemy import select

import tests.fakes.pipeline as pipeline_module
from bot.app import App
from bot.business import Business
from bot.clock import SystemClock, VirtualClock
from bot.followups import (
    SENT,
    FollowUp,
    JobTable,
    erase_tenant_followups,
    job_table_name,
    next_slot,
    parse_when,
    privacy_holder,
    run_followup,
    sending_hours,
)
from bot.gateway.memory import MemoryGateway
from bot.models import CustomerKey, Role
from bot.stores.customers import Contact
from bot.stores.memory_base import Fact
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.pipeline import START, make_settings, pipeline

ANA = "+5215512345678"
BOB = "+14155550123"
CAROL = "+447700900123"
MX = ZoneInfo("America/Mexico_City")
# Open every day, 09:00-19:00 in Mexico City; START is Monday 09:00 there.
DAILY = Business(name="Casa Azul", persona="Sofía, a shop assistant",
                 timezone="America/Mexico_City",
                 hours=dict.fromkeys(("mon", "tue", "wed", "thu", "fri", "sat", "sun"),
                                     "09:00-19:00"))
LEAD_RULE = {"name": "lead_silent", "stage": "lead", "after_hours": 24,
             "reason": "They asked about sneakers and went quiet: check in gently."}


@pytest.fixture(autouse=True)
def daily_business(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline_module, "BUSINESS", DAILY)


def settings_for(db_url: str, tmp_path: Path, server: FakeOpenAI, tenant: str,
                 **followups: Any):
    """No presentation delays and no debounce: turns run at once, on the virtual clock.
    No lifecycle rules unless a test gives some: these tests are about one follow-up."""
    followups.setdefault("rules", [])
    return make_settings(db_url, tmp_path, server, tenant, presenter={"enabled": False},
                         inbox={"debounce_seconds": 0}, followups=followups)


@pytest.fixture
def configure(db_url, tmp_path, openai_server, tenant):
    """Settings with these follow-up options; the tenant's job table is dropped after."""
    yield lambda **followups: settings_for(db_url, tmp_path, openai_server, tenant, **followups)
    erase_tenant_followups(db_url, tenant)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """What `settings_for` gives: no delays, no debounce, no lifecycle rules."""
    return {"presenter": {"enabled": False}, "inbox": {"debounce_seconds": 0},
            "followups": {"rules": []}}


@pytest.fixture
def logs() -> Iterator[list[str]]:
    seen: list[str] = []
    sink = logger.add(lambda m: seen.append(str(m)), level="INFO", format="{level} {message}")
    yield seen
    logger.remove(sink)


def due_args(key: CustomerKey, kind: str, reason: str, scheduled_at: datetime,
             due_at: datetime | None = None) -> dict[str, str]:
    return FollowUp(key.tenant, key.phone, kind, reason, scheduled_at,
                    due_at or scheduled_at).kwargs()


async def sent_rows(app: App) -> list[tuple[str, str]]:
    assert app.unit.followups is not None
    await app.unit.followups.idle()
    async with app.unit.db.engine.connect() as conn:
        rows = await conn.execute(select(SENT.c.phone, SENT.c.status)
                                  .where(SENT.c.tenant == app.settings.tenant))
        return [(r[0], r[1]) for r in rows]


# --- time ------------------------------------------------------------------------------------

NOW = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)  # Monday 09:00 in Mexico City


@pytest.mark.parametrize(("text", "expected"), [
    ("in 3 days", NOW + timedelta(days=3)),
    ("In 2 hours.", NOW + timedelta(hours=2)),
    ("in a week", NOW + timedelta(days=7)),
    ("in 30 minutes", NOW + timedelta(minutes=30)),
    ("en 3 días", NOW + timedelta(days=3)),
    ("dentro de 2 semanas", NOW + timedelta(days=14)),
    ("tomorrow", NOW + timedelta(days=1)),
    ("Mañana", NOW + timedelta(days=1)),
    ("next week", NOW + timedelta(days=7)),
    ("2026-01-10 12:30", datetime(2026, 1, 10, 12, 30, tzinfo=MX)),
    ("2026-01-10", datetime(2026, 1, 10, 10, 0, tzinfo=MX)),
    ("2026-01-10T12:30:00+00:00", datetime(2026, 1, 10, 12, 30, tzinfo=UTC)),
])
def test_follow_up_times_the_model_writes_are_understood(text, expected):
    assert parse_when(text, NOW, MX) == expected


@pytest.mark.parametrize("text", ["whenever", "in 3 fortnights", "after payday"])
def test_unreadable_times_are_explained(text):
    with pytest.raises(ValueError, match="write 'in 3 days'"):
        parse_when(text, NOW, MX)


def test_next_slot_keeps_open_times_and_moves_closed_ones_to_the_next_opening():
    hours = sending_hours(Business(name="x", timezone="America/Mexico_City",
                                   hours={"mon": "09:00-19:00", "wed": "10:00-14:00"}),
                          "09:00-20:00")
    spread = timedelta(minutes=7)
    monday_noon = datetime(2026, 1, 5, 12, 0, tzinfo=MX)
    assert next_slot(monday_noon, MX, hours, spread) == monday_noon
    monday_night = datetime(2026, 1, 5, 20, 0, tzinfo=MX)  # Tuesday is closed
    assert next_slot(monday_night, MX, hours, spread) == datetime(2026, 1, 7, 10, 7, tzinfo=MX)
    assert next_slot(monday_night, MX, {}, spread) is None
    # No hours in the profile: the configured window, every day.
    fallback = sending_hours(Business(name="x"), "09:00-20:00")
    assert len(fallback) == 7


def test_each_tenant_has_its_own_job_table():
    assert job_table_name("t1234") == "followup_jobs_t1234"
    odd = job_table_name("Shop-MX+52")
    assert odd.startswith("followup_jobs_shop_mx_52_") and odd != job_table_name("shop-mx+52")
    assert len(job_table_name("x" * 64)) <= 63  # PostgreSQL's identifier limit


# --- the agent's follow-up -------------------------------------------------------------------


async def test_a_follow_up_scheduled_by_the_agent_survives_a_restart_and_fires_once(
        settings, openai_server):
    openai_server.tool_call("schedule_follow_up",
                            {"when": "in 3 days", "reason": "ask whether size 26 fit"})
    openai_server.reply("Great choice! I'll check in with you in a few days.")
    clock = VirtualClock(START)
    gateway = MemoryGateway(clock)
    key = CustomerKey(settings.tenant, ANA)
    async with pipeline(settings, clock=clock, gateway=gateway) as p:
        await p.say(ANA, "I'll take the blue ones in size 26")
        await p.settle()
        [fu] = await p.app.unit.followups.pending(ANA)
        assert (fu.kind, fu.reason) == ("agent", "ask whether size 26 fit")
        assert fu.run_at == START + timedelta(days=3)
        tool_result = next(m for m in openai_server.chat_requests()[1]["messages"]
                       if m["role"] == "tool")["content"]
        assert '"ok": true' in tool_result and "Thursday 2026-01-08 09:00" in tool_result
    # The daemon restarts over the same database: the job is still in the store.
    openai_server.reply("Hi! Did the size 26 fit?", match="ask whether size 26 fit")
    async with pipeline(settings, clock=clock, gateway=gateway) as p2:
        assert [f.job_id for f in await p2.app.unit.followups.pending(ANA)] == [fu.job_id]
        await p2.advance(3 * 86400 - 60)
        assert p2.texts_to(ANA) == ["Great choice! I'll check in with you in a few days."]
        await p2.advance(120)
        assert p2.texts_to(ANA)[-1] == "Hi! Did the size 26 fit?"
        assert await p2.app.unit.followups.pending(ANA) == []
        await p2.advance(30 * 86400)
        assert p2.texts_to(ANA).count("Hi! Did the size 26 fit?") == 1
        history = await p2.app.unit.memory.recent(key, 10)
        assert (history[-1].role, history[-1].kind) == (Role.AGENT, "followup")
        assert await sent_rows(p2.app) == [(ANA, "sent")]


async def test_a_customer_reply_before_the_due_time_cancels_it(settings, openai_server):
    openai_server.tool_call("schedule_follow_up", {"when": "in 2 days", "reason": "payday"})
    openai_server.reply("Sure, talk after payday!")
    async with pipeline(settings) as p:
        await p.say(ANA, "I'll decide after payday")
        await p.settle()
        [fu] = await p.app.unit.followups.pending(ANA)
        await p.advance(86400)
        await p.say(ANA, "actually, do you have it in black?")
        await p.settle()
        assert await p.app.unit.followups.pending(ANA) == []  # cancelled by the reply
        # Even a stale copy that fires is re-checked and dropped.
        await run_followup(**fu.kwargs())
        await p.advance(3 * 86400)
        assert p.texts_to(ANA) == ["Sure, talk after payday!",
                                   "OK: actually, do you have it in black?"]
        assert p.app.unit.followups.outcomes["drop"] == 1


async def test_postpone_policy_pushes_it_back_after_the_reply(
        configure, openai_server):
    settings = configure(on_reply="postpone")
    async with pipeline(settings) as p:
        await p.say(ANA, "hello")
        await p.settle()
        key = CustomerKey(settings.tenant, ANA)
        await p.app.unit.followups.schedule(key, "agent", "check back", START + timedelta(days=2))
        await p.advance(86400)
        await p.say(ANA, "one more question")
        await p.settle()
        await p.advance(86400 + 60)  # the original due time passes
        [fu] = await p.app.unit.followups.pending(ANA)
        assert fu.run_at == START + timedelta(days=3)  # two days after the reply


async def test_out_of_hours_moves_it_to_the_next_slot_in_the_customers_timezone(
        settings, openai_server):
    openai_server.reply("Ana, quick check-in", match="ana's follow-up")
    async with pipeline(settings) as p:
        await p.say(ANA, "hola")
        await p.say(BOB, "hello")
        await p.settle()
        ana, bob = CustomerKey(settings.tenant, ANA), CustomerKey(settings.tenant, BOB)
        await p.app.unit.memory.merge_facts(bob, [Fact("timezone", "Europe/Madrid")])
        await p.advance(4 * 3600)  # 13:00 in Mexico City, 20:00 in Madrid
        now = p.clock.now()
        await run_followup(**due_args(ana, "agent", "ana's follow-up", now))
        await run_followup(**due_args(bob, "agent", "bob's follow-up", now))
        await p.settle()
        assert p.texts_to(BOB) == ["OK: hello"]  # not at 20:00 his time
        assert p.texts_to(ANA)[-1] == "Ana, quick check-in"  # 13:00 is open for her
        [moved] = await p.app.unit.followups.pending(BOB)
        madrid_open = datetime(2026, 1, 6, 9, 0, tzinfo=ZoneInfo("Europe/Madrid"))
        assert moved.run_at is not None
        assert madrid_open <= moved.run_at <= madrid_open + timedelta(minutes=20)
        assert moved.due_at == now  # a move keeps what it was meant for
        await p.advance((moved.run_at - p.clock.now()).total_seconds() + 1)
        assert len(p.texts_to(BOB)) == 2
        assert await p.app.unit.followups.pending(BOB) == []


async def test_caps_hold_per_customer_and_per_day(configure, openai_server):
    settings = configure(max_per_customer=1, max_per_day=2)
    async with pipeline(settings) as p:
        for phone in (ANA, BOB, CAROL):
            await p.say(phone, "hi")
        await p.settle()
        await p.advance(3600)
        now = p.clock.now()
        for phone in (ANA, BOB, CAROL):
            key = CustomerKey(settings.tenant, phone)
            assert await run_followup(**due_args(key, "agent", "checking in", now)) is None
        await p.settle()
        sent = sorted(phone for phone, status in await sent_rows(p.app) if status == "sent")
        assert sent == sorted([ANA, BOB])
        [tomorrow] = await p.app.unit.followups.pending(CAROL)
        assert tomorrow.run_at is not None
        assert tomorrow.run_at.astimezone(MX).date() == datetime(2026, 1, 6).date()
        # Ana already had her one follow-up this week: another is dropped.
        await run_followup(**due_args(CustomerKey(settings.tenant, ANA), "agent", "again",
                                      p.clock.now()))
        await p.settle()
        assert len(p.texts_to(ANA)) == 2
        assert p.app.unit.followups.outcomes["drop"] == 1


async def test_opted_out_and_paused_customers_are_never_messaged(settings, openai_server):
    async with pipeline(settings) as p:
        await p.say(ANA, "hi")
        await p.say(BOB, "hi")
        await p.settle()
        ana, bob = CustomerKey(settings.tenant, ANA), CustomerKey(settings.tenant, BOB)
        await p.app.unit.customers.set_opted_out(ana, True)
        pause_ends = p.clock.now() + timedelta(hours=2)
        await p.app.unit.customers.set_paused_until(bob, pause_ends)
        for key in (ana, bob):
            await p.app.unit.followups.schedule(key, "agent", "checking in",
                                           p.clock.now() + timedelta(seconds=1))
        await p.advance(60)
        assert p.texts_to(ANA) == ["OK: hi"]
        assert p.texts_to(BOB) == ["OK: hi"]  # paused: moved to when the pause ends
        [later] = await p.app.unit.followups.pending(BOB)
        assert later.run_at == pause_ends
        assert await p.app.unit.followups.pending(ANA) == []
        await p.advance(3 * 3600)
        assert len(p.texts_to(BOB)) == 2 and p.texts_to(ANA) == ["OK: hi"]


async def test_a_job_missed_while_down_runs_within_the_lateness_bound(
        settings, openai_server, logs):
    clock = VirtualClock(START)
    gateway = MemoryGateway(clock)
    async with pipeline(settings, clock=clock, gateway=gateway) as p:
        await p.say(ANA, "hi")
        await p.settle()
        key = CustomerKey(settings.tenant, ANA)
        await p.app.unit.followups.schedule(key, "agent", "checking in", START + timedelta(hours=1))
    await clock.advance(4 * 3600)  # wabot was down: 3 h late, the bound is 12 h
    async with pipeline(settings, clock=clock, gateway=gateway) as p2:
        await p2.settle()
        assert len(p2.texts_to(ANA)) == 2
        assert await p2.app.unit.followups.pending(ANA) == []
    line = next(x for x in logs if "while wabot was down" in x)
    assert line.startswith("INFO") and "running it now" in line
    assert "+52155****5678" in line and ANA not in line


async def test_a_job_missed_beyond_the_lateness_bound_is_dropped_with_a_warning(
        settings, openai_server, logs):
    clock = VirtualClock(START)
    gateway = MemoryGateway(clock)
    async with pipeline(settings, clock=clock, gateway=gateway) as p:
        await p.say(ANA, "hi")
        await p.settle()
        key = CustomerKey(settings.tenant, ANA)
        await p.app.unit.followups.schedule(key, "agent", "checking in", START + timedelta(hours=1))
    await clock.advance(20 * 3600)
    async with pipeline(settings, clock=clock, gateway=gateway) as p2:
        await p2.advance(3600)
        assert p2.texts_to(ANA) == ["OK: hi"]
        assert await p2.app.unit.followups.pending(ANA) == []
    [line] = [x for x in logs if "while wabot was down" in x]
    assert line.startswith("WARNING") and "dropped" in line
    assert "followup:" in line and "+52155****5678" in line and "max_lateness_hours" in line


# --- rules -------------------------------------------------------------------------------------


async def test_a_silent_lead_gets_the_rule_follow_up_24h_after_their_last_message(
        configure, openai_server):
    settings = configure(rules=[LEAD_RULE])
    openai_server.reply("¿Pudiste ver los tenis?", match="went quiet")
    async with pipeline(settings) as p:
        await p.say(ANA, "hola, tienen tenis azules?")
        await p.settle()
        [fu] = await p.app.unit.followups.pending(ANA)
        assert fu.kind == "lead_silent" and fu.run_at == START + timedelta(hours=24)
        await p.advance(4 * 3600)
        await p.say(ANA, "y en talla 26?")  # the silence starts again
        await p.settle()
        [fu] = await p.app.unit.followups.pending(ANA)
        assert fu.run_at == START + timedelta(hours=28)
        await p.advance(20 * 3600 + 60)  # past the first due time
        assert p.texts_to(ANA)[-1] == "OK: y en talla 26?"
        await p.advance(5 * 3600)
        assert p.texts_to(ANA)[-1] == "¿Pudiste ver los tenis?"
        assert await p.app.unit.followups.pending(ANA) == []


async def test_a_chat_does_not_rewrite_the_silent_rule_each_message_yet_it_fires_on_time(
        configure, openai_server):
    """Messages that move the silence by less than the slack leave the job alone (no
    job-table write per turn); it falls due early and is moved to the exact time."""
    settings = configure(rules=[LEAD_RULE])
    openai_server.reply("¿Pudiste ver los tenis?", match="went quiet")
    async with pipeline(settings) as p:
        await p.say(ANA, "hola, tienen tenis azules?")
        await p.settle()
        [first] = await p.app.unit.followups.pending(ANA)
        for _ in range(3):  # three more messages, five minutes apart
            await p.advance(300)
            await p.say(ANA, "y en talla 26?")
            await p.settle()
        [held] = await p.app.unit.followups.pending(ANA)
        assert held.run_at == first.run_at == START + timedelta(hours=24)
        await p.advance(24 * 3600 - 900 + 60)  # past the job's time, before the true one
        assert p.texts_to(ANA)[-1] == "OK: y en talla 26?"
        [moved] = await p.app.unit.followups.pending(ANA)
        assert moved.run_at == START + timedelta(hours=24, minutes=15)
        await p.advance(900)
        assert p.texts_to(ANA)[-1] == "¿Pudiste ver los tenis?"
        assert p.app.unit.followups.outcomes["send"] == 1


async def test_a_stage_rule_fires_days_after_the_purchase_even_if_they_chat(
        configure, openai_server):
    rule = {"name": "after_purchase", "stage": "customer", "when": "entered",
            "after_hours": 72, "reason": "Ask how the sneakers are working out."}
    settings = configure(rules=[LEAD_RULE, rule])
    openai_server.tool_call("set_stage", {"stage": "customer", "reason": "bought sneakers"})
    openai_server.reply("Thanks for your purchase!")
    openai_server.reply("How are the sneakers working out?", match="working out")
    async with pipeline(settings) as p:
        await p.say(ANA, "I just paid for the sneakers")
        await p.settle()
        [fu] = await p.app.unit.followups.pending(ANA)  # the lead rule is gone with the stage
        assert fu.kind == "after_purchase" and fu.run_at == START + timedelta(hours=72)
        await p.advance(86400)
        await p.say(ANA, "they shipped, thanks")
        await p.settle()
        assert [f.run_at for f in await p.app.unit.followups.pending(ANA)] == [fu.run_at]
        await p.advance(2 * 86400 + 60)
        assert p.texts_to(ANA)[-1] == "How are the sneakers working out?"


# --- the real clock: APScheduler's own timer ------------------------------------------------


async def test_with_the_system_clock_apscheduler_runs_the_job(
        configure, openai_server):
    settings = configure(send_hours="00:00-23:59", spread_minutes=0)
    clock = SystemClock()
    gateway = MemoryGateway(clock)
    openai_server.reply("Checking in!", match="checking in")
    app = App(settings, gateway, clock=clock, business=Business(name="Always open"))
    await app.start()
    try:
        assert app.unit.followups is not None and not app.unit.followups.own_timer
        key = CustomerKey(settings.tenant, ANA)
        await app.unit.customers.touch(key, Contact(), clock.now() - timedelta(hours=1), inbound=1)
        later = await app.unit.followups.schedule(CustomerKey(settings.tenant, BOB), "agent",
                                             "much later", clock.now() + timedelta(days=1))
        table = JobTable(settings.sql_url, settings.tenant)
        try:
            [row] = await asyncio.to_thread(_raw_states, table)
        finally:
            table.close()
        assert row["id"] == later.job_id and row["misfire_grace_time"] == 12 * 3600
        assert row["coalesce"] is True and row["func"] == "bot.followups:run_followup"
        await app.unit.followups.schedule(key, "agent", "checking in",
                                     clock.now() - timedelta(seconds=1))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while gateway.texts() != ["Checking in!"]:
            assert loop.time() < deadline, "APScheduler did not run the follow-up"
            await asyncio.sleep(0.02)
    finally:
        await app.stop()
    assert app.unit.followups.outcomes["send"] == 1


def _raw_states(table: JobTable) -> list[dict[str, Any]]:
    with table.store.engine.connect() as conn:
        return [pickle.loads(s) for s in conn.execute(select(table.t.c.job_state)).scalars()]


# --- export / forget ---------------------------------------------------------------------------


async def test_follow_ups_are_exported_and_forgotten_with_the_customer(settings, openai_server):
    async with pipeline(settings) as p:
        await p.say(ANA, "hi")
        await p.settle()
        key = CustomerKey(settings.tenant, ANA)
        await p.app.unit.followups.schedule(key, "agent", "checking in", START + timedelta(days=1))
        holder = privacy_holder(settings.sql_url, p.app.unit.db)
        data = await holder.export(key)
        assert [x["reason"] for x in data["pending"]] == ["checking in"]
        assert await holder.export(CustomerKey(settings.tenant, BOB)) == {}
        await holder.forget(key)
        assert await holder.export(key) == {}
        assert await p.app.unit.followups.pending() == []
