"""An idle daemon waits for work: no loop wakes on a fixed period to find nothing to do
(issue #21). Each wake-up costs the process a scheduling round on the real clock, and a
settle on the virtual one: a test moving 400 days cost 576,000 of them."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Collection, Iterator
from typing import Any

import pytest

from tests.fakes.pipeline import pipeline

ANA = "+5215512345678"
DAY = 24 * 3600
BEAT = 300  # the longest heartbeat allowed: each beat is a write the test waits for


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"heartbeat_seconds": BEAT}


class Both(Collection[asyncio.Task[Any]]):
    """Two task sets read live, as the clock re-reads the tasks it lets settle."""

    def __init__(self, *sets: Collection[asyncio.Task[Any]]) -> None:
        self.sets = sets

    def __iter__(self) -> Iterator[asyncio.Task[Any]]:
        return itertools.chain(*self.sets)

    def __len__(self) -> int:
        return sum(len(s) for s in self.sets)

    def __contains__(self, task: object) -> bool:
        return any(task in s for s in self.sets)


async def test_an_idle_daemon_wakes_less_than_once_an_hour(settings):
    async with pipeline(settings) as p:
        await p.say(ANA, "hola")  # a customer talked once: an agent is cached, work follows
        await p.settle()
        # The daemon's loops, between passes. Each one settles before time moves on (its
        # database work done), or a loop that polls would be counted short: it would go
        # back to sleep only after the clock had moved past its next wake-ups.
        loops = p.clock.waiting_tasks()
        p.clock.woken.clear()
        await p.clock.advance(DAY, Both(p.app.unit.inbox.tasks, loops))
        woken = dict(p.clock.woken)
        # The heartbeat is the one periodic write by design: `wabot status` reads the
        # daemon's liveness from it (and a fleet's lease renewal is to build on it).
        assert woken.pop("heartbeat") == DAY // BEAT
        # The run log's pruning, hourly, is the App's own loop, left to its rewrite.
        assert woken.pop("run-log-retention", 0) <= 24
        # What else woke did so once, for the work the message left: the agent's eviction,
        # the memory pass, the follow-up, the retry round after a reply.
        assert sum(woken.values()) < 24 and set(woken.values()) <= {1}, woken
