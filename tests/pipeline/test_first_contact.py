"""A first contact reads nothing of the new customer and writes once after the journal: the
customer's row, both sides of the turn and the lifecycle rules' first follow-up in the
turn's one transaction. What the journal said ("no row yet") is never trusted once
something was written for that customer."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.models import CustomerKey, Stage
from bot.stores.customers import Contact
from tests.conftest import _postgres_url
from tests.fakes.pipeline import START, make_settings, pipeline
from tests.pipeline.test_cached_agent import QUIET, Statements

ANA = "+5215512345678"
BOB = "+14155550123"


@pytest.fixture(params=["sqlite", "postgres", pytest.param("mongo", marks=pytest.mark.mongo)])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """SQLite, PostgreSQL, or SQLite with the memory in MongoDB (SecantusDB)."""
    if request.param == "postgres":
        return {"database_url": _postgres_url()}
    stores: dict[str, Any] = {"database_url": f"sqlite:///{tmp_path / 'wabot.db'}"}
    if request.param == "mongo":
        stores["mongodb_url"] = request.getfixturevalue("mongodb_url")
        stores["mongodb_database"] = "wabot_first_" + tmp_path.name[-20:].replace("-", "_")
    return stores


def _settings(where: dict[str, Any], tmp_path: Path, openai_server: Any, tenant: str) -> Any:
    settings = make_settings(where["database_url"], tmp_path, openai_server, tenant,
                             memory=QUIET, **{k: v for k, v in where.items()
                                              if k != "database_url"})
    assert next(r.name for r in settings.followups.rules) == "lead_silent"
    return settings


async def test_a_first_contact_reads_nothing_and_writes_once(where, tmp_path, openai_server,
                                                             tenant):
    settings = _settings(where, tmp_path, openai_server, tenant)
    mongo = "mongodb_url" in where
    async with pipeline(settings) as p:
        await p.say(BOB, "warm the process up")
        await p.settle()
        seen = Statements()
        await seen.attach(p.app)
        seen.on = True
        await p.say(ANA, "hola", push_name="Ana")
        await p.settle()
        seen.on = False
        assert p.texts_to(ANA) == ["OK: hola"]
        assert seen.selects == []
        journal, turn = seen.writes  # the job table's engine wrote nothing
        assert "journal" in " ".join(journal) and len(journal) == 1
        tx = " ".join(turn)
        tables = ("customers", "usage_daily", "journal", "runs", "followup_jobs_")
        for table in tables if mongo else (*tables, "memory_messages"):
            assert f"INTO {table}" in tx or f"UPDATE {table}" in tx, table
        # What it wrote is what the stores and the scheduler hold…
        key = CustomerKey(settings.tenant, ANA)
        customer = await p.app.unit.customers.get(key)
        assert customer is not None and customer.id is not None
        assert (customer.name, customer.stage, customer.msgs_in, customer.msgs_out) == (
            "Ana", Stage.LEAD.value, 1, 1)
        assert customer.first_contact == customer.last_inbound > START
        assert p.app.unit.registry.peek(key).customer == customer  # type: ignore[union-attr]
        history = await p.app.unit.memory.recent(key, 10)
        assert [m.text for m in history] == ["hola", "OK: hola"]
        followups = p.app.unit.followups
        [job] = await followups.pending(ANA)  # read from the job table, not the cache
        rule = followups.rules["lead_silent"]
        due = customer.last_inbound + timedelta(hours=rule.after_hours)
        assert (job.kind, job.run_at) == ("lead_silent", due)
        stored = followups.scheduler.get_job(job.job_id)  # APScheduler reads it as its own
        assert stored is not None and stored.next_run_time == job.run_at
        # …and the next turn finds it where the rules want it: nothing read, one write.
        seen.committed, seen.all = [], []
        seen.on = True
        await p.say(ANA, "¿tienen envíos?")
        await p.settle()
        seen.on = False
        assert seen.selects == [] and len(seen.writes) == 2  # the journal, the turn


async def test_a_row_made_after_the_journal_looked_is_read(tmp_path, openai_server,
                                                           tenant):
    """The journal found no row, then the customer was written (here: the owner's `pause`
    through the store) before their turn: the turn reads the row, it does not start empty."""
    settings = make_settings(f"sqlite:///{tmp_path / 'wabot.db'}", tmp_path, openai_server,
                             tenant, memory=QUIET)
    async with pipeline(settings) as p:
        customers = p.app.unit.customers
        key = CustomerKey(settings.tenant, ANA)
        add = customers._journal.add

        async def journal_then_write(msg: Any) -> Any:
            journaled = await add(msg)
            await customers.touch(key, Contact(name="Ana Pérez"), START)  # after the check
            return journaled

        customers._journal.add = journal_then_write  # type: ignore[method-assign]
        await p.say(ANA, "hola")
        await p.settle()
        prompt = openai_server.chat_requests()[-1]["messages"][0]["content"]
        assert "Ana Pérez" in prompt  # the row was read, not taken for missing
        customer = await customers.get(key)
        assert customer is not None and customer.name == "Ana Pérez"
        assert customer.msgs_in == 1  # the turn updated the row the touch made
        assert not customers.is_new(key)

