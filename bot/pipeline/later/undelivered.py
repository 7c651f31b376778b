"""Replies that did not go out: said so in the customer's history, sent again when the
connection returns, given up on (and the owner told) past an age.

The turn's write happens after its delivery (`Inbox._turn`); what the delivery rows add
(`bot/stores/deliveries.py`):
- a reply refused with "not connected" (`NotDelivered`: provably never left) is remembered
  with a note saying it was not delivered, its journal status is `undelivered`, and
  `Redelivery` sends the bubbles that did not go out once WhatsApp is back, oldest first;
- a send that timed out (`DeliveryUnknown`) is never sent again: the note says delivery is
  uncertain and the rest of the reply was not sent (journal status `unknown`);
- a crash between bubbles leaves a `sending` row and a journal still `received`: at start,
  before the journal is recovered, the turn is remembered (the customer's lines and the
  reply) and the rest of the reply is sent as an undelivered one, instead of a second turn.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from loguru import logger

from bot.agents.agent import Reply
from bot.clock import Clock
from bot.gateway.base import GatewayError
from bot.models import CustomerKey, MemoryMessage, Role
from bot.owner_alert import AlertOwner
from bot.phones import mask
from bot.pipeline.presenter import Presenter, Tracked
from bot.settings import PresenterSettings
from bot.stores.customers import CustomerStore
from bot.stores.deliveries import SENDING, UNDELIVERED, UNKNOWN, Delivery, DeliveryStore
from bot.stores.memory_base import MemoryStore

NOT_YET = ("(Not delivered yet: WhatsApp was not connected. The reply above is sent again "
           "when the connection returns.)")
UNCERTAIN = ("(Delivery uncertain: WhatsApp did not confirm the reply above in time; what "
             "was left of it was not sent.)")
REFUSED = "(Not delivered: WhatsApp refused the reply above.)"
LATE = "(Delivered late, at {at:%H:%M} UTC: the reply above could not go out at first.)"
NEVER = "(Never delivered: WhatsApp stayed unreachable for {minutes:g} minutes.)"


def undelivered(reply: Reply, track: Tracked, exc: GatewayError, now: datetime) -> str:
    """The journal status of a turn whose reply failed to go out; the history says so."""
    note = {UNDELIVERED: NOT_YET, UNKNOWN: UNCERTAIN}.get(track.status, REFUSED)
    if reply.lines:
        reply.lines.append(MemoryMessage(Role.NOTE, note, now, kind="note"))
    return {UNDELIVERED: "undelivered", UNKNOWN: "unknown"}.get(track.status, "failed")


async def settled(presenter: Presenter, track: Tracked) -> None:
    """After the turn's write: a delivery row has nothing left to say unless it waits for
    a retry (`undelivered`)."""
    if presenter.ledger is not None and track.row is not None and track.status != UNDELIVERED:
        await presenter.ledger.done(track.row)


class Redelivery:
    def __init__(self, tenant: str, ledger: DeliveryStore, presenter: Presenter,
                 memory: MemoryStore, customers: CustomerStore, clock: Clock,
                 settings: PresenterSettings, alert: AlertOwner | None = None,
                 connected: asyncio.Event | None = None) -> None:
        self.tenant = tenant
        self.ledger = ledger
        self.presenter = presenter
        self.memory = memory
        self.customers = customers
        self.clock = clock
        self.s = settings
        self.alert = alert
        self.connected = connected
        self.delivered = 0
        self.expired = 0

    async def settle_crashed(self) -> int:
        """Replies cut by a crash between bubbles: remember the turn, queue the rest.

        Call before `Inbox.recover()`: their journal rows stop being `received`, so the
        turn is not run (and answered) a second time."""
        rows = await self.ledger.with_status(SENDING)
        if not rows:
            return 0
        pending = {m.msg_id: m for m in await self.customers.journal_pending(self.tenant)}
        for row in rows:
            key = CustomerKey(self.tenant, row.phone)
            inbound = [pending[i] for i in row.journal_ids if i in pending]
            if inbound:  # the turn's own write never happened
                lines = [MemoryMessage(Role.CUSTOMER, m.text, m.timestamp, msg_id=m.msg_id)
                         for m in inbound]
                lines.append(MemoryMessage(Role.AGENT, "\n\n".join(row.bubbles),
                                           row.created_at))
                await self.memory.append(key, lines)
                await self.customers.journal_mark(self.tenant, row.journal_ids, "undelivered")
            await self.ledger.progress(row.id, row.sent, UNDELIVERED, self.clock.now(),
                                       "the daemon stopped between bubbles")
        logger.info("{} reply(ies) cut by a stop between bubbles: the rest is sent once "
                    "WhatsApp is connected", len(rows))
        return len(rows)

    async def run(self) -> None:
        """Retry until stopped: at every interval while WhatsApp is connected and a reply
        is owed (none owed: it waits for one, without polling)."""
        while True:
            # Only a send of ours can make a reply owed: like a task queued for a turn slot,
            # this wait is settled for a virtual clock until then.
            await self.clock.queue(self.ledger.when_owed())
            try:
                if self.connected is None or self.connected.is_set():
                    await self.retry()
                else:  # the owner hears of a reply given up during the outage, not after
                    await self.expire()
            except Exception:  # the next round tries again; nothing is lost
                logger.exception("retrying undelivered replies failed")
            await self.clock.sleep(self.s.retry_seconds)

    async def expire(self) -> int:
        """Give up on the replies past the retry age; how many."""
        old = [row for row in await self.ledger.undelivered() if self._too_old(row)]
        for row in old:
            await self._expire(row)
        return len(old)

    def _too_old(self, row: Delivery) -> bool:
        return (self.clock.now() - row.created_at
                > timedelta(minutes=self.s.retry_undelivered_minutes))

    async def retry(self) -> int:
        """Send what is owed, oldest first; stop at the first reply that still cannot go
        out (the connection is down again: the rest waits its turn)."""
        delivered = 0
        for row in await self.ledger.undelivered():
            if self._too_old(row):
                await self._expire(row)
                continue
            track = Tracked(row.phone, row.journal_ids, row.id)
            try:
                await self.presenter.send_bubbles(row.chat, row.bubbles, row.kind, track,
                                                  start=row.sent)
            except GatewayError as exc:
                logger.bind(customer=mask(row.phone)).warning(
                    "an undelivered reply still cannot go out: {}", exc)
                if track.status == UNDELIVERED:
                    break
                await self._note(row, UNCERTAIN if track.status == UNKNOWN else REFUSED)
                await self.ledger.done(row.id)
                continue
            await self._note(row, LATE.format(at=self.clock.now()))
            await self.customers.journal_mark(self.tenant, row.journal_ids, "answered")
            await self.ledger.done(row.id)
            delivered += 1
        self.delivered += delivered
        return delivered

    async def _expire(self, row: Delivery) -> None:
        minutes = self.s.retry_undelivered_minutes
        await self._note(row, NEVER.format(minutes=minutes))
        await self.ledger.done(row.id)
        self.expired += 1
        logger.bind(customer=mask(row.phone)).error(
            "gave up on a reply after {:g} minutes without WhatsApp", minutes)
        if self.alert is not None:
            await self.alert(f"undelivered:{row.phone}",
                             f"A reply to {row.phone} could not be delivered for "
                             f"{minutes:g} minutes and was given up; the customer has not "
                             "heard back. Their conversation is in the console.")

    async def _note(self, row: Delivery, text: str) -> None:
        await self.memory.append(CustomerKey(self.tenant, row.phone),
                                 [MemoryMessage(Role.NOTE, text, self.clock.now(),
                                                kind="note")])
