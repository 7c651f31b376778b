"""Whether a due follow-up goes now: the re-check made when it fires.

The customer still exists, has not opted out, is not paused, has not written since, it is
sending time in their timezone, and the caps hold; else the follow-up is moved or dropped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select

from bot.business import Business
from bot.followups.store import AGENT, COUNTED, SENT, FollowUp
from bot.followups.timing import next_slot, sending_hours
from bot.models import CustomerKey
from bot.phones import is_group_customer
from bot.settings import FollowUpRule, FollowUpSettings
from bot.stores.customers import CustomerStore
from bot.stores.memory_base import MemoryStore

# When the customer's pending agent follow-up is due (None: there is none); the rules yield
# to it when it is near.
AgentDue = Callable[[str], Awaitable[datetime | None]]

# Whether the transport may write first to a phone now: None, or why not (the Cloud API's
# 24-hour window with no template; `CloudGateway.may_write_first`). Asked last, before the
# model composes anything.
Reachable = Callable[[str], Awaitable[str | None]]


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Literal["send", "move", "drop"]
    why: str = ""
    at: datetime | None = None
    rescheduled: bool = False  # a move that restarts the replied-since clock


class Policy:
    def __init__(self, tenant: str, settings: FollowUpSettings, rules: dict[str, FollowUpRule],
                 *, customers: CustomerStore, memory: MemoryStore, business: Business,
                 reachable: Reachable | None = None,
                 restricted: Callable[[], datetime | None] | None = None,
                 agent_due: AgentDue | None = None) -> None:
        self.tenant = tenant
        self.s = settings
        self.rules = rules
        self.customers = customers
        self.memory = memory
        self.business = business
        self.hours = sending_hours(business, settings.send_hours)
        # Whether a message we start reaches the customer now (the Cloud API's window).
        self.reachable = reachable
        # Until when WhatsApp restricts the number (timelock, ban): follow-ups move past it.
        self.restricted = restricted
        self.agent_due = agent_due
        self.gap = timedelta(hours=settings.min_gap_hours)

    def cancelled_by_reply(self, fu: FollowUp) -> bool:
        """The agent's own follow-ups; a reply moves a silent rule instead (`_verdict`), and
        a stage rule counts from the stage change, not from messages."""
        return fu.kind not in self.rules

    async def verdict(self, fu: FollowUp, now: datetime) -> Verdict:
        """Send, move or drop; a move further than `max_days_ahead` (or to nowhere) drops."""
        verdict = await self._verdict(fu, now)
        if verdict.action == "move" and (
                verdict.at is None or verdict.at - now > timedelta(days=self.s.max_days_ahead)):
            verdict = Verdict("drop", f"{verdict.why}, and no later chance is near enough")
        return verdict

    async def _verdict(self, fu: FollowUp, now: datetime) -> Verdict:
        customer = await self.customers.get(fu.key)
        if customer is None:
            return Verdict("drop", "the customer no longer exists")
        if customer.opted_out:
            return Verdict("drop", "the customer opted out")
        rule = self.rules.get(fu.kind)
        if fu.kind != AGENT:
            if is_group_customer(fu.phone):  # nudging a group unasked is how numbers get banned
                return Verdict("drop", "lifecycle rules do not message groups")
            if rule is None:
                return Verdict("drop", f"rule {fu.kind!r} is no longer configured")
            if customer.stage != rule.stage:
                return Verdict("drop", f"the customer is a {customer.stage} now")
        last = customer.last_inbound
        if rule is not None and rule.when == "silent" and last is not None:
            # The silence counts from their last message, whatever moves of the job were
            # skipped (`RuleRefresh`): not due yet means later, never early, never dropped.
            due = last + timedelta(hours=rule.after_hours)
            if due > now:
                return Verdict("move", "the customer wrote since", due, rescheduled=True)
        if self.cancelled_by_reply(fu) and last is not None and last > fu.scheduled_at:
            why = "the customer wrote after it was scheduled"
            if self.s.on_reply == "drop":
                return Verdict("drop", why)
            return Verdict("move", why, last + (fu.due_at - fu.scheduled_at), rescheduled=True)
        until = self.restricted() if self.restricted is not None else None
        if until is not None and until > now:
            return Verdict("move", "WhatsApp restricts this number for now", until)
        if customer.paused_until is not None and customer.paused_until > now:
            return Verdict("move", "the chat is paused", customer.paused_until)
        tz = await self.timezone_of(fu.key)
        slot = self.slot(now, tz, fu.phone)
        if slot is None:
            return Verdict("drop", "no sending hours in the next two weeks")
        if slot > now:
            return Verdict("move", f"outside sending hours ({tz.key})", slot)
        since = now - timedelta(days=self.s.per_customer_days)
        if await self.count_sent(since, fu.phone) >= self.s.max_per_customer:
            return Verdict("drop", f"{self.s.max_per_customer} follow-up(s) already sent in "
                                   f"{self.s.per_customer_days:g} days")
        if (spaced := await self._spaced(fu, now, tz)) is not None:
            return spaced
        day_start = datetime.combine(now.astimezone(self.business.tz).date(), time(),
                                     tzinfo=self.business.tz)
        if await self.count_sent(day_start) >= self.s.max_per_day:
            tomorrow = self.slot(day_start + timedelta(days=1), tz, fu.phone)
            return Verdict("move", f"today's cap of {self.s.max_per_day} is reached", tomorrow)
        if self.reachable is not None and (unreachable := await self.reachable(fu.phone)):
            return Verdict("drop", unreachable)
        return Verdict("send")

    async def _spaced(self, fu: FollowUp, now: datetime, tz: ZoneInfo) -> Verdict | None:
        """Proactive messages to one customer keep `min_gap_hours` apart, whatever their
        source (a customer got the agent's follow-up and the "lead silent" nudge seconds
        apart, issue #24); a rule yields to the agent's own follow-up near it, sent or due."""
        if not self.gap:
            return None
        last = await self.last_sent(fu.phone)
        if fu.kind != AGENT:
            due = await self.agent_due(fu.phone) if self.agent_due is not None else None
            if due is not None and due - now < self.gap:
                return Verdict("drop", f"the agent's own follow-up is due {due.isoformat()}")
            if last is not None and last[0] == AGENT and now - last[1] < self.gap:
                return Verdict("drop", f"the agent's own follow-up went at {last[1].isoformat()}")
        if last is not None and now - last[1] < self.gap:
            return Verdict("move", f"a {last[0]} follow-up went at {last[1].isoformat()} "
                                   f"(followups.min_gap_hours = {self.s.min_gap_hours:g})",
                           self.slot(last[1] + self.gap, tz, fu.phone))
        return None

    async def last_sent(self, phone: str) -> tuple[str, datetime] | None:
        """The kind and time of the last follow-up sent (or being sent) to the customer."""
        stmt = select(SENT.c.kind, SENT.c.at).where(
            SENT.c.tenant == self.tenant, SENT.c.phone == phone, SENT.c.status.in_(COUNTED),
        ).order_by(SENT.c.at.desc()).limit(1)
        async with self.customers.db.connect() as conn:
            row = (await conn.execute(stmt)).first()
        return None if row is None else (str(row[0]), row[1])

    def slot(self, at: datetime, tz: ZoneInfo, phone: str) -> datetime | None:
        # A per-customer offset after opening, so moved follow-ups don't all go at 09:00:00.
        seconds = int(self.s.spread_minutes * 60)
        offset = int(hashlib.sha1(phone.encode()).hexdigest()[:8], 16) % seconds if seconds else 0
        return next_slot(at, tz, self.hours, timedelta(seconds=offset))

    async def timezone_of(self, key: CustomerKey) -> ZoneInfo:
        """The customer's timezone when the agent learned it (fact `timezone`), else the
        business's: we do not know where a customer is unless they said so."""
        fact = (await self.memory.profile(key)).facts.get("timezone")
        if fact is not None:
            with suppress(ZoneInfoNotFoundError, ValueError):
                return ZoneInfo(fact.value.strip())
        return self.business.tz

    async def count_sent(self, since: datetime, phone: str | None = None) -> int:
        stmt = select(func.count()).select_from(SENT).where(
            SENT.c.tenant == self.tenant, SENT.c.at >= since, SENT.c.status.in_(COUNTED))
        if phone is not None:
            stmt = stmt.where(SENT.c.phone == phone)
        async with self.customers.db.connect() as conn:
            return int((await conn.execute(stmt)).scalar_one())
