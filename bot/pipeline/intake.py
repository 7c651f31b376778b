"""Between the transport and the inbox: no message is lost to a database hiccup.

The number's gateway hands every inbound message here (its `Binding.on_message`). A LID
customer whose phone number the message names is merged into that customer first
(`bot.stores.identity`); then the message is fed to the inbox.

WhatsApp has already acknowledged a message when it reaches us, so a journal write that
fails (SQLite locked past its timeout, a PostgreSQL failover) must not lose it. The message
waits in a bounded in-memory queue, in arrival order, and is fed again with exponential
backoff until the journal takes it; newer messages queue behind it so a chat keeps its
order. When the queue is full the transport is made to wait (back-pressure) rather than a
message dropped. The owner is alerted when the journal fails and again when it is back.
Messages still held when the daemon stops are written to a spill file in the state
directory (0600) and fed again at the next start. A transport that delivers again what we
refused (the Cloud API's webhook, `Gateway.redelivers`) gets the error instead: nothing is
held in memory.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import asdict, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from loguru import logger

from bot.clock import Clock
from bot.models import InboundMessage, MessageKind
from bot.owner_alert import AlertOwner
from bot.phones import mask
from bot.pipeline.inbox import Fed, JournalUnavailable

Feed = Callable[[InboundMessage], Awaitable[Fed]]
Observe = Callable[[InboundMessage], Awaitable[None]]


class Intake:
    def __init__(self, feed: Feed, clock: Clock, alert: AlertOwner | None = None, *,
                 capacity: int = 10_000, first_retry: float = 0.5,
                 max_retry: float = 30.0, spill: Path | None = None,
                 observe: Observe | None = None, redelivers: bool = False) -> None:
        self.feed = feed
        self.observe = observe
        self.redelivers = redelivers
        self.clock = clock
        self.alert = alert
        self.capacity = capacity
        self.first_retry = first_retry
        self.max_retry = max_retry
        self.spill = spill
        self.held: deque[InboundMessage] = deque()
        self.retrier: asyncio.Task[None] | None = None
        self._room = asyncio.Condition()
        self._refusing = False  # a redelivering transport's messages fail to journal
        self._alerting: set[asyncio.Task[None]] = set()

    async def __call__(self, msg: InboundMessage) -> None:
        """Feed one message from the transport; never raises, unless the transport
        `redelivers` (then a failed journal write raises and the message comes again)."""
        if self.observe is not None:
            try:  # a LID customer whose number this message names becomes that customer
                await self.observe(msg)
            except Exception:  # merged on a later message or start; the message goes on
                logger.opt(exception=True).warning("merging a LID customer failed")
        if self.redelivers:
            await self._feed_redelivered(msg)
            return
        if self.held:  # behind the ones already waiting, in order
            await self._hold(msg)
            return
        try:
            await self.feed(msg)
        except JournalUnavailable as exc:
            logger.bind(customer=mask(msg.phone), msg_id=msg.msg_id).error(
                "journal write failed ({}): message held in memory and retried", exc)
            await self._hold(msg)
            await self._alert("journal", "the database is not accepting messages; they are "
                                         "held in memory and retried until it is back")
        except Exception:  # the transport must never see (and lose) our exceptions
            logger.bind(customer=mask(msg.phone), msg_id=msg.msg_id).exception(
                "inbound message journaled but could not be queued: answered after restart")

    async def _feed_redelivered(self, msg: InboundMessage) -> None:
        """The transport delivers again what fails here (the Cloud API's webhook answers
        500): nothing is held, but the owner is told the journal fails, and when it is back,
        as for held messages (the README's promise; the webhook's answer does not wait)."""
        try:
            await self.feed(msg)
        except JournalUnavailable:
            if not self._refusing:
                self._refusing = True
                self._later(self._alert(
                    "journal", "the database is not accepting messages; WhatsApp delivers "
                               "them again until it is back, so none is lost yet"))
            raise
        if self._refusing:
            self._refusing = False
            logger.info("journal is back: redelivered messages are recorded")
            self._later(self._alert("journal-back", "the database is back; messages are "
                                                    "recorded again"))

    def _later(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._alerting.add(task)
        task.add_done_callback(self._alerting.discard)

    async def _hold(self, msg: InboundMessage) -> None:
        async with self._room:
            await self._room.wait_for(lambda: len(self.held) < self.capacity)
            self.held.append(msg)
        if self.retrier is None or self.retrier.done():
            self.retrier = asyncio.create_task(self._retry(), name="journal-retry")

    async def _retry(self) -> None:
        delay = self.first_retry
        while self.held:
            await self.clock.sleep(delay)
            try:
                while self.held:
                    await self.feed(self.held[0])
                    async with self._room:
                        self.held.popleft()
                        self._room.notify_all()
            except JournalUnavailable:
                delay = min(delay * 2, self.max_retry)
                logger.warning("journal still failing: {} message(s) held, next try in {} s",
                               len(self.held), delay)
            except Exception:
                msg = self.held[0]
                logger.bind(customer=mask(msg.phone), msg_id=msg.msg_id).exception(
                    "held message journaled but could not be queued: answered after restart")
                async with self._room:
                    self.held.popleft()
                    self._room.notify_all()
        logger.info("journal is back: held messages recorded")
        await self._alert("journal-back", "the database is back; held messages were recorded")

    async def _alert(self, subject: str, text: str) -> None:
        if self.alert is None:
            return
        try:
            await self.alert(subject, text)
        except Exception:
            logger.exception("owner alert failed")

    async def stop(self, within: float) -> int:
        """Give held messages a last chance; returns how many could not be journaled."""
        if self._alerting:
            await asyncio.gather(*list(self._alerting), return_exceptions=True)
        if self.retrier is not None and not self.retrier.done():
            pending = await self.clock.wait({self.retrier}, within)
            for task in pending:
                task.cancel()
        if self.held and self.spill is not None:
            self._write_spill()
            logger.error("{} acknowledged message(s) could not be journaled before stopping: "
                         "kept in {} for the next start", len(self.held), self.spill)
        elif self.held:
            logger.error("{} acknowledged message(s) could not be journaled before stopping",
                         len(self.held))
        return len(self.held)

    def _write_spill(self) -> None:
        assert self.spill is not None
        lines = [json.dumps({**asdict(replace(m, media=None)),
                             "timestamp": m.timestamp.isoformat()}) for m in self.held]
        fd = os.open(self.spill, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in lines))
            f.flush()
            os.fsync(f.fileno())

    async def restore(self) -> int:
        """Feed messages spilled at the last stop (in order); returns how many."""
        if self.spill is None or not self.spill.exists():
            return 0
        spilled = []
        for line in self.spill.read_text(encoding="utf-8").splitlines():
            data = json.loads(line)
            data["timestamp"] = datetime.fromisoformat(data["timestamp"])
            data["kind"] = MessageKind(data["kind"])
            spilled.append(InboundMessage(**data))
        for msg in spilled:
            await self(msg)  # journaled, or held again (and spilled again at stop)
        self.spill.unlink()  # after: a crash before this replays them, the journal dedupes
        return len(spilled)
