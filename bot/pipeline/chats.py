"""The chats: one queue per customer, one turn at a time per chat, chats in parallel.

Each chat gets a worker task while it has work: it waits for the burst to end (debounce),
then runs one turn for everything that arrived, in order; turns the agent starts itself
(follow-ups) queue in the same order. Chats run concurrently up to a bound. The worker and
its state disappear when the chat goes quiet. What happens after a turn (done, failed) goes
to the number's event hub (`bot.events.hub`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from loguru import logger

from bot.agents.agent import Reply, Turn
from bot.agents.registry import AgentRegistry
from bot.clock import EPOCH, Clock
from bot.events.hub import TURN_DONE, TURN_FAILED, Events
from bot.gateway.addresses import receipts_by_sender
from bot.gateway.base import GatewayError, NotOwner
from bot.gateway.pacer import Lane, lane
from bot.models import CustomerKey, InboundMessage, MessageKind
from bot.phones import mask
from bot.pipeline.later.backlog import lane_for
from bot.pipeline.later.instructions import fit_flood
from bot.pipeline.later.undelivered import settled, undelivered
from bot.pipeline.outcomes import Describer, Fed, Proactive, describe_kind
from bot.pipeline.presenter import Presenter, Tracked
from bot.pipeline.slots import TurnSlots
from bot.settings import InboxSettings
from bot.stores.customers import Contact, CustomerStore


@dataclass(slots=True)
class _Chat:
    pending: list[InboundMessage] = field(default_factory=list)
    proactive: list[Proactive] = field(default_factory=list)
    first_at: datetime = EPOCH
    last_at: datetime = EPOCH
    worker: asyncio.Task[None] | None = None
    late: str = ""  # the next turn answers late (`enqueue_late`): what the agent is told
    retry: bool = False  # the next turn retries failed ones: failing again is quiet


class Hold(Protocol):
    """Asked after the model answered and before the reply goes out: True holds the reply
    back (the owner took the chat over while the turn was running; `bot.pipeline.takeover`),
    and `held` is told once the held reply is stored."""

    async def hold(self, key: CustomerKey) -> bool: ...

    async def held(self, key: CustomerKey) -> None: ...


class Chats:
    def __init__(self, tenant: str, customers: CustomerStore, registry: AgentRegistry,
                 presenter: Presenter, clock: Clock, settings: InboxSettings, events: Events,
                 *, describe: Describer | None = None, hold: Hold | None = None) -> None:
        self.tenant = tenant
        self.customers = customers
        self.registry = registry
        self.presenter = presenter
        self.clock = clock
        self.s = settings
        self.events = events
        self._describe = describe
        self.hold = hold
        self._chats: dict[CustomerKey, _Chat] = {}
        self._slots = TurnSlots(settings.max_concurrent_turns, clock)
        self.accepting = True
        self._flush = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()
        self.turns = 0
        self.failures = 0
        # Told the journal ids of a turn dropped because this node may not act for the
        # number (`Inbox` forgets it routed them, so its next catch-up routes them again).
        self.dropped: Callable[[list[str]], None] | None = None

    # --- queueing ------------------------------------------------------------------------

    def enqueue(self, msg: InboundMessage, arrived: datetime | None = None) -> None:
        """Queue a journaled message (a filter held it back: it joins the chat's next turn).
        `arrived`: when it reached the daemon, before its journal write; the debounce counts
        from then, so the write's disk flush passes inside the wait, not before it."""
        if self.accepting:  # stopping: it stays in the journal for the next start
            self._enqueue(msg, arrived)

    def enqueue_late(self, msgs: list[InboundMessage], instruction: str,
                     retry: bool = False) -> None:
        """Queue journaled messages answered late (after the daily cap or a model outage):
        their turn carries `instruction`; with `retry`, a failure is quiet (`_turn`)."""
        if not msgs or not self.accepting:
            return
        chat = self._chats.setdefault(msgs[0].key, _Chat())
        chat.late, chat.retry = instruction, retry
        for msg in msgs:
            self._enqueue(msg)

    def _enqueue(self, msg: InboundMessage, arrived: datetime | None = None) -> None:
        chat = self._chats.setdefault(msg.key, _Chat())
        now = self.clock.now()
        at = min(arrived, now) if arrived is not None else now
        if not chat.pending:
            chat.first_at = chat.last_at = at
        chat.last_at = max(chat.last_at, at)
        chat.pending.append(msg)
        self._wake(msg.key, chat)

    def _wake(self, key: CustomerKey, chat: _Chat) -> None:
        if chat.worker is None:
            chat.worker = asyncio.create_task(self._work(key, chat))
            self.tasks.add(chat.worker)
            chat.worker.add_done_callback(self.tasks.discard)

    async def proactive(self, key: CustomerKey, instruction: str, kind: str = "followup") -> bool:
        """Run a turn the agent starts itself, in order with the chat's other turns.

        Returns True when a message was delivered. The caller checks whether it should be
        sent at all (opt-out, pause, caps) before calling.
        """
        if not self.accepting:
            return False
        chat = self._chats.setdefault(key, _Chat())
        item = Proactive(instruction, kind, asyncio.get_running_loop().create_future())
        chat.proactive.append(item)
        self._wake(key, chat)
        return await item.done

    def busy(self, key: CustomerKey) -> bool:
        """Whether the chat has a turn queued or running."""
        return key in self._chats

    def has_pending(self, key: CustomerKey) -> bool:
        """Whether a message of this chat is waiting for a turn that has not started yet
        (a new message joins that turn instead of starting one)."""
        chat = self._chats.get(key)
        return bool(chat and chat.pending)

    # --- the per-chat worker -----------------------------------------------------------

    async def _debounce(self, chat: _Chat) -> None:
        """Wait until the burst is over: `debounce` quiet seconds, at most `debounce_max`."""
        while not self._flush.is_set():
            until = min(chat.last_at + timedelta(seconds=self.s.debounce_seconds),
                        chat.first_at + timedelta(seconds=self.s.debounce_max_seconds))
            left = (until - self.clock.now()).total_seconds()
            if left <= 0:
                return
            await self.clock.sleep(left)

    async def _work(self, key: CustomerKey, chat: _Chat) -> None:
        try:
            # Once closed, no new turn starts: what is pending stays in the journal for the
            # next start or the node taking the number over (a drain hands over at once).
            while (chat.pending or chat.proactive) and self.accepting:
                if chat.pending:
                    await self._debounce(chat)
                    batch, chat.pending = chat.pending, []
                    late, chat.late = chat.late, ""
                    retry, chat.retry = chat.retry, False
                    async with self._slots.hold():
                        with lane_for(batch):
                            await self._turn(key, batch, late, retry)
                elif chat.proactive:
                    item = chat.proactive.pop(0)
                    async with self._slots.hold():
                        with lane(Lane.PROACTIVE):
                            sent = await self._proactive_turn(key, item)
                    item.done.set_result(sent)
        finally:
            chat.worker = None
            for item in chat.proactive:
                if not item.done.done():
                    item.done.set_result(False)
            if not chat.pending and not chat.proactive:
                self._chats.pop(key, None)

    async def _proactive_turn(self, key: CustomerKey, item: Proactive) -> bool:
        log = logger.bind(customer=mask(key.phone))
        try:
            async with self.registry.use(key) as agent:
                customer = agent.customer
                chat_addr = (customer.wa_jid if customer and customer.wa_jid
                             else self.presenter.gateway.chat_for(key.phone))
                now = self.clock.now()
                reply = await agent.handle([], Contact(), now, instruction=item.instruction,
                                           kind=item.kind)
                sent = 0
                try:
                    if not reply.failed and reply.text:
                        sent = await self.presenter.deliver(chat_addr, reply.text,
                                                            kind=item.kind, keep_typing=True)
                finally:
                    try:
                        if reply.failed:
                            reply.lines = []  # nothing was said: nothing to remember
                        await agent.commit(reply, Contact(), now, sent=sent)
                    finally:
                        await self.presenter.done_typing(chat_addr)
                return sent > 0
        except Exception:
            log.exception("{} turn failed", item.kind)
            await self._failed(key)
            return False

    async def _turn(self, key: CustomerKey, batch: list[InboundMessage], late: str = "",
                    retry: bool = False) -> None:
        ids = [m.msg_id for m in batch]
        last = batch[-1]
        chat_addr = last.chat or self.presenter.gateway.chat_for(key.phone)
        log = logger.bind(customer=mask(key.phone), msg_id=last.msg_id)
        status = "answered"
        committed = False
        try:
            lines = [Turn(await self._text_of(m), m.msg_id, m.timestamp) for m in batch]
            # A name given on one line of a burst is the burst's (`simulate` and WhatsApp
            # may carry it on the first message only).
            name = next((m.push_name for m in reversed(batch) if m.push_name), "")
            contact = Contact(name=name, wa_jid=last.chat, lid=last.lid)
            async with self.registry.use(key) as agent:
                now = self.clock.now()
                async with self._reading(chat_addr, batch):
                    lines, flood = await fit_flood(agent, lines)
                    reply = await agent.handle(
                        lines, contact, now,
                        instruction="\n\n".join(filter(None, (late, flood))))
                if reply.failed:
                    status = "failed"
                    if retry:
                        # The customer had the failure reply, the owner the alert, when it
                        # first failed: a retry that fails sends and remembers nothing, and
                        # is tried again later (`bot.pipeline.later.retries`).
                        reply = Reply("", failed=True, run=reply.run)
                sent = 0
                track = Tracked(key.phone, ids)
                try:
                    try:
                        if reply.text and self.hold is not None and await self.hold.hold(key):
                            status = Fed.PAUSED.value
                        elif reply.text:
                            sent = await self.presenter.deliver(chat_addr, reply.text,
                                                                track=track, keep_typing=True)
                    except NotOwner:
                        raise
                    except GatewayError as exc:
                        status = undelivered(reply, track, exc, self.clock.now())
                        log.error("reply could not be delivered: {}", exc)
                    # The turn's one write: both sides, usage, and the journal status;
                    # straight after the reply went out, before "typing…" ends.
                    await agent.commit(reply, contact, now, sent=sent, journal_ids=ids,
                                       status=status)
                    committed = True
                finally:
                    await self.presenter.done_typing(chat_addr)
                await settled(self.presenter, track)
                if status == Fed.PAUSED.value and self.hold is not None:
                    await self.hold.held(key)
            self.turns += 1
        except NotOwner as exc:  # another node serves the number: it answers from the journal
            log.warning("turn dropped here, the message stays in the journal: {}", exc)
            if self.dropped is not None:  # or this one, once its lease is renewed in time
                self.dropped(ids)
            await self.events.tell(TURN_DONE, key)
            return
        except Exception:
            status = "failed"
            log.exception("turn failed")
        if status == "failed" and retry:
            log.warning("retrying failed messages failed again: tried again later")
        elif status == "failed":
            await self._failed(key)
        if not committed:
            await self.customers.journal_mark(self.tenant, ids, status)
        await self.events.tell(TURN_DONE, key)

    @asynccontextmanager
    async def _reading(self, chat: str, batch: list[InboundMessage]) -> AsyncIterator[None]:
        """The batch's blue ticks while the block runs (the model thinking): sent beside it,
        not before it, so the reply waits for the ticks (they still come first: the block's
        end waits for them), not the model for the ticks' round trip."""
        task = asyncio.create_task(self._mark_read(chat, receipts_by_sender(batch)))
        self.tasks.add(task)  # a stop drains it; a virtual clock settles it
        task.add_done_callback(self.tasks.discard)
        try:
            yield
        except BaseException as exc:
            if not isinstance(exc, Exception):  # cancelled (a stop): ticks are cosmetic
                task.cancel()
                raise
            await self.clock.queue(task)  # a failed turn still read the messages
            raise
        await self.clock.queue(task)

    async def _mark_read(self, chat: str, receipts: dict[str, list[str]]) -> None:
        for sender, ids in receipts.items():
            await self.presenter.mark_read(chat, ids, sender)

    async def _failed(self, key: CustomerKey) -> None:
        self.failures += 1
        self.events.emit("turn.failed", {"phone": key.phone})
        await self.events.tell(TURN_FAILED, key)

    async def _text_of(self, msg: InboundMessage) -> str:
        if msg.kind is MessageKind.TEXT:
            return msg.text
        if self._describe is not None:
            return await self._describe(msg)
        return describe_kind(msg)

    # --- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        """Stop accepting turns (messages are still journaled) and end debounce waits: a
        turn already running finishes, one not started yet is left to the journal."""
        self.accepting = False
        self._flush.set()

    async def drain(self, within: float) -> bool:
        """Wait for turns in flight; True when all finished inside `within` seconds."""
        pending = await self.clock.wait(set(self.tasks), within)
        for task in pending:
            task.cancel()
        return not pending
