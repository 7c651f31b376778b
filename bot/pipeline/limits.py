"""Who is answered, and how much: allow/deny lists and per-customer caps.

Both are inbox filters, so they act after the message is journaled and before anything
costs money: a denied message creates no agent, calls no model, and is journaled `denied`.
A capped message is never dropped (issue #16.2, #16.3): it is journaled, stored in the
customer's history (by the turn that answers it, so history keeps the order), and answered
when the cap allows:
- over `turns_per_minute` or `messages_per_minute` it is `held` and joins the next turn the
  cap allows, started on its own when the window frees (held messages survive a restart
  through the journal). Up to MAX_HELD wait in memory per customer; past that (a flood)
  they are journaled `rate_limited` and the next turn reads them from history as far as
  its prompt allows. The inbox tells the agent when a turn carries a flood;
- over `daily_tokens` it is `capped` and stored in history at once (the owner sees it);
  `bot.pipeline.later.capped_and_failed` answers it once the customer is under the cap again (the next UTC
  day, or after the owner raised the cap).

Per customer (all in-process, on the injected clock, except the daily tokens):
- `messages_per_minute` messages taken in any 60 s;
- `turns_per_minute` turns started in any 60 s. A message that joins a turn still waiting
  in the debounce window is free; one that would start a new turn counts. So the model is
  called for at most `turns_per_minute` turns a minute (each turn is at most
  MAX_TOOL_ROUNDS + 1 completions), whatever the flood;
- `daily_tokens` model tokens a UTC day (`usage_daily`, so restarts do not reset it). It is
  checked before a turn, so the turn that crosses it finishes.
Over a cap, the customer gets one polite notice (at most one per `notice_every_minutes`,
and the daily one once a day), sent at once without a model call.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from loguru import logger

from bot.clock import Clock
from bot.events.hub import CAPPED, Events
from bot.models import CustomerKey, InboundMessage
from bot.owner_alert import AlertOwner
from bot.phones import mask, whatsapp_forms
from bot.pipeline.inbox import UNANSWERED_KINDS, Fed
from bot.pipeline.media import send_now
from bot.pipeline.presenter import Presenter
from bot.settings import AccessSettings, LimitSettings
from bot.stores.customers import CustomerStore, utc_day

WINDOW = timedelta(minutes=1)
PRUNE_EVERY = 1000  # calls between sweeps of quiet customers' windows
MAX_HELD = 500  # held messages kept in memory per customer: a whole flood joins one turn
# Stores a capped message in the customer's history at once (ids make it idempotent).
Remember = Callable[[InboundMessage], Awaitable[None]]


class Access:
    """The allow and deny lists (E.164). Owner messages always pass."""

    def __init__(self, settings: AccessSettings) -> None:
        # Every form WhatsApp may deliver the number in: `+52 55…` typed, `+521 55…` sent.
        self.allow = frozenset(f for n in settings.allow for f in whatsapp_forms(n))
        self.deny = frozenset(f for n in settings.deny for f in whatsapp_forms(n))

    def allowed(self, phone: str) -> bool:
        if phone in self.deny:
            return False
        return not self.allow or phone in self.allow

    async def __call__(self, msg: InboundMessage) -> Fed | None:
        if msg.from_owner or self.allowed(msg.phone):
            return None
        logger.bind(customer=mask(msg.phone), msg_id=msg.msg_id).debug("denied by access lists")
        return Fed.DENIED


@dataclass(slots=True)
class _Window:
    messages: deque[datetime] = field(default_factory=deque)
    turns: deque[datetime] = field(default_factory=deque)
    noticed_at: datetime | None = None
    budget_noticed_on: str = ""
    held: list[InboundMessage] = field(default_factory=list)

    def trim(self, since: datetime) -> None:
        for q in (self.messages, self.turns):
            while q and q[0] <= since:
                q.popleft()


class RateLimiter:
    """Must be the last filter that awaits: between its check of `has_pending` and the
    message being queued nothing may run, or a new turn could start uncounted."""

    def __init__(self, customers: CustomerStore, presenter: Presenter, clock: Clock,
                 settings: LimitSettings, has_pending: Callable[[CustomerKey], bool],
                 enqueue: Callable[[InboundMessage], None] | None = None,
                 tasks: set[asyncio.Task[None]] | None = None,
                 alert: AlertOwner | None = None, remember: Remember | None = None,
                 events: Events | None = None) -> None:
        self.customers = customers
        self.presenter = presenter
        self.clock = clock
        self.s = settings
        self.has_pending = has_pending
        self.enqueue = enqueue  # None: over the turns cap is dropped like a flood
        self.tasks = tasks if tasks is not None else set()
        self.alert = alert
        self.remember = remember
        self.events = events  # `message.capped`: answered once under the cap again
        self._windows: dict[CustomerKey, _Window] = {}
        self._calls = 0

    async def __call__(self, msg: InboundMessage) -> Fed | None:
        if msg.from_owner or msg.kind in UNANSWERED_KINDS:
            return None
        now = self.clock.now()
        self._prune(now)
        window = self._windows.setdefault(msg.key, _Window())
        window.trim(now - WINDOW)
        if len(window.messages) >= self.s.messages_per_minute:
            if self.enqueue is not None:
                return await self._hold(msg, window, now, "messages per minute")
            return await self._limited(msg, window, now, "messages per minute")
        if self.s.daily_tokens and await self.over_budget(msg.key, now):
            return await self._over_budget(msg, window, utc_day(now))
        new_turn = not self.has_pending(msg.key)  # nothing awaits from here to the queue
        if window.held or (new_turn and len(window.turns) >= self.s.turns_per_minute):
            if self.enqueue is not None:
                window.messages.append(now)
                return await self._hold(msg, window, now, "turns per minute")
            return await self._limited(msg, window, now, "turns per minute")
        window.messages.append(now)
        if new_turn:
            window.turns.append(now)
        return None

    async def _limited(self, msg: InboundMessage, window: _Window, now: datetime,
                       which: str) -> Fed:
        logger.bind(customer=mask(msg.phone), msg_id=msg.msg_id).info("over the {} cap", which)
        quiet = timedelta(minutes=self.s.notice_every_minutes)
        if window.noticed_at is None or now - window.noticed_at >= quiet:
            window.noticed_at = now
            await send_now(self.presenter, self.customers, msg, self.s.notice, "notice")
        return Fed.RATE_LIMITED

    async def over_budget(self, key: CustomerKey, now: datetime) -> bool:
        """Whether the customer used their daily tokens (the day is UTC)."""
        if not self.s.daily_tokens:
            return False
        used = await self.customers.usage_on(key, utc_day(now))
        return used.tokens_in + used.tokens_out >= self.s.daily_tokens

    async def _hold(self, msg: InboundMessage, window: _Window, now: datetime,
                    which: str) -> Fed:
        """Keep the message for the next turn the cap allows; start that turn on time."""
        if len(window.held) >= MAX_HELD:  # in history: the next turn reads it from there
            if self.remember is not None:
                await self.remember(msg)
            await self._limited(msg, window, now, which)
            return Fed.RATE_LIMITED
        window.held.append(msg)
        if len(window.held) == 1:
            task = asyncio.create_task(self._release(msg.key, window))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        await self._limited(msg, window, now, which)
        return Fed.HELD

    async def _release(self, key: CustomerKey, window: _Window) -> None:
        while True:
            now = self.clock.now()
            window.trim(now - WINDOW)
            if len(window.turns) < self.s.turns_per_minute:
                break
            await self.clock.sleep((window.turns[0] + WINDOW - now).total_seconds() + 0.001)
        held, window.held = window.held, []
        if not self.has_pending(key):  # joining a turn still waiting is free
            window.turns.append(self.clock.now())
        assert self.enqueue is not None
        logger.bind(customer=mask(key.phone)).info(
            "{} held message(s) join the turn the cap now allows", len(held))
        for msg in held:
            self.enqueue(msg)

    async def _over_budget(self, msg: InboundMessage, window: _Window, day: str) -> Fed:
        logger.bind(customer=mask(msg.phone), msg_id=msg.msg_id).info(
            "over the daily budget of {} tokens", self.s.daily_tokens)
        if self.remember is not None:
            await self.remember(msg)
        if self.events is not None:
            await self.events.tell(CAPPED, msg.key)
        if window.budget_noticed_on != day:
            window.budget_noticed_on = day
            await send_now(self.presenter, self.customers, msg, self.s.budget_notice, "notice")
            if self.alert is not None:  # the owner decides: answer in person, raise the cap
                await self.alert(f"daily-cap:{msg.phone}",
                                 f"{msg.phone} reached the daily limit of "
                                 f"{self.s.daily_tokens} tokens: their messages are kept and "
                                 "the agent answers them tomorrow (UTC), or at once if you "
                                 "raise limits.daily_tokens and restart")
        return Fed.CAPPED

    def _prune(self, now: datetime) -> None:
        """Forget customers quiet for longer than the window and the notice period."""
        self._calls += 1
        if self._calls % PRUNE_EVERY:
            return
        quiet = now - max(WINDOW, timedelta(minutes=self.s.notice_every_minutes))
        for key in [k for k, w in self._windows.items()
                    if not (w.messages and w.messages[-1] > quiet)
                    and not (w.noticed_at and w.noticed_at > quiet)
                    and w.budget_noticed_on != utc_day(now)]:
            del self._windows[key]
