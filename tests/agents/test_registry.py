"""The registry on its own: cache, cap, sweep, failed loads."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from bot.agents.registry import AgentRegistry
from bot.clock import VirtualClock
from bot.models import CustomerKey


class FakeAgent:
    def __init__(self, key):
        self.key = key


def make(clock, loads, fail=None, **kw):
    async def loader(key):
        loads.append(key)
        await asyncio.sleep(0)
        if fail and key.phone == fail:
            raise RuntimeError("store down")
        return FakeAgent(key), True
    events = []
    reg = AgentRegistry(loader, clock, on_event=lambda e, k: events.append((e, k.phone)), **kw)
    return reg, events


def key(i):
    return CustomerKey("t", f"+1555000{i:04d}")


async def test_the_cap_evicts_the_least_recently_used_idle_agents():
    clock, loads = VirtualClock(), []
    reg, events = make(clock, loads, max_agents=3)
    for i in range(3):
        async with reg.use(key(i)):
            pass
    async with reg.use(key(0)):  # 0 is now the most recent
        pass
    async with reg.use(key(3)):
        pass
    assert len(reg) == 3
    assert key(1) not in reg and key(0) in reg
    assert ("agent_evicted", key(1).phone) in events


async def test_sweep_evicts_only_agents_idle_past_the_ttl():
    clock, loads = VirtualClock(), []
    reg, _ = make(clock, loads, idle_seconds=60)
    async with reg.use(key(1)):
        pass
    clock._now += timedelta(seconds=30)
    async with reg.use(key(2)):
        pass
    clock._now += timedelta(seconds=31)
    assert reg.sweep() == 1
    assert key(1) not in reg and key(2) in reg


async def test_a_failed_load_is_reported_to_every_waiter_and_retried_next_time():
    clock, loads = VirtualClock(), []
    reg, events = make(clock, loads, fail=key(1).phone)

    async def use():
        async with reg.use(key(1)):
            pass

    results = await asyncio.gather(*(use() for _ in range(5)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert len(loads) == 1 and events == [] and len(reg) == 0
    with pytest.raises(RuntimeError):
        await use()
    assert len(loads) == 2


async def test_hits_and_misses_are_counted():
    clock, loads = VirtualClock(), []
    reg, _ = make(clock, loads)
    for _ in range(3):
        async with reg.use(key(1)):
            pass
    assert (reg.misses, reg.hits) == (1, 2)


async def test_the_sweeper_waits_for_an_agent_and_evicts_it_at_the_ttl():
    clock, loads = VirtualClock(), []
    reg, events = make(clock, loads, idle_seconds=1800)
    sweeper = asyncio.create_task(reg.run_sweeper(60), name="sweeper")
    try:
        await clock.advance(86400, {sweeper})  # nothing cached: it never wakes
        assert not clock.woken
        async with reg.use(key(1)):
            await clock.advance(3 * 3600, {sweeper})  # in a turn: never evicted
        assert key(1) in reg and not clock.woken
        await clock.advance(1799, {sweeper})
        assert key(1) in reg
        await clock.advance(2, {sweeper})
        assert key(1) not in reg and ("agent_evicted", key(1).phone) in events
        await clock.advance(86400, {sweeper})
        assert clock.woken == {"sweeper": 1}  # the one eviction, then nothing to wait for
    finally:
        sweeper.cancel()


async def test_agents_going_idle_within_the_interval_share_one_sweep():
    clock, loads = VirtualClock(), []
    reg, _ = make(clock, loads, idle_seconds=60)
    sweeper = asyncio.create_task(reg.run_sweeper(30), name="sweeper")
    try:
        for i in range(10):  # one a second
            async with reg.use(key(i)):
                pass
            await clock.advance(1, {sweeper})
        await clock.advance(120, {sweeper})
        assert len(reg) == 0
        assert clock.woken["sweeper"] <= 2
    finally:
        sweeper.cancel()
