"""Journal states the daemon comes back to: nothing is held back forever (issue #16).

- `capped`: messages over a customer's daily tokens. Once the customer is under the cap
  (the next UTC day, or the owner raised `limits.daily_tokens` and restarted), they are
  answered in one late turn that acknowledges the wait.
- `failed`: turns that failed (the model was down, a reply could not be sent). While some
  younger than `retry.max_age_hours` wait, the model is asked a one-word question every
  `retry.probe_seconds`; once it answers with text, failed messages are retried, oldest
  customer first, in a turn that apologises for the delay: one customer alone until a
  retried turn is answered, then the others, each retried again with backoff until a turn
  succeeds or the messages are too old (`bot.pipeline.later.retries`). A retry that fails
  sends nothing: the customer had the failure reply, the owner the failed-turn alert.

Both are marked `held` before they are queued, so a restart in between answers them through
`Inbox.recover`. One pass runs at start; the next when what it left waiting is due (failed
turns: `retry.probe_seconds` later; customers over the cap: the next UTC day) or
`retry.probe_seconds` after a turn fails or a message is capped. Between, it waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, time, timedelta, tzinfo

from loguru import logger

from bot.clock import Clock
from bot.llm import LLM, LLMError
from bot.models import CustomerKey, InboundMessage
from bot.phones import mask
from bot.pipeline.chats import Chats
from bot.pipeline.later.instructions import AFTER_CAP, AFTER_OUTAGE, late_instruction
from bot.pipeline.later.retries import Retries
from bot.settings import RetrySettings
from bot.stores.customers import CustomerStore
from bot.stores.usage_lines import PROBE_LINE, BusinessUsage

PROBE = [{"role": "user", "content": "Reply with the single word: ok"}]
# Whether a customer is over their daily tokens now (the rate limiter knows).
OverBudget = Callable[[CustomerKey, datetime], Awaitable[bool]]


def by_customer(msgs: list[InboundMessage]) -> list[list[InboundMessage]]:
    """Messages grouped per customer, each in journal order, customers by their oldest."""
    groups: dict[CustomerKey, list[InboundMessage]] = {}
    for msg in msgs:
        groups.setdefault(msg.key, []).append(msg)
    return list(groups.values())


class Revisit:
    def __init__(self, tenant: str, customers: CustomerStore, chats: Chats, llm: LLM,
                 clock: Clock, settings: RetrySettings, zone: tzinfo,
                 over_budget: OverBudget, usage: BusinessUsage | None = None) -> None:
        self.tenant = tenant
        self.customers = customers
        self.chats = chats
        self.clock = clock
        self.s = settings
        self.zone = zone
        self.over_budget = over_budget
        self.usage = usage  # the probe's tokens: a business line
        # The probe asks for one word: a few tokens a minute while turns wait.
        self.probe_llm = llm.using(llm.model, temperature=0.0, max_tokens=16)
        # When the next pass is due (None: nothing waits): what the last pass left
        # waiting, and `noted`, the pass a note asks for. A note comes before the journal
        # write it announces, so the pass it asks for runs `probe_seconds` later and a pass
        # already due does not stand for it.
        self.due: datetime | None = None
        self.noted: datetime | None = None
        self._wake: asyncio.Future[None] | None = None
        self.retries = Retries(timedelta(seconds=settings.probe_seconds))

    def note(self, _key: CustomerKey | None = None) -> None:
        """Something may wait: a turn failed or a message was capped."""
        at = self.clock.now() + timedelta(seconds=self.s.probe_seconds)
        if self.noted is None or at < self.noted:
            self.noted = at
            if self._wake is not None and not self._wake.done():
                self._wake.set_result(None)

    def done(self, key: CustomerKey) -> None:
        """A turn ended: when it was a retry, the next pass learns what became of it now."""
        if self.retries.watches(key):
            self.noted = self.clock.now()
            if self._wake is not None and not self._wake.done():
                self._wake.set_result(None)

    def _after(self, at: datetime) -> None:
        """Something this pass found waits until `at`."""
        if self.due is None or at < self.due:
            self.due = at

    def _next(self) -> datetime | None:
        return min((t for t in (self.due, self.noted) if t is not None), default=None)

    async def run(self) -> None:
        """A pass at start, then whenever one is due; between, it waits (an idle daemon
        never looks at the journal)."""
        loop = asyncio.get_running_loop()
        while True:
            now = self.clock.now()
            if self.noted is not None and self.noted <= now:
                self.noted = None  # this pass reads what the note announced
            self.due = None
            # Each pass is one of the inbox's tasks: stopping drains it like a turn, and
            # tests that settle the inbox see it finish.
            done = asyncio.create_task(self._pass())
            self.chats.tasks.add(done)
            done.add_done_callback(self.chats.tasks.discard)
            await done
            while (at := self._next()) is None or at > self.clock.now():
                self._wake = loop.create_future()
                left = None if at is None else (at - self.clock.now()).total_seconds()
                await self.clock.idle(self._wake, left)
            self._wake = None

    async def _pass(self) -> None:
        try:
            await self.once()
        except Exception:  # the database may be down for a moment: the next pass
            logger.opt(exception=True).warning("revisiting the journal failed")
            self._after(self.clock.now() + timedelta(seconds=self.s.probe_seconds))

    async def once(self) -> int:
        """One pass; returns how many messages were queued again. What still waits
        afterwards sets `due`."""
        queued = await self.capped()
        if self.s.enabled:
            queued += await self.failed()
        return queued

    def _next_day(self, now: datetime) -> datetime:
        """When the daily cap starts over (the day is UTC, `utc_day`)."""
        return datetime.combine(now.astimezone(UTC).date() + timedelta(days=1), time(), UTC)

    async def capped(self) -> int:
        now = self.clock.now()
        queued = 0
        for group in by_customer(await self.customers.journal_pending(self.tenant, ("capped",))):
            if await self.over_budget(group[0].key, now):
                self._after(self._next_day(now))
                continue
            queued += await self._queue(group, AFTER_CAP, retry=False)
        return queued

    async def failed(self) -> int:
        since = self.clock.now() - timedelta(hours=self.s.max_age_hours)
        waiting = [m for m in await self.customers.journal_pending(
            self.tenant, ("failed",), since=since) if not m.from_owner]
        if self.retries.attempts:
            busy = await self.customers.journal_pending(self.tenant, ("held",), since=since)
            self.retries.learn({m.key for m in waiting}, {m.key for m in busy})
        if not waiting:
            return 0
        now = self.clock.now()
        groups = []
        for group in by_customer(waiting):  # over the cap: it waits for the cap
            if await self.over_budget(group[0].key, now):
                self._after(self._next_day(now))
            else:
                groups.append(group)
        ready, later = self.retries.plan(groups, now)
        if later is not None:
            self._after(later)
        if not ready:
            return 0
        if not await self._model_answers():
            self._after(now + timedelta(seconds=self.s.probe_seconds))
            return 0
        queued = 0
        for group in ready:
            self.retries.tried(group[0].key, now)
            queued += await self._queue(group, AFTER_OUTAGE, retry=True)
        return queued

    async def _queue(self, group: list[InboundMessage], template: str, retry: bool) -> int:
        await self.customers.journal_mark(self.tenant, [m.msg_id for m in group], "held")
        logger.bind(customer=mask(group[0].phone)).info(
            "answering {} message(s) late ({})", len(group),
            "after a failure" if retry else "after the daily cap")
        self.chats.enqueue_late(group, late_instruction(template, group[0].timestamp,
                                                        self.zone), retry=retry)
        return len(group)

    async def _model_answers(self) -> bool:
        """Whether the model answers the one-word question with words: an empty answer or
        only tool calls is not a model that is back."""
        try:
            answer = await self.probe_llm.complete(list(PROBE))
        except LLMError as exc:
            logger.debug("the model is still failing: {}", exc)
            return False
        if self.usage is not None:
            await self.usage.add(PROBE_LINE, self.clock.now(), tokens_in=answer.tokens_in,
                                 tokens_out=answer.tokens_out)
        if not answer.text.strip():
            logger.debug("the model answered the probe without text: still failing")
            return False
        return True
