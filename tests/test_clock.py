"""The clock's waits: `idle`, a loop's wait for work, on both clocks."""

from __future__ import annotations

import asyncio

import pytest

from bot.clock import SystemClock, VirtualClock


async def test_an_idle_loop_is_settled_until_work_wakes_it_and_no_time_is_counted():
    clock = VirtualClock()
    wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    waiting = asyncio.create_task(clock.idle(wake), name="loop")
    await clock.advance(30 * 86400, {waiting})  # settled all along: time moves on
    assert not waiting.done() and waiting in clock.waiting_tasks()
    wake.set_result(None)
    await clock.settle({waiting})
    assert waiting.done() and not clock.woken


async def test_an_idle_loop_wakes_at_its_due_time_counted_as_a_wake_up():
    clock = VirtualClock()
    start = clock.now()
    wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    waiting = asyncio.create_task(clock.idle(wake, 3600), name="loop")
    await clock.advance(3599, {waiting})
    assert not waiting.done()
    await clock.advance(1, {waiting})
    assert waiting.done() and wake.done() and (clock.now() - start).total_seconds() == 3600
    assert clock.woken == {"loop": 1}


async def test_work_ends_the_wait_before_its_due_time_and_the_timer_is_never_counted():
    clock = VirtualClock()
    wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    waiting = asyncio.create_task(clock.idle(wake, 3600), name="loop")
    await clock.advance(10, {waiting})
    wake.set_result(None)
    await clock.advance(7200, {waiting})
    assert waiting.done() and not clock.woken


async def test_the_system_clock_ends_the_wait_on_work_or_time():
    clock = SystemClock()
    loop = asyncio.get_running_loop()
    timed: asyncio.Future[None] = loop.create_future()
    await clock.idle(timed, 0.01)
    assert timed.done()
    worked: asyncio.Future[None] = loop.create_future()
    loop.call_soon(worked.set_result, None)
    await asyncio.wait_for(clock.idle(worked, 3600), 5)  # not the hour


@pytest.mark.parametrize("clock", [SystemClock(), VirtualClock()])
async def test_a_task_is_refused_as_the_wake(clock):
    task = asyncio.create_task(asyncio.sleep(0))
    with pytest.raises(TypeError):
        await clock.idle(task, 1)
    await task
