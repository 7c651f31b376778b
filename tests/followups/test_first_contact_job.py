"""A first contact's lifecycle follow-up is written by the turn's one transaction, as the
row APScheduler's `add_job` would have stored, and fires on time from there."""

from __future__ import annotations

import asyncio
import pickle
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from bot.followups.store import FollowUp
from bot.models import CustomerKey, InboundMessage
from tests.fakes.pipeline import START, on_the_real_clock, pipeline
from tests.followups.test_followups import (  # noqa: F401 (fixtures)
    ANA,
    BOB,
    CAROL,
    LEAD_RULE,
    configure,
    daily_business,
)


async def test_the_rules_first_job_is_the_row_add_job_stores(configure):  # noqa: F811
    settings = configure(rules=[LEAD_RULE])
    async with pipeline(settings) as p:
        followups = p.app.unit.followups
        due = START + timedelta(hours=24)
        fu = FollowUp(settings.tenant, "+14155550123", "lead_silent", LEAD_RULE["reason"],
                      START, due)
        await followups.put(fu, due)  # through APScheduler
        [row] = followups.first_jobs(fu.key, START)[0]
        table = followups.table
        with table.store.engine.connect() as conn:
            stored = conn.execute(select(table.t.c.next_run_time, table.t.c.job_state)
                                  .where(table.t.c.id == fu.job_id)).one()
        assert row.table == table.t.name and row.id == fu.job_id
        assert row.next_run_time == stored.next_run_time
        ours, theirs = pickle.loads(row.job_state), pickle.loads(stored.job_state)
        assert ours.pop("trigger").__getstate__() == theirs.pop("trigger").__getstate__()
        assert ours == theirs


async def test_a_first_contacts_follow_up_fires_on_time(configure, openai_server):  # noqa: F811
    settings = configure(rules=[LEAD_RULE])
    openai_server.reply("¿Pudiste ver los tenis?", match="went quiet")
    async with pipeline(settings) as p:
        await p.say(ANA, "hola, tienen tenis azules?")
        await p.settle()
        [job] = await p.app.unit.followups.pending(ANA, limit=10)  # the job table
        assert job.kind == "lead_silent" and job.run_at == START + timedelta(hours=24)
        await p.advance(24 * 3600 + 60)
        assert p.texts_to(ANA)[-1] == "¿Pudiste ver los tenis?"
        assert p.app.unit.followups.outcomes["send"] == 1


async def test_apscheduler_looks_again_only_for_a_job_due_before_its_planned_wake(
        configure, openai_server):  # noqa: F811
    """With the real clock, each look at the job table is two SELECTs on the event loop:
    a first contact's job due after the wake-up APScheduler planned does not ask for one."""
    settings = configure(rules=[LEAD_RULE], send_hours="00:00-23:59", spread_minutes=0)
    async with on_the_real_clock(settings) as (app, gateway):
        clock = gateway.clock
        f = app.unit.followups
        assert f is not None and not f.own_timer
        looks: list[float] = []
        process = f.scheduler._process_jobs

        def counted() -> Any:
            looks.append(clock.now().timestamp())
            return process()

        f.scheduler._process_jobs = counted  # type: ignore[method-assign]

        async def first_contact(phone: str) -> None:
            await app.unit.inbox.feed(InboundMessage(
                tenant=settings.tenant, phone=phone, msg_id=f"first-{phone}",
                timestamp=clock.now(), text="hola", chat=gateway.chat_for(phone)))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while not [m for m in gateway.texts(gateway.chat_for(phone))]:
                assert loop.time() < deadline, "no reply"
                await asyncio.sleep(0.02)
            await app.unit.inbox.drain(5)

        await f.schedule(CustomerKey(settings.tenant, CAROL), "agent", "much later",
                         clock.now() + timedelta(days=2))  # add_job: a look, a wake in 2 days
        assert len(looks) == 1
        await first_contact(ANA)  # due in 24 h, before the planned wake: a look
        assert len(looks) == 2
        await first_contact(BOB)  # due after the wake planned for Ana's: none
        assert len(looks) == 2
        assert {fu.kind for fu in await f.pending(BOB, limit=5)} == {"lead_silent"}
        planned = f.scheduler._timeout.when() - asyncio.get_running_loop().time()
        assert timedelta(seconds=planned) <= timedelta(hours=24)
