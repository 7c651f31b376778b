"""This process as a node of the fleet: it holds the leases of the numbers it serves, takes
its fair share (≈ numbers ÷ live nodes) of those nobody holds, gives back the rest, and hands
everything over at a graceful stop.

Each number is started and stopped by the host (`start`, `stop`), one operation at a time
per number, off the loop that renews the leases: a slow start never delays a renewal.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import suppress
from typing import Any

from loguru import logger

from bot.fleet.lease import Lease, Leases
from bot.fleet.numbers import NumberStore

Start = Callable[[str, Lease], Coroutine[Any, Any, None]]
Stop = Callable[[str], Coroutine[Any, Any, None]]
Notify = Callable[[], Awaitable[None]]


async def _nothing() -> None:
    return None


class Node:
    def __init__(self, leases: Leases, numbers: NumberStore, *, renew_every: float,
                 start: Start, stop: Stop, notify: Notify = _nothing,
                 console_url: str = "") -> None:
        self.leases = leases
        self.numbers = numbers
        self.renew_every = renew_every
        self._start = start
        self._stop = stop
        self._notify = notify
        self.console_url = console_url
        self.held: dict[str, Lease] = {}
        self.draining = False
        self._wake = asyncio.Event()
        self._ops: dict[str, asyncio.Task[None]] = {}

    @property
    def name(self) -> str:
        return self.leases.node

    def wake(self) -> None:
        """Look at the leases now (another node gave numbers back, a number was added)."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception as exc:  # the database is down: leases lapse here on their own
                logger.warning("fleet: could not renew or balance the leases: {}", exc)
                self._stop_lapsed()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.renew_every)
            self._wake.clear()

    async def tick(self) -> None:
        await self.leases.beat(draining=self.draining, console_url=self.console_url)
        for number, lease in list(self.held.items()):
            if not await self.leases.renew(lease):
                logger.warning("fleet: number {} was taken over by another node (epoch {} is "
                               "stale): stopping it here", number, lease.epoch)
                self._hand_over(number, release=False)
        self._stop_lapsed()
        if self.draining:
            return
        keys = [row.key for row in await self.numbers.all()]
        for number in [n for n in self.held if n not in keys]:
            logger.info("fleet: number {} was removed: stopping it", number)
            self._hand_over(number, release=True)
        await self.leases.ensure(keys)
        now = await self.leases.now()
        live = [n for n in await self.leases.nodes()
                if n.seen_at > now - self.leases.ttl and not n.draining]
        share = math.ceil(len(keys) / max(1, len(live)))
        extra = len(self.held) - share
        if extra > 0:
            for number in sorted(self.held)[-extra:]:
                logger.info("fleet: giving number {} back ({} nodes share {} numbers)",
                            number, len(live), len(keys))
                self._hand_over(number, release=True)
            return
        free = [row.number for row in await self.leases.leases()
                if row.number in keys and row.number not in self.held
                and row.number not in self._ops
                and (row.owner is None or row.expires_at < now)]
        for number in free[:-extra]:
            taken = await self.leases.acquire(number)
            if taken is None:
                continue
            logger.info("fleet: serving number {} (epoch {})", number, taken.epoch)
            self.held[number] = taken
            self._serial(number, self._start(number, taken))

    def _stop_lapsed(self) -> None:
        """A lease this node could not renew in time: stop the number before it expires."""
        for number, lease in list(self.held.items()):
            if not lease.valid:
                logger.warning("fleet: the lease of number {} could not be renewed in time: "
                               "stopping it here", number)
                self._hand_over(number, release=False)

    def _hand_over(self, number: str, *, release: bool) -> None:
        lease = self.held.pop(number)

        async def hand_over() -> None:
            await self._stop(number)
            if release:
                try:
                    await self.leases.release(lease)
                    await self._notify()
                except Exception as exc:
                    logger.warning("fleet: number {} could not be released ({}); it moves "
                                   "when its lease lapses", number, exc)
            lease.lost = True

        self._serial(number, hand_over())

    def _serial(self, number: str, work: Coroutine[Any, Any, None]) -> None:
        before = self._ops.get(number)

        async def after() -> None:
            if before is not None:
                with suppress(Exception, asyncio.CancelledError):
                    await before
            try:
                await work
            except Exception:
                logger.exception("fleet: starting or stopping number {} failed", number)
            finally:
                if self._ops.get(number) is task:
                    del self._ops[number]

        task = asyncio.create_task(after(), name=f"fleet-{number}")
        self._ops[number] = task

    async def settle(self) -> None:
        """Wait for the starts and stops under way."""
        while self._ops:
            await asyncio.gather(*list(self._ops.values()), return_exceptions=True)

    async def drain(self) -> None:
        """A graceful stop: every number stopped here and given back at once."""
        self.draining = True
        with suppress(Exception):
            await self.leases.beat(draining=True, console_url=self.console_url)
        for number in list(self.held):
            self._hand_over(number, release=True)
        await self.settle()
        with suppress(Exception):
            await self.leases.leave()
            await self._notify()
