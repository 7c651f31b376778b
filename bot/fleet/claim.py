"""The number this process serves, held under a lease: wait until it is free, renew it, and
say when it was lost, so a second `wabot run` on the same number waits instead of answering
twice, and takes over once the first stops or dies.

A graceful stop gives the number back at once and wakes the waiting nodes (PostgreSQL
NOTIFY); a node killed with SIGKILL is replaced once its lease lapses (`fleet.lease_seconds`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from loguru import logger

from bot.clock import SystemClock
from bot.fleet.lease import Lease, Leases, StaleLease, gone_from_this_host
from bot.fleet.notify import Wakeup
from bot.fleet.numbers import NumberStore
from bot.fleet.tables import LeaseRow
from bot.stores.db import finished

Status = Callable[[str], None]


class Claim:
    def __init__(self, leases: Leases, number: str, renew_every: float,
                 wakeup: Wakeup | None = None, console_url: str = "") -> None:
        self.leases = leases
        self.number = number
        self.renew_every = renew_every
        self.wakeup = wakeup
        self._listener = wakeup.listener(number) if wakeup is not None else None
        self.console_url = console_url
        self.lease: Lease | None = None
        self._lost: asyncio.Future[str] | None = None

    @property
    def lost(self) -> asyncio.Future[str]:
        """Resolved with the reason once the lease is lost: stop serving the number."""
        if self._lost is None:
            self._lost = asyncio.get_running_loop().create_future()
        return self._lost

    async def wait(self, status: Status | None = None) -> Lease:
        """Return once this node holds the number (at once when it is free)."""
        if self.wakeup is not None:
            await self.wakeup.start()
        said: str | None = ""
        while True:
            await self.leases.beat(console_url=self.console_url)
            await self.leases.ensure([self.number])
            lease = None
            held = await self.leases.lease(self.number)
            if self.leases.state.draining:
                pass  # stopping: the others take what this node gives back
            elif await self.leases.over_share() < 0:  # its fair share: the rest to others
                lease = (await self.leases.acquire(self.number)
                         or await self._from_the_dead(held))
            if lease is not None:
                self.lease = lease
                logger.info("fleet: this node ({}) serves number {} (epoch {})",
                            self.leases.node, self.number, lease.epoch)
                return lease
            holder = held.owner if held is not None else None
            if holder != said:  # once per holder
                line = await self._holder_line(held)
                logger.warning("{}: waiting for it (a second daemon on one number would "
                               "answer every customer twice)", line)
                if status is not None:
                    status(f"standby: {line}")
                said = holder
            await self._pause()

    async def _from_the_dead(self, held: LeaseRow | None) -> Lease | None:
        """The holder was a process on this host that is gone (killed, crashed): take the
        number now rather than when its lease lapses (a restart under systemd)."""
        if held is None or not held.owner:
            return None
        for node in await self.leases.nodes():
            if node.node == held.owner and gone_from_this_host(node):
                logger.info("fleet: node {} (pid {} on this host) is gone: taking number {}",
                            node.node, node.pid, self.number)
                return await self.leases.take_from(self.number, node.node)
        return None

    async def _holder_line(self, held: LeaseRow | None) -> str:
        if held is None or not held.owner:
            return f"number {self.number} is being taken by another node"
        left = max(0.0, held.expires_at - await self.leases.now())
        return (f"number {self.number} is served by node {held.owner} (its lease runs "
                f"{left:.0f} s more)")

    async def _pause(self) -> None:
        if self._listener is None:
            await asyncio.sleep(self.renew_every)
        else:
            await self._listener.wait(self.renew_every)

    async def nudge(self) -> None:
        """A message was journaled here for the number another node serves: wake it."""
        if self.wakeup is not None:
            await self.wakeup.notify(self.number)

    async def catch_up(self, route: Callable[[], Awaitable[int]]) -> None:
        """While serving: route what other nodes journaled, when nudged and at every
        renewal period (a notification can be lost)."""
        while True:
            await self._pause()
            try:
                await finished(route())
            except Exception as exc:
                logger.warning("fleet: could not read the journal for number {}: {}",
                               self.number, exc)

    def check(self) -> None:
        """The fence of every send: raises `StaleLease` unless the lease is still good."""
        if self.lease is None:
            raise StaleLease(f"number {self.number}: this node holds no lease")
        self.lease.check()

    def stamp(self) -> dict[str, Any]:
        """What a guarded write checks in the database (`Leases.guard`)."""
        self.check()
        assert self.lease is not None
        return {"n": self.number, "me": self.leases.node, "e": self.lease.epoch}

    async def keep(self, state: Callable[[], str] | None = None) -> None:
        """Renew the lease until it is lost or the task is cancelled; with each renewal,
        the number's `state` (connected, offline…) for `wabot numbers list` when it changed."""
        lease = self.lease
        assert lease is not None
        shown = ""
        while True:
            await asyncio.sleep(self.renew_every)
            try:
                await finished(self.leases.beat(console_url=self.console_url))
                if state is not None and (now := state()) != shown:
                    await finished(NumberStore(self.leases.db, SystemClock()).set_state(
                        self.number, now))
                    shown = now
                if not await finished(self.leases.renew(lease)):
                    self._lose(f"another node took number {self.number} over (epoch "
                               f"{lease.epoch} is stale)")
                    return
            except Exception as exc:  # the database is unreachable: the lease runs out here
                logger.warning("fleet: could not renew the lease of number {}: {}",
                               self.number, exc)
            if not lease.valid:
                self._lose(f"the lease of number {self.number} could not be renewed in time")
                return

    def _lose(self, reason: str) -> None:
        if self.lease is not None:
            self.lease.lost = True
        logger.error("fleet: {}: no more sends from this node", reason)
        if not self.lost.done():
            self.lost.set_result(reason)

    async def drain(self) -> None:
        """The node stops: say so first, so the others take its numbers as they come free."""
        try:
            await self.leases.drain(console_url=self.console_url)
        except Exception as exc:  # the database is down: the leases lapse instead
            logger.warning("fleet: could not say this node is stopping: {}", exc)

    async def release(self) -> None:
        """A graceful stop: the number is given back and the waiting nodes woken."""
        lease, self.lease = self.lease, None
        if lease is None or lease.lost:
            return
        try:
            await self.leases.release(lease)
        except Exception as exc:
            logger.warning("fleet: number {} not given back ({}); another node takes it "
                           "when the lease lapses", self.number, exc)
            return
        if self.wakeup is not None:
            try:
                await self.wakeup.notify(self.number)
            except Exception as exc:  # the others find it free at their next look
                logger.debug("fleet: other nodes not woken for number {}: {}", self.number, exc)
