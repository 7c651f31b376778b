"""Time, injected: every "now" and every wait in wabot goes through a Clock.

The system clock is the real thing. The virtual clock is what tests and `wabot simulate`
use: it only moves when told to, and waking the sleepers in deadline order makes eviction,
debounce and follow-up behaviour exact and instant.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import re
from collections import Counter
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # "never", for sorting and defaults
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """`90s`, `30m`, `2h`, `1d`, `1h30m` → a timedelta; ValueError otherwise."""
    compact = text.strip().lower().replace(" ", "")
    parts = _DURATION.findall(compact)
    if not parts or "".join(n + u for n, u in parts) != compact:
        raise ValueError(f"{text!r} is not a duration: write 30m, 2h, 1d or 1h30m")
    seconds = sum(float(n) * _UNIT[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError("the duration must be longer than zero")
    return timedelta(seconds=seconds)



class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""
        ...

    async def sleep(self, seconds: float) -> None: ...

    async def wait(self, tasks: Collection[asyncio.Task[Any]], within: float) -> set[asyncio.Task[Any]]:
        """Wait for tasks to finish within `within` seconds; returns those still pending."""
        ...

    async def queue(self, turn: asyncio.Future[Any]) -> None:
        """Wait for `turn`, which only other clock-driven work can complete (a free slot
        handed over by a task that is itself sleeping or working)."""
        ...

    async def idle(self, wake: asyncio.Future[None], within: float | None = None) -> None:
        """A loop's wait for work: until `wake` is done, by whatever gives the loop
        something to do, or by the clock once `within` seconds have passed (None: only by
        the work). `wake` is a plain future (not a task) made for this one wait."""
        ...


def _ring(wake: asyncio.Future[None]) -> None:
    if not wake.done():
        wake.set_result(None)


def _plain(wake: asyncio.Future[None]) -> None:
    if isinstance(wake, asyncio.Task):  # the clock completes it: a task cannot be
        raise TypeError("idle() needs a plain future, not a task")


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    async def wait(self, tasks: Collection[asyncio.Task[Any]], within: float) -> set[asyncio.Task[Any]]:
        if not tasks:
            return set()
        _, pending = await asyncio.wait(tasks, timeout=within)
        return pending

    async def queue(self, turn: asyncio.Future[Any]) -> None:
        await turn

    async def idle(self, wake: asyncio.Future[None], within: float | None = None) -> None:
        _plain(wake)
        timer = None
        if within is not None:
            timer = asyncio.get_running_loop().call_later(max(0.0, within), _ring, wake)
        try:
            await wake
        finally:
            if timer is not None:
                timer.cancel()


class VirtualClock:
    """A clock that moves only in `advance`/`run_until`, waking sleepers in order."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
        if self._now.tzinfo is None:
            raise ValueError("VirtualClock needs a timezone-aware start")
        self._heap: list[tuple[datetime, int, asyncio.Future[None], asyncio.Task[Any] | None]] = []
        self._counter = itertools.count()
        # Tasks waiting in a queue (a turn slot): settled while their turn has not come,
        # since only the holders of the slots, which settle on their own, can hand one over.
        self._queued: dict[asyncio.Task[Any], asyncio.Future[Any]] = {}
        # Sleepers woken by time, by their task's name: what an idle daemon costs (each
        # wake-up is a settle, and on the real clock a wake of the process).
        self.woken: Counter[str] = Counter()

    def now(self) -> datetime:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        deadline = self._now + timedelta(seconds=seconds)
        heapq.heappush(self._heap, (deadline, next(self._counter), fut, asyncio.current_task()))
        try:
            await fut
        finally:
            if not fut.done():
                fut.cancel()

    def sleeping_tasks(self) -> set[asyncio.Task[Any]]:
        return {t for _, _, f, t in self._heap if t is not None and not f.done()}

    def waiting_tasks(self) -> set[asyncio.Task[Any]]:
        """The tasks waiting on this clock now: asleep, idle or queued."""
        queued = {t for t, turn in self._queued.items() if not turn.done()}
        return self.sleeping_tasks() | queued

    async def queue(self, turn: asyncio.Future[Any]) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._queued[task] = turn
        try:
            await turn
        finally:
            if task is not None:
                self._queued.pop(task, None)

    async def idle(self, wake: asyncio.Future[None], within: float | None = None) -> None:
        """Settled while it waits, like a queued turn: only other work, or time moving
        (the timer is one of the sleepers, woken in order), can end it."""
        _plain(wake)
        if within is not None and within <= 0:
            _ring(wake)
            await asyncio.sleep(0)
        elif within is not None:
            deadline = self._now + timedelta(seconds=within)
            heapq.heappush(self._heap, (deadline, next(self._counter), wake,
                                        asyncio.current_task()))
        await self.queue(wake)

    def _settled(self, task: asyncio.Task[Any], sleeping: set[asyncio.Task[Any]]) -> bool:
        if task.done() or task in sleeping:
            return True
        turn = self._queued.get(task)
        return turn is not None and not turn.done()  # handed a slot: it is about to run

    def next_deadline(self) -> datetime | None:
        while self._heap and self._heap[0][2].done():
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    async def settle(self, tasks: Collection[asyncio.Task[Any]] = ()) -> None:
        """Wait (in real time) until each task is done, asleep on this clock or queued for
        a slot that no running task will free before time moves.

        Work in flight does real I/O (databases, the LLM endpoint), so "nothing more can
        happen until time moves" is observed, not assumed.
        """
        while True:
            for _ in range(5):
                await asyncio.sleep(0)
            sleeping = self.sleeping_tasks()
            if all(self._settled(t, sleeping) for t in list(tasks)):
                return
            await asyncio.sleep(0.001)

    async def run_until(self, target: datetime, tasks: Collection[asyncio.Task[Any]] = ()) -> None:
        """Move time to `target`, waking every sleeper due on the way, in order.

        `tasks` is the work to let settle between wake-ups; a live set (such as the
        inbox's) is re-read at every step, so work started on the way is waited for too.
        """
        watched = tasks
        await self.settle(watched)
        while True:
            deadline = self.next_deadline()
            if deadline is None or deadline > target:
                break
            self._now = max(self._now, deadline)
            while self._heap and self._heap[0][0] <= self._now:
                _, _, fut, task = heapq.heappop(self._heap)
                if not fut.done():
                    fut.set_result(None)
                    self.woken[task.get_name() if task is not None else ""] += 1
            await self.settle(watched)
        self._now = max(self._now, target)
        await self.settle(watched)

    async def advance(self, seconds: float, tasks: Collection[asyncio.Task[Any]] = ()) -> None:
        await self.run_until(self._now + timedelta(seconds=seconds), tasks)

    async def wait(self, tasks: Collection[asyncio.Task[Any]], within: float) -> set[asyncio.Task[Any]]:
        """Move virtual time until the tasks finish or `within` virtual seconds pass."""
        limit = self._now + timedelta(seconds=within)
        while True:
            await self.settle(tasks)
            pending = {t for t in tasks if not t.done()}
            deadline = self.next_deadline()
            if not pending or deadline is None or deadline > limit:
                return pending
            await self.run_until(deadline, tasks)


WHATSAPP_EPOCH = datetime(2009, 1, 1, tzinfo=UTC)  # no message is older than WhatsApp
CLOCK_SLACK = timedelta(days=1)  # a phone's clock may be off; a day is generous


def plausible(sent: datetime, received: datetime) -> datetime:
    """The time a message says it was sent, or when it was received if that cannot be:
    a tampered client can claim the year 5138, which would sort it after every later
    message and keep it "recent" for ever."""
    return sent if WHATSAPP_EPOCH <= sent <= received + CLOCK_SLACK else received
