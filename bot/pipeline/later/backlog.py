"""The offline backlog: what WhatsApp delivers after downtime, answered oldest first.

After the number was offline, WhatsApp hands over everything it kept between
OfflineSyncPreview and OfflineSyncCompleted (whatsmeow connectionevents.go handleIB: the
`offline_preview` and `offline` children of the `ib` node). Those messages are tagged
`backlog` by the transport. Answered as if new, they would all start turns at once and the
replies would leave in a burst. Instead they wait here until the sync is over (or
`settle_seconds` passed without WhatsApp saying so), then their chats are handed to the inbox
a few at a time, the chat with the oldest message first; each turn's sends go in the pacer's
backlog lane, ordered by that message's age, behind customers who are waiting now.

- A backlog message older than `max_age` is not answered: it is journaled `stale` and the
  owner gets one alert summarising them all.
- A customer with a held backlog who writes live is answered at once, backlog included, in
  one turn: they are waiting now.
- The turns get an instruction to acknowledge the delay (`instruction`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from datetime import datetime, timedelta

from loguru import logger

from bot.clock import Clock
from bot.gateway.pacer import Lane, lane
from bot.models import CustomerKey, InboundMessage
from bot.owner_alert import AlertOwner

EnqueueLate = Callable[[list[InboundMessage], str], None]  # Inbox.enqueue_late
MarkJournal = Callable[[str, list[str], str], Awaitable[None]]
STALE = "stale"


def instruction(oldest: datetime, now: datetime) -> str:
    """What the agent is told for a turn holding backlog messages."""
    hours = max(0.0, (now - oldest).total_seconds() / 3600)
    age = f"{hours:.0f} hours" if hours >= 1.5 else f"{max(1, round(hours * 60))} minutes"
    return ("These messages reached you late: this WhatsApp number was offline, and the "
            f"first of them was sent about {age} ago. Begin with one short, natural apology "
            "for the slow answer (do not blame technology or say you are automated), then "
            "answer what they asked; if something they asked has passed, say so.")


def lane_for(batch: list[InboundMessage]) -> AbstractContextManager[None]:
    """The pacer's lane for a turn's sends: a live message in it means someone is waiting
    now; a backlog-only turn goes by the age of its oldest message."""
    if batch and all(m.backlog for m in batch):
        return lane(Lane.BACKLOG, min(m.timestamp for m in batch).timestamp())
    return lane(Lane.LIVE)


class Backlog:
    def __init__(self, tenant: str, enqueue: EnqueueLate, mark: MarkJournal, clock: Clock, *,
                 max_age: timedelta, turns: int = 2, settle_seconds: float = 120.0,
                 alert: AlertOwner | None = None) -> None:
        self.tenant = tenant
        self.enqueue = enqueue
        self.mark = mark
        self.clock = clock
        self.max_age = max_age
        self.turns = turns
        self.settle_seconds = settle_seconds
        self.alert = alert
        self.held: dict[CustomerKey, list[InboundMessage]] = {}
        self.in_flight: set[CustomerKey] = set()
        self.stale: list[InboundMessage] = []
        self.released = 0
        self._syncing = False  # between the first backlog message and `complete()`
        self._timer: asyncio.Task[None] | None = None

    def holds(self, key: CustomerKey) -> bool:
        return key in self.held

    async def take(self, msg: InboundMessage) -> bool:
        """The inbox's hook for a message about to be queued: True when the backlog took it."""
        if not msg.backlog:
            if msg.key in self.held:  # they are here now: their backlog goes with this turn
                self._hand_over(self.held.pop(msg.key))
            return False
        if self.clock.now() - msg.timestamp > self.max_age:
            self.stale.append(msg)
            await self.mark(self.tenant, [msg.msg_id], STALE)
            logger.bind(msg_id=msg.msg_id).info("backlog message older than {} not answered",
                                                self.max_age)
            self._start_sync()
            return True
        self.held.setdefault(msg.key, []).append(msg)
        self._start_sync()
        return True

    def _start_sync(self) -> None:
        if self._syncing:
            return
        self._syncing = True
        self._timer = asyncio.create_task(self._settle(), name="backlog-settle")

    async def _settle(self) -> None:
        await self.clock.sleep(self.settle_seconds)
        logger.warning("WhatsApp did not say the offline backlog was complete after {:g} s: "
                       "answering what arrived", self.settle_seconds)
        await self.complete(from_timer=True)

    async def complete(self, from_timer: bool = False) -> None:
        """The offline sync is over: start answering, and tell the owner what went stale."""
        if self._timer is not None and not from_timer:
            self._timer.cancel()
        self._timer = None
        self._syncing = False
        held = sum(len(v) for v in self.held.values())
        if held or self.stale:
            logger.info("offline backlog: {} message(s) from {} customer(s) to answer, {} "
                        "stale", held, len(self.held), len(self.stale))
        self._release()
        await self._report_stale()

    async def turn_done(self, key: CustomerKey) -> None:
        """The inbox's after-turn hook: a backlog chat finished, the next one may start."""
        if key in self.in_flight:
            self.in_flight.discard(key)
            self._release()

    def _release(self) -> None:
        if self._syncing:
            return
        while self.held and len(self.in_flight) < self.turns:
            key = min(self.held, key=lambda k: self.held[k][0].timestamp)
            self.in_flight.add(key)
            self._hand_over(self.held.pop(key))

    def _hand_over(self, msgs: list[InboundMessage]) -> None:
        self.released += len(msgs)
        self.enqueue(msgs, instruction(min(m.timestamp for m in msgs), self.clock.now()))

    async def _report_stale(self) -> None:
        if not self.stale:
            return
        stale, self.stale = self.stale, []
        customers = len({m.phone for m in stale})
        oldest = min(m.timestamp for m in stale)
        text = (f"{len(stale)} message(s) from {customers} customer(s) arrived while WhatsApp "
                f"was offline and were older than {self.max_age.total_seconds() / 3600:g} h "
                f"(the oldest from {oldest:%Y-%m-%d %H:%M} UTC): they were not answered. "
                "They are kept in the journal (status `stale`); "
                "write to those customers yourself if they still matter.")
        if self.alert is None:
            logger.warning(text)
            return
        try:
            await self.alert("backlog_stale", text)
        except Exception:
            logger.exception("owner alert about the stale backlog failed")
