"""FollowUpScheduler: keeps follow-ups in the job store and fires them when due.

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
import pickle
import threading
from collections import Counter
from collections.abc import Callable, Coroutine
from contextlib import suppress
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

from apscheduler.events import EVENT_JOB_REMOVED
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from loguru import logger
from sqlalchemy import delete, update

from bot.agents.tools import Tool
from bot.business import Business
from bot.clock import Clock, SystemClock
from bot.followups.pending import PendingCache
from bot.followups.policy import Policy, Reachable
from bot.followups.rules import RuleRefresh
from bot.followups.store import AGENT, SENT, FollowUp, JobTable, job_id
from bot.followups.tools import FollowUpTools
from bot.models import CustomerKey, Stage
from bot.phones import mask
from bot.pipeline.chats import Chats
from bot.settings import FollowUpRule, FollowUpSettings
from bot.stores.customers import CustomerStore
from bot.stores.memory_base import MemoryStore
from bot.stores.turn_writer import JobRow
from bot.text import quoted

# The job callable as stored in every job row: existing job stores hold this reference, so it
# stays the package path (re-exported by `bot/followups/__init__.py`) and is passed as a
# string; a function object would be stored as `bot.followups.scheduler:run_followup`.
JOB_FUNC = "bot.followups:run_followup"
T = TypeVar("T")

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


def _job_name(fu: FollowUp) -> str:
    return f"{fu.kind} follow-up for {mask(fu.phone)}"


class FollowUpScheduler:
    def __init__(self, tenant: str, sql_url: str, settings: FollowUpSettings, *,
                 customers: CustomerStore, memory: MemoryStore, chats: Chats,
                 business: Business, clock: Clock, own_timer: bool | None = None,
                 reachable: Reachable | None = None,
                 restricted: Callable[[], datetime | None] | None = None) -> None:
        self.tenant = tenant
        self.s = settings
        self.customers = customers
        self.memory = memory
        self.chats = chats
        self.business = business
        self.clock = clock
        self.rules: dict[str, FollowUpRule] = {r.name: r for r in settings.rules}
        self.policy = Policy(tenant, settings, self.rules, customers=customers,
                             memory=memory, business=business, reachable=reachable,
                             restricted=restricted, agent_due=self._agent_due)
        self.own_timer = not isinstance(clock, SystemClock) if own_timer is None else own_timer
        self.grace = timedelta(hours=settings.max_lateness_hours)
        self.table = JobTable(sql_url, tenant)
        self._misfire_grace = max(1, int(self.grace.total_seconds()))
        self.scheduler = AsyncIOScheduler(
            jobstores={"default": self.table.store}, timezone=UTC,
            job_defaults={"misfire_grace_time": self._misfire_grace,
                          "coalesce": True, "max_instances": 1})
        self._refresh = RuleRefresh(self)  # the config's rules, after every inbound turn
        self.cache = PendingCache([AGENT, *self.rules])
        self.scheduler.add_listener(  # the jobs APScheduler ran
            lambda event: self.cache.removed([event.job_id]), EVENT_JOB_REMOVED)
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
        await asyncio.to_thread(self.table.create)
        self.scheduler.start(paused=True)  # the table exists: nothing written on the loop
        _LIVE[self.tenant] = self
        self._started = True
        self.customers.on_first_contact[self.tenant] = self._first_contact
        self.customers.first_jobs[self.tenant] = self.first_jobs
        await self._sweep_missed()
        if self.own_timer:
            self._arm(await asyncio.to_thread(self.store_next_run_time))
        else:
            self.scheduler.resume()

    def close(self) -> None:
        """Stop firing (the daemon is stopping): due follow-ups stay for the next start."""
        self._closing = True
        if self.customers.first_jobs.get(self.tenant) == self.first_jobs:
            del self.customers.first_jobs[self.tenant]
            del self.customers.on_first_contact[self.tenant]
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
        self.table.close()
        if _LIVE.get(self.tenant) is self:
            del _LIVE[self.tenant]

    async def _sweep_missed(self) -> None:
        """Follow-ups that fell due while wabot was down: run when no later than the
        lateness bound, else drop — each with a log line, never silently."""
        now = self.clock.now()
        due = await asyncio.to_thread(self.table.pending, None, None, now)
        late = [fu for fu in due if fu.run_at is not None and now - fu.run_at > self.grace]
        await self.remove([fu.job_id for fu in late])
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
                name=_job_name(fu), replace_existing=True)

    def remove_ids(self, ids: list[str]) -> int:
        with self._lock:
            self.cache.removed(ids)  # first: a lookup racing the delete is then not kept
            return self.table.remove(ids)

    def _take_due(self, now: datetime) -> list[FollowUp]:
        with self._lock:
            due = self.table.pending(due_by=now)
            self.cache.removed(ids := [fu.job_id for fu in due])
            self.table.remove(ids)
        return due

    async def remove(self, ids: list[str]) -> int:
        """Remove these jobs (missing ones are skipped); returns how many were there."""
        return await self._write(self.remove_ids, ids)

    async def _write(self, work: Callable[..., T], *args: Any) -> T:
        async with self.customers.db.writing():  # queued with our SQLite writers
            return await asyncio.to_thread(work, *args)

    def store_next_run_time(self) -> datetime | None:
        return cast("datetime | None", self.table.store.get_next_run_time())

    # --- scheduling --------------------------------------------------------------------

    async def put(self, fu: FollowUp, at: datetime) -> None:
        """Store (or replace) the follow-up to run at `at`."""
        # Before the insert: APScheduler may run (and remove) a due job before we resume.
        self.cache.added(fu, at)
        await self._write(self._add_sync, fu, at)
        if self.own_timer:
            self._arm(at)

    async def schedule(self, key: CustomerKey, kind: str, reason: str, due: datetime,
                       scheduled_at: datetime | None = None) -> FollowUp:
        fu = FollowUp(key.tenant, key.phone, kind, reason, scheduled_at or self.clock.now(), due)
        await self.put(fu, due)
        return fu

    async def pending(self, phone: str | None = None, limit: int | None = None,
                      kinds: list[str] | None = None) -> list[FollowUp]:
        if phone is None or kinds is None or limit is not None or not self.cache.covers(kinds):
            return await asyncio.to_thread(self.table.pending, phone, limit, None, kinds)
        if (cached := self.cache.get(phone, kinds)) is not None:
            return cached  # the rules' refresh after every turn: no SELECT
        self.cache.looking(phone)
        found: list[FollowUp] | None = None
        try:
            found = await asyncio.to_thread(self.table.pending, phone, None, None,
                                            sorted(self.cache.kinds))
        finally:
            self.cache.found(phone, found)
        return [fu for fu in found if fu.kind in kinds]

    async def _agent_due(self, phone: str) -> datetime | None:
        return next((fu.run_at for fu in await self.pending(phone, kinds=[AGENT])), None)

    async def cancel(self, key: CustomerKey, kind: str | None = None) -> int:
        """Remove the customer's pending follow-ups (of one kind); returns how many. Known
        kinds only: a job of a rule since removed from the config is dropped when due."""
        kinds = [kind] if kind is not None else [AGENT, *self.rules]
        return await self.remove([job_id(key.tenant, key.phone, k) for k in kinds])

    async def on_inbound(self, key: CustomerKey) -> None:
        """After a customer's turn: refresh the lifecycle rules (see `RuleRefresh`)."""
        await self._refresh.on_inbound(key)

    # --- a first contact -----------------------------------------------------------------

    def _first_contact(self, key: CustomerKey) -> None:
        self.cache.none_yet(key.phone)

    def first_jobs(self, key: CustomerKey, at: datetime,
                   ) -> tuple[list[JobRow], Callable[[], None]]:
        """The jobs the lifecycle rules give a new customer whose first message came `at`
        (a lead's "silent" rules, as `RuleRefresh` would schedule them after the turn), as
        rows the turn's write stores with the customer's row: a first contact's follow-up
        is committed with it or not at all (then the journal replays the message). Also
        what to call once committed."""
        due = [(FollowUp(key.tenant, key.phone, r.name, r.reason, at,
                         at + timedelta(hours=r.after_hours)), r)
               for r in self.rules.values() if r.stage == Stage.LEAD.value and r.when == "silent"]
        rows = [self._job_row(fu) for fu, _ in due]

        def committed() -> None:
            for fu, _ in due:
                self.cache.added(fu, fu.due_at)
            if not due:
                return
            first = min(fu.due_at for fu, _ in due)
            if self.own_timer:
                self._arm(first)
            elif self._started:
                self._wake_for(first)

        return rows, committed

    def _wake_for(self, at: datetime) -> None:
        """Have APScheduler look at the job table again, unless the wake-up it planned
        comes no later than `at` (each look reads the table twice, on the event loop: per
        first contact that was the costliest part of the follow-up's work)."""
        planned = getattr(self.scheduler, "_timeout", None)  # AsyncIOScheduler's timer
        if planned is not None and not planned.cancelled():
            loop = asyncio.get_running_loop()
            if loop.time() + (at - self.clock.now()).total_seconds() >= planned.when():
                return
        self.scheduler.wakeup()

    def _job_row(self, fu: FollowUp) -> JobRow:
        """The row APScheduler's `add_job` stores for this follow-up: `Job.__getstate__`
        of the job it would make (tests/followups/test_first_contact_job.py compares)."""
        at = fu.due_at
        state = {"version": 1, "id": fu.job_id, "func": JOB_FUNC,
                 "trigger": DateTrigger(run_date=at, timezone=UTC), "executor": "default",
                 "args": (), "kwargs": fu.kwargs(), "name": _job_name(fu),
                 "misfire_grace_time": self._misfire_grace, "coalesce": True,
                 "max_instances": 1, "next_run_time": at}
        return JobRow(self.table.t.name, fu.job_id, at.timestamp(),
                      pickle.dumps(state, self.table.store.pickle_protocol))

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
            verdict = await self.policy.verdict(fu, now)
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
            sent = await self.chats.proactive(fu.key, self.instruction(fu), kind="followup")
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
                # The reason may be the agent's own words about what the customer said:
                # quoted and on one line, as the prompt's other customer-derived fields.
                f"Why you are writing now: {quoted(fu.reason, 300)}\n"
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
        self.chats.tasks.add(task)
        task.add_done_callback(self.chats.tasks.discard)

    async def _run_due(self) -> None:
        now = self.clock.now()
        retry: datetime | None = None
        try:
            due = await self._write(self._take_due, now)
            # The agent's own follow-ups first: a rule due with them then yields (`Policy`).
            for fu in sorted(due, key=lambda fu: fu.kind != AGENT):
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

    def tools(self) -> list[Tool]:
        """The agent's `schedule_follow_up` and `cancel_follow_up`."""
        return FollowUpTools(self).tools()
