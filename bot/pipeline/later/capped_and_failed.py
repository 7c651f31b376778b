"""Journal states the daemon comes back to: nothing is held back forever (issue #16).

- `capped`: messages over a customer's daily tokens. Once the customer is under the cap
  (the next UTC day, or the owner raised `limits.daily_tokens` and restarted), they are
  answered in one late turn that acknowledges the wait.
- `failed`: turns that failed (the model was down, a reply could not be sent). While some
  younger than `retry.max_age_hours` wait, the model is asked a one-word question every
  `retry.probe_seconds`; once it answers, each customer's failed messages are retried once,
  oldest customer first, in a turn that apologises for the delay. A retry that fails again
  is journaled `failed_final` and left to the owner (the failed-turn alert).

Both are marked `held` before they are queued, so a restart in between answers them through
`Inbox.recover`. One pass runs at start and then every `retry.probe_seconds`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, tzinfo

from loguru import logger

from bot.clock import Clock
from bot.llm import LLM, LLMError
from bot.models import CustomerKey, InboundMessage
from bot.phones import mask
from bot.pipeline.chats import Chats
from bot.pipeline.later.instructions import AFTER_CAP, AFTER_OUTAGE, late_instruction
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
        self.probe_llm = LLM(llm.client, llm.model, temperature=0.0, max_tokens=16)
        # Whether the journal may hold something to revisit: set at start and by `note`
        # (a turn failed, a message was capped), cleared by a pass that found nothing
        # left waiting, so an idle daemon does not query the journal every minute.
        self.waiting = True

    def note(self, _key: CustomerKey | None = None) -> None:
        """Something may wait: a turn failed or a message was capped."""
        self.waiting = True

    async def run(self) -> None:
        while True:
            # Each pass is one of the inbox's tasks: stopping drains it like a turn, and
            # tests that settle the inbox see it finish.
            done = asyncio.create_task(self._pass())
            self.chats.tasks.add(done)
            done.add_done_callback(self.chats.tasks.discard)
            await done
            await self.clock.sleep(self.s.probe_seconds)

    async def _pass(self) -> None:
        try:
            await self.once()
        except Exception:  # the database may be down for a moment: the next pass
            logger.opt(exception=True).warning("revisiting the journal failed")

    async def once(self) -> int:
        """One pass; returns how many messages were queued again."""
        if not self.waiting:
            return 0
        self.waiting = False  # a failure or cap noted during the pass sets it again
        queued = await self.capped()
        if self.s.enabled:
            queued += await self.failed()
        return queued

    async def capped(self) -> int:
        now = self.clock.now()
        queued = 0
        for group in by_customer(await self.customers.journal_pending(self.tenant, ("capped",))):
            if await self.over_budget(group[0].key, now):
                self.waiting = True
                continue
            queued += await self._queue(group, AFTER_CAP, last_try=False)
        return queued

    async def failed(self) -> int:
        since = self.clock.now() - timedelta(hours=self.s.max_age_hours)
        waiting = [m for m in await self.customers.journal_pending(
            self.tenant, ("failed",), since=since) if not m.from_owner]
        if not waiting:
            return 0
        self.waiting = True
        now = self.clock.now()
        groups = [g for g in by_customer(waiting)  # over the cap: it waits for the cap
                  if not await self.over_budget(g[0].key, now)]
        if not groups or not await self._model_answers():
            return 0
        queued = 0
        for group in groups:
            queued += await self._queue(group, AFTER_OUTAGE, last_try=True)
        return queued

    async def _queue(self, group: list[InboundMessage], template: str, last_try: bool) -> int:
        await self.customers.journal_mark(self.tenant, [m.msg_id for m in group], "held")
        logger.bind(customer=mask(group[0].phone)).info(
            "answering {} message(s) late ({})", len(group),
            "after a failure" if last_try else "after the daily cap")
        self.chats.enqueue_late(group, late_instruction(template, group[0].timestamp,
                                                        self.zone), last_try=last_try)
        return len(group)

    async def _model_answers(self) -> bool:
        try:
            answer = await self.probe_llm.complete(list(PROBE))
        except LLMError as exc:
            logger.debug("the model is still failing: {}", exc)
            return False
        if self.usage is not None:
            await self.usage.add(PROBE_LINE, self.clock.now(), tokens_in=answer.tokens_in,
                                 tokens_out=answer.tokens_out)
        return True
