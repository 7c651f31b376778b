"""A first contact's lifecycle follow-up is written by the turn's one transaction, as the
row APScheduler's `add_job` would have stored, and fires on time from there."""

from __future__ import annotations

import pickle
from datetime import timedelta

from sqlalchemy import select

from bot.followups.store import FollowUp
from tests.fakes.pipeline import START, pipeline
from tests.followups.test_followups import (  # noqa: F401 (fixtures)
    ANA,
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
