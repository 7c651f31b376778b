"""Turn slots: at most N turns at once, first come first served, on the injected clock.

A plain semaphore would do in production, but a task blocked on one is invisible to the
virtual clock: with more chats ready than slots and the slot holders asleep on the clock
(typing delays), `simulate` could never tell "waiting for time" from "working". Waiting
here goes through `Clock.queue`, and a freed slot is handed straight to the next waiter,
so there is no moment when a slot is free but its new holder has not run yet.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bot.clock import Clock


class TurnSlots:
    def __init__(self, size: int, clock: Clock) -> None:
        if size < 1:
            raise ValueError("at least one turn slot is needed")
        self._free = size
        self._clock = clock
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return sum(1 for w in self._waiters if not w.done())

    async def acquire(self) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(turn)
        try:
            await self._clock.queue(turn)
        except BaseException:
            if turn.done() and not turn.cancelled():
                self.release()  # handed a slot while being cancelled: pass it on
            else:
                turn.cancel()
            raise

    def release(self) -> None:
        while self._waiters:
            turn = self._waiters.popleft()
            if not turn.done():
                turn.set_result(None)  # the slot goes straight to the next in line
                return
        self._free += 1

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        await self.acquire()
        try:
            yield
        finally:
            self.release()
