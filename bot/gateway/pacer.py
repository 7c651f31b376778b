"""One pace for everything this number sends: a per-minute cap, with room kept for live chats.

WhatsApp restricts numbers that send in bursts (neonize's FAQ: stay under 20–30 messages a
minute). Every send of the number goes through one `Pacer`, installed on the gateway: no
rolling 60 s ever holds more than `per_minute` sends. `burst` of those are kept for replies
to customers who are waiting now (the live lane): the backlog after downtime and the
follow-ups share the rest, spaced evenly, so a live reply never queues behind them.

The lane is the caller's context (`with lane(Lane.BACKLOG, order):` around a turn), so the
pipeline says what a send is without the gateway's signature changing. Within a lane,
waiters go in `order` (the backlog: its oldest message first), then in arrival order. Each
bubble is one send, awaited before the next one is asked for: a reply's bubbles keep their
order. Sends to our own number (owner alerts in "Message yourself") are not paced: they
reach no one else and must not wait behind a backlog.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta
from enum import IntEnum
from typing import Any

from bot.clock import Clock
from bot.gateway.base import GatewayError
from bot.gateway.restrictions import TIMELOCK, TIMELOCK_GUESS, Restrictions

WINDOW = timedelta(seconds=60)
# whatsmeow send.go SendMessage: a refused message comes back as
# `fmt.Errorf("%w %d", ErrServerReturnedError, errorCode)`; 463 is the reach-out timelock.
TIMELOCK_ERROR = "server returned error 463"


class Lane(IntEnum):
    LIVE = 0  # a customer wrote and is waiting (and everything not marked otherwise)
    BACKLOG = 1  # messages that arrived while the number was offline
    PROACTIVE = 2  # follow-ups: nobody is waiting for them


_LANE: ContextVar[tuple[Lane, float]] = ContextVar("wabot_send_lane", default=(Lane.LIVE, 0.0))


@contextmanager
def lane(which: Lane, order: float = 0.0) -> Iterator[None]:
    """Sends made inside go in `which` lane; `order` ranks them within it (lower first)."""
    token = _LANE.set((which, order))
    try:
        yield
    finally:
        _LANE.reset(token)


class Pacer:
    def __init__(self, clock: Clock, per_minute: int, burst: int,
                 restrictions: Restrictions | None = None) -> None:
        if not 0 <= burst < per_minute:
            raise ValueError("burst must be at least 0 and below the per-minute cap")
        self.clock = clock
        self.per_minute = per_minute
        self.burst = burst
        self.restrictions = restrictions
        self.spacing = 60.0 / (per_minute - burst)  # between two non-live sends
        self.sent: deque[datetime] = deque()  # grants in the last minute
        self.granted = 0
        self._last_background: datetime | None = None
        self._waiting: list[tuple[int, float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._pump: asyncio.Task[None] | None = None

    # --- the gate ------------------------------------------------------------------------

    async def acquire(self) -> None:
        """Wait for this context's lane to be allowed one send."""
        which, order = _LANE.get()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (int(which), order, next(self._seq), fut))
        self._kick()
        try:
            await self.clock.queue(fut)
        finally:
            fut.cancel()  # a sender cancelled while waiting leaves the queue (a grant is spent)

    def _kick(self) -> None:
        # A newcomer may go before the one the pump sleeps for (a live reply): start over.
        if self._pump is not None and not self._pump.done():
            self._pump.cancel()
        self._pump = asyncio.create_task(self._run(), name="send-pacer")

    async def _run(self) -> None:
        while self._waiting:
            lane_, _, _, fut = self._waiting[0]
            if fut.done():  # its sender was cancelled
                heapq.heappop(self._waiting)
                continue
            wait = self.wait_for(Lane(lane_), self.clock.now())
            if wait > 0:
                await self.clock.sleep(wait)
                continue
            heapq.heappop(self._waiting)
            self._grant(Lane(lane_))
            fut.set_result(None)

    def wait_for(self, which: Lane, now: datetime) -> float:
        """Seconds until `which` may send at `now` (0: at once)."""
        while self.sent and now - self.sent[0] >= WINDOW:
            self.sent.popleft()
        limit = self.per_minute if which is Lane.LIVE else self.per_minute - self.burst
        wait = 0.0
        if len(self.sent) >= limit:
            oldest_to_expire = self.sent[len(self.sent) - limit]
            wait = (oldest_to_expire + WINDOW - now).total_seconds()
        if which is not Lane.LIVE and self._last_background is not None:
            gap = (self._last_background + timedelta(seconds=self.spacing) - now).total_seconds()
            wait = max(wait, gap)
        return max(0.0, wait)

    def _grant(self, which: Lane) -> None:
        now = self.clock.now()
        self.sent.append(now)
        self.granted += 1
        if which is not Lane.LIVE:
            self._last_background = now

    # --- the gateway's sends, paced --------------------------------------------------------

    async def send(self, chat: str, own: str | None, send: Callable[..., Any],
                   *args: Any) -> str:
        if own is None or chat != own:
            await self.acquire()
        try:
            return str(await send(*args))
        except GatewayError as exc:
            if TIMELOCK_ERROR in str(exc) and self.restrictions is not None:
                self.restrictions.impose(TIMELOCK, self.clock.now() + TIMELOCK_GUESS,
                                         "a message was refused with error 463")
            raise
