"""The scheduler's cache of each customer's pending follow-ups (issue #15): the rules'
refresh after a turn reads no job row, and every add or removal made in the process —
scheduling, cancelling, the timer taking due jobs, APScheduler running one — keeps it
true to the job table."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event

from bot.followups import FollowUp
from bot.followups.pending import PendingCache
from bot.models import CustomerKey
from bot.stores.customers import Contact
from tests.fakes.pipeline import START, on_the_real_clock, pipeline

ANA = "+5215512345678"
KINDS = ["agent", "lead_silent"]
T0 = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


def fu(kind: str, phone: str = ANA, tenant: str = "shop:mx") -> FollowUp:
    return FollowUp(tenant, phone, kind, "why", T0, T0 + timedelta(hours=1))


def test_entries_follow_adds_and_removals() -> None:
    cache = PendingCache(KINDS)
    assert cache.get(ANA, KINDS) is None  # never looked up: unknown, not "none"
    cache.looking(ANA)
    cache.found(ANA, [])
    assert cache.get(ANA, KINDS) == []
    later, sooner = fu("agent"), fu("lead_silent")
    cache.added(later, T0 + timedelta(days=2))
    cache.added(sooner, T0 + timedelta(days=1))
    assert [f.kind for f in cache.get(ANA, KINDS) or []] == ["lead_silent", "agent"]
    assert [f.kind for f in cache.get(ANA, ["agent"]) or []] == ["agent"]
    cache.removed([sooner.job_id])  # the tenant holds a colon: ids are split from the right
    assert [f.kind for f in cache.get(ANA, KINDS) or []] == ["agent"]


def test_a_lookup_that_raced_a_change_is_not_kept() -> None:
    cache = PendingCache(KINDS)
    cache.looking(ANA)
    cache.added(fu("agent"), T0)  # committed after the lookup read the table
    cache.found(ANA, [])
    assert cache.get(ANA, KINDS) is None
    cache.looking(ANA)
    cache.found(ANA, None)  # the lookup failed
    assert cache.get(ANA, KINDS) is None


def test_the_cache_is_bounded() -> None:
    cache = PendingCache(KINDS, limit=2)
    for phone in ("+1", "+2", "+3"):
        cache.looking(phone)
        cache.found(phone, [])
    assert cache.get("+1", KINDS) is None and cache.get("+3", KINDS) == []


class Selects:
    def __init__(self, engine: Any) -> None:
        self.seen: list[str] = []
        event.listen(engine, "before_cursor_execute", self._execute)

    def _execute(self, conn: Any, cursor: Any, sql: str, *args: Any) -> None:
        if sql.lstrip().upper().startswith("SELECT"):
            self.seen.append(sql)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"presenter": {"enabled": False}, "inbox": {"debounce_seconds": 0},
            "followups": {"send_hours": "00:00-23:59", "spread_minutes": 0}}


async def test_schedule_cancel_and_firing_keep_the_cache_true(settings, openai_server):
    openai_server.reply("Checking in!", match="checking in")
    async with pipeline(settings) as p:
        f = p.app.unit.followups
        key = CustomerKey(settings.tenant, ANA)
        kinds = sorted(f.cache.kinds)
        await p.say(ANA, "hola")
        await p.settle()  # the rules' refresh looked the customer up
        selects = Selects(f.table.store.engine)
        assert [x.kind for x in await f.pending(ANA, kinds=kinds)] == ["lead_silent"]
        await f.schedule(key, "agent", "checking in", START + timedelta(hours=2))
        assert [x.kind for x in await f.pending(ANA, kinds=kinds)] == ["agent", "lead_silent"]
        assert await f.cancel(key, "lead_silent") == 1
        assert [x.kind for x in await f.pending(ANA, kinds=kinds)] == ["agent"]
        assert selects.seen == []
        await p.advance(3 * 3600)  # the timer takes the due job out of the table and sends it
        assert p.texts_to(ANA)[-1] == "Checking in!"
        assert await f.pending(ANA, kinds=kinds) == []
        assert await asyncio.to_thread(f.table.pending, ANA) == []  # the table agrees


async def test_a_job_apscheduler_runs_leaves_the_cache(settings, openai_server):
    openai_server.reply("Checking in!", match="checking in")
    async with on_the_real_clock(settings) as (app, gateway):
        clock = gateway.clock
        f = app.unit.followups
        assert f is not None and not f.own_timer
        key = CustomerKey(settings.tenant, ANA)
        await app.unit.customers.touch(key, Contact(), clock.now() - timedelta(hours=1), inbound=1)
        assert await f.pending(ANA, kinds=["agent"]) == []
        await f.schedule(key, "agent", "checking in", clock.now() - timedelta(seconds=1))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while gateway.texts() != ["Checking in!"]:
            assert loop.time() < deadline, "APScheduler did not run the follow-up"
            await asyncio.sleep(0.02)  # APScheduler's own timer: real time
        assert f.cache.get(ANA, ["agent"]) == []
