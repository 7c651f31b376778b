"""The router: journal first, dedupe, filter, then queue in the chat (`bot.pipeline.chats`).

`feed(message)` is the single entry for inbound messages — the number's intake calls it, and
so do tests and `wabot simulate`. The filters, given in order when the inbox is built, each
take a message (an outcome) or let it through.

In a fleet (`bot.fleet`), a node that does not hold the number yet only journals what
reaches it (`serving` False) and nudges the owner, which routes what others journaled with
`catch_up`.
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from loguru import logger
from sqlalchemy.exc import SQLAlchemyError

from bot.agents.agent import Turn
from bot.events.hub import Events
from bot.models import InboundMessage, MessageKind, Role
from bot.phones import customer_key_error, mask
from bot.pipeline.chats import Chats
from bot.pipeline.outcomes import (
    KIND_NOTES,
    UNANSWERED_KINDS,
    Describer,
    Fed,
    Filter,
    JournalUnavailable,
    Proactive,
    describe_kind,
)
from bot.settings import InboxSettings
from bot.stores.customers import CustomerStore
from bot.text import visible

_UNWRITTEN = sys.maxsize  # a feed is writing the message's journal line

__all__ = ["KIND_NOTES", "UNANSWERED_KINDS", "Describer", "Fed", "Filter", "Inbox",
           "JournalUnavailable", "Proactive", "describe_kind"]
# bot.pipeline.later.backlog: True when it took the message (it comes back through
# `Chats.enqueue_late`).
TakeBacklog = Callable[[InboundMessage], Awaitable[bool]]
Nudge = Callable[[], Awaitable[None]]


class Inbox:
    def __init__(self, tenant: str, customers: CustomerStore, chats: Chats, events: Events,
                 settings: InboxSettings, *, filters: Sequence[Filter] = (),
                 take_backlog: TakeBacklog | None = None, serving: bool = True,
                 nudge: Nudge | None = None) -> None:
        self.tenant = tenant
        self.customers = customers
        self.chats = chats
        self.events = events
        self.s = settings
        self.filters = tuple(filters)
        self.take_backlog = take_backlog
        self._live: set[str] | None = set()  # ids fed before `recover` ran
        # Ids recovery routed: a feed whose journal write landed just before recovery read
        # the journal must not route its message a second time.
        self._recovered: set[str] = set()
        # Journal only: another node serves the number (`serve()` once this one does).
        self.serving = serving
        self.nudge = nudge  # tells the owner node a message waits in the journal
        # Ids this inbox routed, or is feeding, while they are unanswered: `catch_up` routes
        # only the journaled messages no feed of this process is handling. Each maps to the
        # tick its journal line was known to be written by (`_UNWRITTEN` while a feed is
        # writing it): a catch-up forgets an id missing from its read of the journal only
        # when the line was written before that read began, else it would forget a message
        # whose turn is running and route it a second time at the next catch-up.
        self._routed: dict[str, int] = {}
        self._ticks = itertools.count(1)
        chats.dropped = self._dropped

    @property
    def tasks(self) -> set[asyncio.Task[None]]:
        """The chats' turns and the work queued beside them (what a stop drains)."""
        return self.chats.tasks

    # --- entry -------------------------------------------------------------------------

    async def feed(self, msg: InboundMessage) -> Fed:
        """Journal, dedupe, filter and queue one inbound message."""
        if msg.tenant != self.tenant:
            raise ValueError(f"message for tenant {msg.tenant!r} fed to {self.tenant!r}")
        problem = customer_key_error(msg.phone)
        if problem is not None:  # a tampered event: no customer, no journal line (#24.9)
            logger.bind(customer=mask(msg.phone), msg_id=msg.msg_id[:64]).warning(
                "message dropped: its sender id is no WhatsApp number ({})", problem)
            return Fed.INVALID
        if len(msg.text) > self.s.max_text_chars:
            msg.text = msg.text[: self.s.max_text_chars] + " …[message truncated]"
        arrived = self.chats.clock.now()  # the debounce counts from here (`Chats.enqueue`)
        previous = self._routed.get(msg.msg_id)
        self._routed[msg.msg_id] = _UNWRITTEN  # before the journal: a catch-up skips it
        try:
            added = await self.customers.journal_add(msg)
        # sqlite3's own errors come from the SQLite writer (`bot.stores.sqlite_writer`),
        # which the journal uses instead of the engine: a locked file is one of them.
        except (SQLAlchemyError, sqlite3.Error, OSError) as exc:  # the intake holds it
            self._unroute(msg.msg_id, previous)
            raise JournalUnavailable(str(exc.__class__.__name__)) from exc
        if not added:
            # Journaled by another node (its catch-up or ours routes it), or by this one.
            self._unroute(msg.msg_id, previous)
            logger.bind(customer=mask(msg.phone), msg_id=msg.msg_id).debug("duplicate dropped")
            return Fed.DUPLICATE
        self._routed[msg.msg_id] = next(self._ticks)
        if not self.serving:
            self._routed.pop(msg.msg_id, None)
            if self.nudge is not None:
                await self.nudge()
            return Fed.DEFERRED
        if msg.msg_id in self._recovered:
            return Fed.QUEUED
        if self._live is not None:
            self._live.add(msg.msg_id)
        self.events.emit("message.received", {
            "phone": msg.phone, "msg_id": msg.msg_id, "kind": msg.kind.value,
            "text": msg.text, "from_owner": msg.from_owner})
        return await self._route(msg, arrived)

    def _dropped(self, msg_ids: list[str]) -> None:
        """A turn was dropped because this node could not act for the number then (its
        lease ran out on its own clock before a renewal came through, or another node took
        it): the messages stay in the journal, and the next catch-up routes them again,
        here if the lease was renewed, else on the node that holds the number now."""
        for msg_id in msg_ids:
            self._routed.pop(msg_id, None)
            self._recovered.discard(msg_id)

    def _unroute(self, msg_id: str, previous: int | None) -> None:
        if previous is None:
            self._routed.pop(msg_id, None)
        else:
            self._routed[msg_id] = previous

    async def _route(self, msg: InboundMessage, arrived: datetime | None = None) -> Fed:
        log = logger.bind(customer=mask(msg.phone), msg_id=msg.msg_id)
        for check in self.filters:
            outcome = await check(msg)
            if outcome is not None:
                log.info("message {} by a filter", outcome.value)
                await self.customers.journal_mark(self.tenant, [msg.msg_id], outcome.value)
                return outcome
        if msg.from_owner:
            await self._record_owner(msg)
            return Fed.OWNER
        if msg.kind in UNANSWERED_KINDS or (msg.kind is MessageKind.TEXT and not visible(msg.text)):
            log.info("ignored {} message with nothing to answer", msg.kind.value)
            await self.customers.journal_mark(self.tenant, [msg.msg_id], "ignored")
            return Fed.IGNORED
        if not self.chats.accepting:
            log.info("stopping: message journaled, it will be answered after restart")
            return Fed.DEFERRED
        if self.take_backlog is not None and await self.take_backlog(msg):
            return Fed.QUEUED
        self.chats.enqueue(msg, arrived)
        return Fed.QUEUED

    async def _record_owner(self, msg: InboundMessage) -> None:
        """The owner typed in this chat from the phone: the agent must know what was said."""
        async with self.chats.registry.use(msg.key) as agent:
            await agent.remember(Role.OWNER, [Turn(msg.text, msg.msg_id, msg.timestamp)],
                                 kind="owner")
        await self.customers.journal_mark(self.tenant, [msg.msg_id], "owner")

    async def recover(self) -> int:
        """Queue journaled messages that were never answered (the daemon stopped mid-turn).

        Call it once the transport can send. Messages that arrived live in the meantime are
        already queued: they are skipped here, so nothing is answered twice.
        """
        # The live set keeps recording until every journaled message is routed, and is
        # checked as each one is: a message fed while the journal is read (or routed) is
        # queued once, by its feed; one whose feed resumes after recovery routed it is
        # found in `_recovered` by that feed.
        live = self._live if self._live is not None else set()
        pending: list[InboundMessage] = []
        for msg in await self.customers.journal_pending(self.tenant):
            if msg.msg_id in live:  # checked as each is routed: feeds go on meanwhile
                continue
            self._recovered.add(msg.msg_id)
            self._routed[msg.msg_id] = next(self._ticks)
            pending.append(msg)
            await self._route(msg)
        self._live = None
        if pending:
            logger.info("recovering {} unanswered message(s) from the journal", len(pending))
        return len(pending)

    async def catch_up(self) -> int:
        """Route the journaled messages that no feed of this process handles: those another
        node of the fleet journaled for this number (a webhook reaches any node)."""
        if self._live is not None or not self.serving:  # `recover` has not run yet
            return 0
        read_at = next(self._ticks)
        pending = await self.customers.journal_pending(self.tenant, statuses=("received",))
        waiting = {m.msg_id for m in pending}
        for msg_id, written in list(self._routed.items()):
            if written < read_at and msg_id not in waiting:
                del self._routed[msg_id]  # answered since (a feed still writing is kept)
        routed = 0
        for msg in pending:
            if msg.msg_id in self._routed:
                continue
            self._routed[msg.msg_id] = read_at
            routed += 1
            await self._route(msg)
        if routed:
            logger.info("{} journaled message(s) routed here (journaled by another node, or dropped"
                        " here while the lease was not renewed in time)", routed)
        return routed

    def serve(self) -> None:
        """This node holds the number now: route what arrives (not only journal it)."""
        self.serving = True

    # --- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        """Stop accepting turns (messages are still journaled) and end debounce waits."""
        self.chats.close()

    async def drain(self, within: float) -> bool:
        """Wait for turns in flight; True when all finished inside `within` seconds."""
        return await self.chats.drain(within)
