"""Proactive follow-ups: the agent comes back at the right moment, and it survives restarts.

Who schedules: the agent (tools `schedule_follow_up`, `cancel_follow_up`) and the lifecycle
rules of the config (`[[followups.rules]]`), refreshed after every inbound turn. Jobs live in
APScheduler 3.11's SQLAlchemyJobStore, one table per tenant, one job per customer and kind
under a fixed id `followup:<tenant>:<phone>:<kind>` (replaced, never duplicated).

When one is due, `fire` re-checks everything (the customer still exists, has not opted out,
is not paused, has not written since, it is sending time in their timezone, the caps hold)
and then hands the turn to `Inbox.proactive`: the customer's agent writes it with its full
memory, the Presenter delivers it, history records it as "followup".

Two drivers, one decision path:
- the real clock: AsyncIOScheduler runs normally and calls `run_followup`;
- any other clock (tests, `wabot simulate`): the scheduler is started paused (it is the job
  store's API) and a timer sleeping on the injected clock takes due jobs and fires them.

Misfires: at start, jobs whose time passed while wabot was down run now when they are no
later than `max_lateness_hours`, else they are removed with a WARNING naming them. The same
bound is every job's `misfire_grace_time`: APScheduler's default of 1 s drops them silently.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import pickle
import re
import threading
from collections import Counter
from collections.abc import Coroutine
from contextlib import suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta
from typing import Any, Literal, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from loguru import logger
from sqlalchemy import Index, Table, delete, func, inspect, select, update
from sqlmodel import Field, SQLModel

from bot.agents.tools import Tool, TurnContext
from bot.business import Business
from bot.clock import Clock, SystemClock
from bot.inbox import Inbox
from bot.models import CustomerKey, Stage
from bot.optout import plain
from bot.phones import mask
from bot.privacy import Holder
from bot.settings import FollowUpRule, FollowUpSettings
from bot.stores.customers import CustomerStore
from bot.stores.db import Database, UTCDateTime, sync_url
from bot.stores.memory_base import MemoryStore

JOB_FUNC = "bot.followups:run_followup"
AGENT = "agent"  # the kind of the follow-up the agent schedules; rules use their name
SLOT_SEARCH_DAYS = 14  # no sending hours in two weeks: the follow-up is dropped

# APScheduler 3 stores only module-level callables with primitive arguments, so a job cannot
# carry its scheduler: `run_followup` finds the live one by tenant here. This is wabot's one
# module-level registry (STYLE rule 3): one daemon serves one tenant, and tests or simulations
# that run several Apps at once give each its own tenant.
_LIVE: dict[str, FollowUpScheduler] = {}


async def run_followup(tenant: str, phone: str, kind: str, reason: str, scheduled_at: str,
                       due_at: str) -> None:
    """The APScheduler job: hand a due follow-up to its tenant's live scheduler."""
    fu = FollowUp(tenant, phone, kind, reason, datetime.fromisoformat(scheduled_at),
                  datetime.fromisoformat(due_at))
    scheduler = _LIVE.get(tenant)
    if scheduler is None:
        logger.warning("follow-up {} fired with no scheduler running: dropped", fu.label)
        return
    # Shielded and tracked: APScheduler cancels running jobs when it shuts down, and this
    # one is already out of the store.
    await asyncio.shield(scheduler.track(scheduler.fire(fu), "followup-fire"))


@dataclass(frozen=True, slots=True)
class FollowUp:
    tenant: str
    phone: str
    kind: str  # AGENT or a rule name
    reason: str
    scheduled_at: datetime  # a customer message after this cancels it (by policy)
    due_at: datetime  # when it was meant for; moves (hours, caps) keep it
    run_at: datetime | None = None  # the job's next run time, when read from the store

    @property
    def key(self) -> CustomerKey:
        return CustomerKey(self.tenant, self.phone)

    @property
    def job_id(self) -> str:
        return job_id(self.tenant, self.phone, self.kind)

    @property
    def label(self) -> str:
        """The job id with the phone masked, for logs."""
        return job_id(self.tenant, mask(self.phone), self.kind)

    def kwargs(self) -> dict[str, str]:
        return {"tenant": self.tenant, "phone": self.phone, "kind": self.kind,
                "reason": self.reason, "scheduled_at": self.scheduled_at.isoformat(),
                "due_at": self.due_at.isoformat()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> FollowUp:
        kw = state["kwargs"]
        return cls(kw["tenant"], kw["phone"], kw["kind"], kw["reason"],
                   datetime.fromisoformat(kw["scheduled_at"]),
                   datetime.fromisoformat(kw["due_at"]), state.get("next_run_time"))


def job_id(tenant: str, phone: str, kind: str) -> str:
    return f"followup:{tenant}:{phone}:{kind}"


class FollowUpSent(SQLModel, table=True):
    """Every proactive message attempted: the caps count these."""

    __tablename__ = "followups_sent"
    __table_args__ = (
        Index("ix_followups_sent_day", "tenant", "at"),
        Index("ix_followups_sent_customer", "tenant", "phone", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    tenant: str = Field(max_length=64)
    phone: str = Field(max_length=20)
    kind: str = Field(max_length=40)
    at: datetime = Field(sa_type=UTCDateTime)
    status: str = "sending"  # sending → sent | failed (failed ones do not count)


SENT = cast(Table, FollowUpSent.__table__)  # type: ignore[attr-defined]
COUNTED = ("sending", "sent")


# --- the job table -------------------------------------------------------------------------


def job_table_name(tenant: str) -> str:
    """`followup_jobs_<tenant>`; a hash keeps odd or long tenant ids unique and short."""
    slug = re.sub(r"[^a-z0-9_]", "_", tenant.lower())
    if slug == tenant and len(slug) <= 40:
        return f"followup_jobs_{slug}"
    return f"followup_jobs_{slug[:40]}_{hashlib.sha1(tenant.encode()).hexdigest()[:8]}"


class JobTable:
    """The tenant's job table read directly (listing, due jobs, cancelling): the rows
    APScheduler reads, without unpickling 100,000 jobs to show twenty. Synchronous."""

    def __init__(self, sql_url: str, tenant: str) -> None:
        self.tenant = tenant
        url = sync_url(sql_url)
        options: dict[str, Any] = (
            {"connect_args": {"timeout": 30}} if url.startswith("sqlite")
            else {"pool_pre_ping": True})
        self.store = SQLAlchemyJobStore(url=url, tablename=job_table_name(tenant),
                                        engine_options=options)
        self.t: Table = self.store.jobs_t

    def exists(self) -> bool:
        return bool(inspect(self.store.engine).has_table(self.t.name))

    def pending(self, phone: str | None = None, limit: int | None = None,
                due_by: datetime | None = None, kinds: list[str] | None = None,
                ) -> list[FollowUp]:
        """Pending follow-ups, soonest first: of one customer (of these kinds: a primary
        key lookup; any kind: a scan), and/or due by a time."""
        c = self.t.c
        stmt = select(c.job_state).order_by(c.next_run_time)
        if phone is not None and kinds is not None:
            stmt = stmt.where(c.id.in_([job_id(self.tenant, phone, k) for k in kinds]))
        elif phone is not None:
            stmt = stmt.where(c.id.startswith(job_id(self.tenant, phone, ""), autoescape=True))
        if due_by is not None:
            stmt = stmt.where(c.next_run_time <= due_by.timestamp())
        if limit is not None:
            stmt = stmt.limit(limit)
        with self.store.engine.connect() as conn:
            rows = conn.execute(stmt).scalars().all()
        return [FollowUp.from_state(pickle.loads(state)) for state in rows]

    def remove(self, ids: list[str]) -> int:
        if not ids:
            return 0
        with self.store.engine.begin() as conn:
            return int(conn.execute(self.t.delete().where(self.t.c.id.in_(ids))).rowcount or 0)

    def count(self) -> int:
        with self.store.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(self.t)).scalar_one())

    def close(self) -> None:
        self.store.engine.dispose()


def erase_tenant_followups(sql_url: str, tenant: str) -> None:
    """Drop a tenant's job table and its sent log (a finished simulation). Synchronous."""
    table = JobTable(sql_url, tenant)
    try:
        table.t.drop(table.store.engine, checkfirst=True)
        if inspect(table.store.engine).has_table(SENT.name):
            with table.store.engine.begin() as conn:
                conn.execute(delete(SENT).where(SENT.c.tenant == tenant))
    finally:
        table.close()


def privacy_holder(sql_url: str, db: Database) -> Holder:
    """Follow-ups as a holder of customer data, for `wabot export` and `wabot forget`."""

    def remove_pending(key: CustomerKey, erase: bool) -> list[FollowUp]:
        table = JobTable(sql_url, key.tenant)
        try:
            found = table.pending(key.phone) if table.exists() else []
            if erase:
                table.remove([fu.job_id for fu in found])
            return found
        finally:
            table.close()

    mine = (SENT.c.tenant, SENT.c.phone)

    async def export(key: CustomerKey) -> dict[str, Any]:
        pending = await asyncio.to_thread(remove_pending, key, False)
        stmt = select(SENT.c.kind, SENT.c.at, SENT.c.status).where(
            mine[0] == key.tenant, mine[1] == key.phone).order_by(SENT.c.at)
        async with db.connect() as conn:
            sent = (await conn.execute(stmt)).all()
        if not pending and not sent:
            return {}
        return {"pending": [{"kind": fu.kind, "at": (fu.run_at or fu.due_at).isoformat(),
                             "reason": fu.reason} for fu in pending],
                "sent": [{"kind": k, "at": at.isoformat(), "status": st} for k, at, st in sent]}

    async def forget(key: CustomerKey) -> None:
        await asyncio.to_thread(remove_pending, key, True)
        async with db.begin() as conn:
            await conn.execute(delete(SENT).where(mine[0] == key.tenant, mine[1] == key.phone))

    return Holder("followups", export, forget)


# --- time: "in 3 days", sending hours ---------------------------------------------------------

_UNITS = {"minute": 60, "min": 60, "minuto": 60, "hour": 3600, "hora": 3600, "h": 3600,
          "day": 86400, "dia": 86400, "week": 7 * 86400, "semana": 7 * 86400,
          "month": 30 * 86400, "mes": 30 * 86400}
_COUNTS = {"a": 1, "an": 1, "one": 1, "un": 1, "una": 1, "uno": 1, "two": 2, "dos": 2,
           "three": 3, "tres": 3, "couple": 2, "few": 3}
_NAMED = {"tomorrow": 1, "manana": 1, "day after tomorrow": 2, "pasado manana": 2,
          "next week": 7, "la proxima semana": 7, "la semana que viene": 7}
_RELATIVE = re.compile(r"^(?:in|en|within|dentro de)\s+(?:a\s+)?(\S+)\s+(?:of\s+)?([a-z]+)$")


def _unit_seconds(word: str) -> int | None:
    for candidate in (word, word.removesuffix("s"), word.removesuffix("es")):
        if candidate in _UNITS:
            return _UNITS[candidate]
    return None


def parse_when(text: str, now: datetime, tz: ZoneInfo) -> datetime:
    """A follow-up time the model wrote: relative ('in 3 days', 'en 2 horas', 'tomorrow')
    or a local date/time ('2026-03-14 10:00', a bare date means 10:00). Aware UTC."""
    raw = text.strip()
    words = plain(raw)
    if words in _NAMED:
        return now + timedelta(days=_NAMED[words])
    if m := _RELATIVE.match(words):
        count = int(m[1]) if m[1].isdigit() else _COUNTS.get(m[1])
        unit = _unit_seconds(m[2])
        if count is not None and unit is not None:
            return now + timedelta(seconds=count * unit)
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"cannot read the time {text!r}: write 'in 3 days', 'in 2 hours', "
                         "'tomorrow' or a local date and time like 2026-03-14 10:00") from None
    if re.fullmatch(r"\d{4}-\d\d-\d\d", raw):
        parsed = parsed.replace(hour=10)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed.astimezone(UTC)


Span = tuple[time, time]


def next_slot(at: datetime, tz: ZoneInfo, span_of: dict[int, Span], spread: timedelta,
              ) -> datetime | None:
    """`at` itself when it is inside its local day's sending hours, else the next opening
    plus `spread` (kept inside that day's hours); None when nothing opens in two weeks."""
    local = at.astimezone(tz)
    for offset in range(SLOT_SEARCH_DAYS + 1):
        day = local.date() + timedelta(days=offset)
        span = span_of.get(day.weekday())
        if span is None:
            continue
        start = datetime.combine(day, span[0], tzinfo=tz)
        end = datetime.combine(day, span[1], tzinfo=tz)
        if start <= local < end:
            return at
        if local < start:
            return (start + min(spread, (end - start) / 2)).astimezone(UTC)
    return None


def _span(text: str) -> Span:
    start, end = (time.fromisoformat(p) for p in text.split("-"))
    return start, end


def sending_hours(business: Business, fallback: str) -> dict[int, Span]:
    """The business's opening hours per weekday; `fallback` every day when it states none."""
    if not business.hours:
        return dict.fromkeys(range(7), _span(fallback))
    return {d: span for d in range(7) if (span := business.open_span(d)) is not None}


# --- the scheduler ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Literal["send", "move", "drop"]
    why: str = ""
    at: datetime | None = None
    rescheduled: bool = False  # a move that restarts the replied-since clock


class FollowUpScheduler:
    def __init__(self, tenant: str, sql_url: str, settings: FollowUpSettings, *,
                 customers: CustomerStore, memory: MemoryStore, inbox: Inbox,
                 business: Business, clock: Clock, own_timer: bool | None = None) -> None:
        self.tenant = tenant
        self.s = settings
        self.customers = customers
        self.memory = memory
        self.inbox = inbox
        self.business = business
        self.clock = clock
        self.rules: dict[str, FollowUpRule] = {r.name: r for r in settings.rules}
        self.hours = sending_hours(business, settings.send_hours)
        self.own_timer = not isinstance(clock, SystemClock) if own_timer is None else own_timer
        self.grace = timedelta(hours=settings.max_lateness_hours)
        self.table = JobTable(sql_url, tenant)
        self.scheduler = AsyncIOScheduler(
            jobstores={"default": self.table.store}, timezone=UTC,
            job_defaults={"misfire_grace_time": max(1, int(self.grace.total_seconds())),
                          "coalesce": True, "max_instances": 1})
        self.outcomes: Counter[str] = Counter()
        self._lock = threading.Lock()  # store writes and the timer's take-due, across threads
        self._gate = asyncio.Lock()  # caps are counted and reserved one follow-up at a time
        self._timer: asyncio.Task[None] | None = None
        self._timer_at: datetime | None = None
        self._work: set[asyncio.Task[Any]] = set()  # firing and delivering
        self._started = False
        self._closing = False

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        if _LIVE.get(self.tenant) not in (None, self):
            raise RuntimeError(f"a follow-up scheduler already runs for tenant {self.tenant}")
        # Creates the job table when missing: one quick statement, on the loop at startup.
        self.scheduler.start(paused=True)
        _LIVE[self.tenant] = self
        self._started = True
        await self._sweep_missed()
        if self.own_timer:
            self._arm(await asyncio.to_thread(self.store_next_run_time))
        else:
            self.scheduler.resume()

    def close(self) -> None:
        """Stop firing (the daemon is stopping): due follow-ups stay for the next start."""
        self._closing = True
        if self._timer is not None:
            self._timer.cancel()
        if self._started and not self.own_timer:
            self.scheduler.pause()

    async def stop(self, grace: float = 10.0) -> None:
        """After the inbox drained: let deliveries record their outcome, shut the scheduler."""
        self.close()
        with suppress(TimeoutError):
            await asyncio.wait_for(self.idle(), grace)
        if self._timer is not None:
            with suppress(asyncio.CancelledError):
                await self._timer
        if self._started:
            self._started = False
            self.scheduler.shutdown(wait=False)
            await asyncio.sleep(0)  # AsyncIOScheduler shuts down in a loop callback
        if _LIVE.get(self.tenant) is self:
            del _LIVE[self.tenant]

    async def _sweep_missed(self) -> None:
        """Follow-ups that fell due while wabot was down: run when no later than the
        lateness bound, else drop — each with a log line, never silently."""
        now = self.clock.now()
        due = await asyncio.to_thread(self.table.pending, None, None, now)
        late = [fu for fu in due if fu.run_at is not None and now - fu.run_at > self.grace]
        await asyncio.to_thread(self._remove_ids, [fu.job_id for fu in late])
        hours = self.s.max_lateness_hours
        for fu in due:
            missed = now - (fu.run_at or now)
            if fu in late:
                self.outcomes["missed"] += 1
                logger.warning("follow-up {} was due {} and missed by {} while wabot was down: "
                               "dropped (later than followups.max_lateness_hours = {})",
                               fu.label, fu.run_at, missed, hours)
            else:
                logger.info("follow-up {} missed by {} while wabot was down: running it now",
                            fu.label, missed)

    # --- the store (synchronous: called through asyncio.to_thread) ------------------------

    def _add_sync(self, fu: FollowUp, at: datetime) -> None:
        with self._lock:
            self.scheduler.add_job(
                JOB_FUNC, trigger="date", run_date=at, id=fu.job_id, kwargs=fu.kwargs(),
                name=f"{fu.kind} follow-up for {mask(fu.phone)}", replace_existing=True)

    def _remove_ids(self, ids: list[str]) -> int:
        with self._lock:
            return self.table.remove(ids)

    def _take_due(self, now: datetime) -> list[FollowUp]:
        with self._lock:
            due = self.table.pending(due_by=now)
            self.table.remove([fu.job_id for fu in due])
        return due

    def store_next_run_time(self) -> datetime | None:
        return cast("datetime | None", self.table.store.get_next_run_time())

    # --- scheduling --------------------------------------------------------------------

    async def put(self, fu: FollowUp, at: datetime) -> None:
        """Store (or replace) the follow-up to run at `at`."""
        await asyncio.to_thread(self._add_sync, fu, at)
        if self.own_timer:
            self._arm(at)

    async def schedule(self, key: CustomerKey, kind: str, reason: str, due: datetime,
                       scheduled_at: datetime | None = None) -> FollowUp:
        fu = FollowUp(key.tenant, key.phone, kind, reason, scheduled_at or self.clock.now(), due)
        await self.put(fu, due)
        return fu

    async def pending(self, phone: str | None = None, limit: int | None = None,
                      kinds: list[str] | None = None) -> list[FollowUp]:
        return await asyncio.to_thread(self.table.pending, phone, limit, None, kinds)

    async def cancel(self, key: CustomerKey, kind: str | None = None) -> int:
        """Remove the customer's pending follow-ups (of one kind); returns how many. Known
        kinds only: a job of a rule since removed from the config is dropped when due."""
        kinds = [kind] if kind is not None else [AGENT, *self.rules]
        ids = [job_id(key.tenant, key.phone, k) for k in kinds]
        return await asyncio.to_thread(self._remove_ids, ids)

    async def on_inbound(self, key: CustomerKey) -> None:
        """After a customer's turn: drop what their message made stale, refresh the rules
        ("silent for 24 h" counts from their last message), start the stage rules."""
        customer = await self.customers.get(key, max_age=2.0)  # the turn just touched it
        if customer is None or customer.opted_out:
            return
        now = self.clock.now()
        last = customer.last_inbound or now
        kinds = [AGENT, *self.rules]  # every turn: look up known ids, never scan the table
        pending = {fu.kind: fu for fu in await self.pending(key.phone, kinds=kinds)}
        stale = [fu.job_id for fu in pending.values()
                 if self._cancelled_by_reply(fu) and last > fu.scheduled_at
                 and self.s.on_reply == "drop"]
        stale += [pending[r.name].job_id for r in self.rules.values()
                  if r.name in pending and r.when == "silent" and r.stage != customer.stage]
        await asyncio.to_thread(self._remove_ids, stale)
        for rule in self.rules.values():
            if rule.stage != customer.stage:
                continue
            if rule.when == "silent":
                await self.schedule(key, rule.name, rule.reason,
                                    last + timedelta(hours=rule.after_hours), now)
            elif rule.name not in pending:
                entered = await self._entered(key, rule)
                if entered is not None and entered >= last:  # the stage changed this turn
                    await self.schedule(key, rule.name, rule.reason,
                                        entered + timedelta(hours=rule.after_hours), now)

    async def _entered(self, key: CustomerKey, rule: FollowUpRule) -> datetime | None:
        changes = [c.at for c in (await self.memory.profile(key)).stages
                   if c.to_stage is Stage(rule.stage)]
        return max(changes, default=None)

    def _cancelled_by_reply(self, fu: FollowUp) -> bool:
        rule = self.rules.get(fu.kind)
        return rule is None or rule.when == "silent"

    # --- firing ------------------------------------------------------------------------

    async def idle(self) -> None:
        """Wait for follow-ups being fired or delivered (after the inbox settled)."""
        while self._work:
            await asyncio.wait(set(self._work))

    def track(self, work: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run `work` as a task that `stop` waits for."""
        task = asyncio.create_task(work, name=name)
        self._work.add(task)
        task.add_done_callback(self._work.discard)
        return task

    async def fire(self, fu: FollowUp) -> str:
        """Re-check a due follow-up, then send, move or drop it; returns the action."""
        log = logger.bind(customer=mask(fu.phone), followup=fu.kind)
        now = self.clock.now()
        if self._closing:
            await self.put(fu, now)  # runs after the restart, within the lateness bound
            return "deferred"
        async with self._gate:
            verdict = await self._verdict(fu, now)
            if verdict.action == "move" and (
                    verdict.at is None or verdict.at - now > timedelta(days=self.s.max_days_ahead)):
                verdict = Verdict("drop", f"{verdict.why}, and no later chance is near enough")
            row = await self._reserve(fu, now) if verdict.action == "send" else 0
        self.outcomes[verdict.action] += 1
        if verdict.action == "drop":
            log.info("follow-up {} dropped: {}", fu.label, verdict.why)
        elif verdict.action == "move" and verdict.at is not None:
            moved = replace(fu, scheduled_at=now) if verdict.rescheduled else fu
            await self.put(moved, verdict.at)
            log.info("follow-up {} moved to {}: {}", fu.label, verdict.at.isoformat(), verdict.why)
        else:
            self.track(self._deliver(fu, row, now), "followup-deliver")
            # One step of the new task queues the turn in the inbox (whose tasks the simulate
            # harness and tests wait on) before this returns; awaiting the turn here would
            # keep a watched task busy while the turn sleeps on the virtual clock.
            await asyncio.sleep(0)
        return verdict.action

    async def _verdict(self, fu: FollowUp, now: datetime) -> Verdict:
        customer = await self.customers.get(fu.key)
        if customer is None:
            return Verdict("drop", "the customer no longer exists")
        if customer.opted_out:
            return Verdict("drop", "the customer opted out")
        rule = self.rules.get(fu.kind)
        if fu.kind != AGENT:
            if rule is None:
                return Verdict("drop", f"rule {fu.kind!r} is no longer configured")
            if customer.stage != rule.stage:
                return Verdict("drop", f"the customer is a {customer.stage} now")
        last = customer.last_inbound
        if self._cancelled_by_reply(fu) and last is not None and last > fu.scheduled_at:
            why = "the customer wrote after it was scheduled"
            if self.s.on_reply == "drop":
                return Verdict("drop", why)
            return Verdict("move", why, last + (fu.due_at - fu.scheduled_at), rescheduled=True)
        if customer.paused_until is not None and customer.paused_until > now:
            return Verdict("move", "the chat is paused", customer.paused_until)
        tz = await self.timezone_of(fu.key)
        slot = self.slot(now, tz, fu.phone)
        if slot is None:
            return Verdict("drop", "no sending hours in the next two weeks")
        if slot > now:
            return Verdict("move", f"outside sending hours ({tz.key})", slot)
        since = now - timedelta(days=self.s.per_customer_days)
        if await self._count_sent(since, fu.phone) >= self.s.max_per_customer:
            return Verdict("drop", f"{self.s.max_per_customer} follow-up(s) already sent in "
                                   f"{self.s.per_customer_days:g} days")
        day_start = datetime.combine(now.astimezone(self.business.tz).date(), time(),
                                     tzinfo=self.business.tz)
        if await self._count_sent(day_start) >= self.s.max_per_day:
            tomorrow = self.slot(day_start + timedelta(days=1), tz, fu.phone)
            return Verdict("move", f"today's cap of {self.s.max_per_day} is reached", tomorrow)
        return Verdict("send")

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

    async def _count_sent(self, since: datetime, phone: str | None = None) -> int:
        stmt = select(func.count()).select_from(SENT).where(
            SENT.c.tenant == self.tenant, SENT.c.at >= since, SENT.c.status.in_(COUNTED))
        if phone is not None:
            stmt = stmt.where(SENT.c.phone == phone)
        async with self.customers.db.connect() as conn:
            return int((await conn.execute(stmt)).scalar_one())

    async def _reserve(self, fu: FollowUp, now: datetime) -> int:
        async with self.customers.db.begin() as conn:
            result = await conn.execute(SENT.insert().values(
                tenant=self.tenant, phone=fu.phone, kind=fu.kind, at=now, status="sending"))
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])

    async def _deliver(self, fu: FollowUp, row: int, fired_at: datetime) -> None:
        log = logger.bind(customer=mask(fu.phone), followup=fu.kind)
        try:
            sent = await self.inbox.proactive(fu.key, self.instruction(fu), kind="followup")
            if not sent and self._closing:
                async with self.customers.db.begin() as conn:
                    await conn.execute(delete(SENT).where(SENT.c.id == row))
                await self.put(fu, fired_at)
                log.info("stopping: follow-up {} kept for after the restart", fu.label)
                return
            async with self.customers.db.begin() as conn:
                await conn.execute(update(SENT).where(SENT.c.id == row).values(
                    status="sent" if sent else "failed"))
            if sent:
                log.info("follow-up {} sent", fu.label)
            else:
                log.warning("follow-up {} was not delivered (the model or the send failed)",
                            fu.label)
        except Exception:
            log.exception("follow-up {} failed", fu.label)

    @staticmethod
    def instruction(fu: FollowUp) -> str:
        return ("You are writing first: this is a follow-up, not an answer. "
                f"Why you are writing now: {fu.reason}\n"
                "Write one short, natural WhatsApp message that fits your conversation so "
                "far, in the customer's language. Do not say it was scheduled or automatic, "
                "do not repeat earlier messages, no pressure.")

    # --- the clock-driven timer (any clock but the system clock) ---------------------------

    def _arm(self, at: datetime | None) -> None:
        """Wake at `at` to run due follow-ups, unless already waking earlier."""
        if at is None or self._closing or not self._started:
            return
        if self._timer is not None and not self._timer.done():
            if self._timer_at is not None and self._timer_at <= at:
                return
            self._timer.cancel()
        self._timer_at = at
        self._timer = asyncio.create_task(self._wake_at(at), name="followups-timer")

    async def _wake_at(self, at: datetime) -> None:
        await self.clock.sleep((at - self.clock.now()).total_seconds())
        # Before anything else runs: the run is one of the inbox's tasks, which is what the
        # virtual clock lets settle before it moves again.
        task = asyncio.create_task(self._run_due(), name="followups-due")
        self.inbox.tasks.add(task)
        task.add_done_callback(self.inbox.tasks.discard)

    async def _run_due(self) -> None:
        now = self.clock.now()
        retry: datetime | None = None
        try:
            for fu in await asyncio.to_thread(self._take_due, now):
                if fu.run_at is not None and now - fu.run_at > self.grace:
                    self.outcomes["missed"] += 1
                    logger.warning("follow-up {} missed by {}: dropped (later than "
                                   "followups.max_lateness_hours)", fu.label, now - fu.run_at)
                    continue
                await self.fire(fu)
            retry = await asyncio.to_thread(self.store_next_run_time)
        except Exception:
            logger.exception("due follow-ups could not be run; trying again in a minute")
            retry = now + timedelta(minutes=1)
        self._arm(retry)

    # --- the agent's tools -------------------------------------------------------------

    def tools(self) -> list[Tool]:
        return [Tool("schedule_follow_up", SCHEDULE_DESCRIPTION, SCHEDULE_PARAMETERS,
                     self._tool_schedule),
                Tool("cancel_follow_up", CANCEL_DESCRIPTION, CANCEL_PARAMETERS,
                     self._tool_cancel)]

    async def _tool_schedule(self, ctx: TurnContext, args: dict[str, Any]) -> str:
        when, reason = str(args.get("when") or "").strip(), str(args.get("reason") or "").strip()
        if not when or not reason:
            raise ValueError("give both `when` and `reason`")
        customer = await ctx.customers.get(ctx.key)
        if customer is not None and customer.opted_out:
            return json.dumps({"error": "this customer opted out of messages we start; "
                                        "do not promise to write first"})
        tz = await self.timezone_of(ctx.key)
        due = parse_when(when, ctx.now, tz)
        if due <= ctx.now:
            local_now = ctx.now.astimezone(tz)
            raise ValueError(f"{when!r} is in the past (now is {local_now:%Y-%m-%d %H:%M})")
        if due - ctx.now > timedelta(days=self.s.max_days_ahead):
            raise ValueError(f"at most {self.s.max_days_ahead} days ahead")
        await self.schedule(ctx.key, AGENT, reason[:500], due, ctx.now)
        return json.dumps({"ok": True, "due": f"{due.astimezone(tz):%A %Y-%m-%d %H:%M}",
                           "timezone": tz.key, "note": "sent during sending hours only; "
                           "dropped if the customer writes first"})

    async def _tool_cancel(self, ctx: TurnContext, args: dict[str, Any]) -> str:
        kind = str(args.get("kind") or AGENT)
        if kind != "all" and kind != AGENT and kind not in self.rules:
            raise ValueError(f"kind must be 'agent' or 'all', not {kind!r}")
        removed = await self.cancel(ctx.key, None if kind == "all" else kind)
        return json.dumps({"ok": True, "cancelled": removed})


SCHEDULE_DESCRIPTION = (
    "Come back to this customer later on your own, like a good salesperson: 'did the size "
    "fit?' in 3 days, or after the payday they mentioned. One pending follow-up per customer "
    "(a new one replaces it). It goes out during sending hours, and is dropped if the "
    "customer writes first: schedule it again then if it still matters. Times are the "
    "customer's local time once you saved remember_fact key 'timezone' (an IANA name such "
    "as Europe/Madrid), else the business's.")
SCHEDULE_PARAMETERS = {"type": "object", "properties": {
    "when": {"type": "string", "description": "'in 3 days', 'in 2 hours', 'tomorrow', "
             "'next week', or a local date and time like 2026-03-14 10:00"},
    "reason": {"type": "string", "description": "what to follow up on and why, for your "
               "future self"},
}, "required": ["when", "reason"]}
CANCEL_DESCRIPTION = (
    "Cancel the follow-up you scheduled with this customer (e.g. they said they will write "
    "when ready). kind 'all' also cancels the automatic check-ins.")
CANCEL_PARAMETERS = {"type": "object", "properties": {
    "kind": {"type": "string", "enum": [AGENT, "all"]}}}
