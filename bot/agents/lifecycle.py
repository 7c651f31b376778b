"""The customer lifecycle: LEAD → CUSTOMER → ACTIVE_USER → CHURNED, which moves make sense,
and the rule that marks long-silent customers CHURNED.

The agent moves a customer with the `set_stage` tool (validated by `transition_error`); the
churn sweep runs in the daemon on the injected clock. Every change is kept in the customer's
memory as a `StageChange` with its reason.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from loguru import logger
from sqlalchemy import ColumnElement, func, select, update

from bot.clock import Clock
from bot.models import CustomerKey, Stage
from bot.phones import mask
from bot.stores.customers import CUSTOMERS, CustomerStore
from bot.stores.memory_base import MemoryStore, StageChange

SWEEP_PAGE = 500

ORDER = (Stage.LEAD, Stage.CUSTOMER, Stage.ACTIVE_USER)

STAGE_MEANING = {
    Stage.LEAD: "has not bought yet",
    Stage.CUSTOMER: "has bought at least once",
    Stage.ACTIVE_USER: "buys or uses the product regularly",
    Stage.CHURNED: "has gone silent or left",
}


def transition_error(current: Stage, target: Stage, reason: str) -> str | None:
    """Why `current → target` is not allowed, or None when it is.

    Every change needs a reason (it is kept in the customer's history). Moving forward,
    churning, and coming back from churn are allowed; a buyer cannot become a lead again.
    """
    if len(reason.strip()) < 3:
        return "give a short reason for the stage change"
    if target is current:
        return None
    if target is Stage.CHURNED or current is Stage.CHURNED:
        return None
    if target is Stage.LEAD:
        return f"a {current.value} has already bought and cannot become a lead again"
    return None


def _silent_since() -> ColumnElement[datetime]:
    # A customer who never wrote (we wrote first) has been silent since first contact.
    return func.coalesce(CUSTOMERS.c.last_inbound, CUSTOMERS.c.first_contact)


async def churn_silent(customers: CustomerStore, memory: MemoryStore, tenant: str,
                       now: datetime, after_days: float) -> list[CustomerKey]:
    """Mark every customer of `tenant` silent for more than `after_days` CHURNED, with a
    `StageChange` saying how long. Returns who was marked. Paged: any number of customers.

    Each mark is one conditional UPDATE: a customer whose message lands meanwhile (a newer
    `last_inbound`) is not churned by a sweep that read them as silent a moment before.
    """
    c = CUSTOMERS.c
    cutoff = now - timedelta(days=after_days)
    silent = _silent_since()
    marked: list[CustomerKey] = []
    last_id = 0
    while True:
        page = (select(c.id, c.phone, c.stage, silent.label("since"))
                .where(c.tenant == tenant, c.stage != Stage.CHURNED.value, silent < cutoff,
                       c.id > last_id)
                .order_by(c.id).limit(SWEEP_PAGE))
        async with customers.db.connect() as conn:
            rows = (await conn.execute(page)).all()
        for row in rows:
            key = CustomerKey(tenant, row.phone)
            async with customers.db.begin() as conn:
                done = await conn.execute(
                    update(CUSTOMERS).where(c.id == row.id, c.stage == row.stage, silent < cutoff)
                    .values(stage=Stage.CHURNED.value))
            if not done.rowcount:
                continue
            days = int((now - row.since).total_seconds() // 86400)
            reason = f"silent for {days} day{'' if days == 1 else 's'}"
            await memory.add_stage_change(key, StageChange(Stage(row.stage), Stage.CHURNED,
                                                           reason, now))
            logger.bind(customer=mask(row.phone)).info("customer marked churned: {}", reason)
            marked.append(key)
        if len(rows) < SWEEP_PAGE:
            return marked
        last_id = rows[-1].id


async def next_churn(customers: CustomerStore, tenant: str, now: datetime,
                     after_days: float) -> datetime:
    """The first moment a customer of `tenant` can be churned: when the longest-silent one
    has been silent for more than `after_days` (a second more); with none, a customer who
    is new now."""
    c = CUSTOMERS.c
    query = (select(func.min(_silent_since()))
             .where(c.tenant == tenant, c.stage != Stage.CHURNED.value))
    async with customers.db.connect() as conn:
        since: datetime | None = (await conn.execute(query)).scalar_one()
    return min(since or now, now) + timedelta(days=after_days, seconds=1)


async def run_churn_sweep(customers: CustomerStore, memory: MemoryStore, clock: Clock,
                          tenant: str, after_days: float, every_seconds: float) -> None:
    """The daemon's churn rule, until cancelled: sweep now, then when the next customer can
    churn, at most once per `every_seconds`. Silence only grows while nothing happens; a
    customer moved out of CHURNED (by the agent) may already be silent long enough, and
    brings the next sweep forward to `every_seconds` after the last, as a sweep on the
    interval would."""
    loop = asyncio.get_running_loop()
    every = timedelta(seconds=every_seconds)
    wake: asyncio.Future[None] = loop.create_future()
    unchurned = False

    def stage_changed(key: CustomerKey, field: str, value: Any) -> None:
        nonlocal unchurned
        if key.tenant == tenant and field == "stage" and value != Stage.CHURNED.value:
            unchurned = True
            if not wake.done():
                wake.set_result(None)

    customers.on_change.append(stage_changed)
    try:
        while True:
            unchurned = False
            swept = clock.now()
            due = swept + every
            try:
                await churn_silent(customers, memory, tenant, swept, after_days)
                due = max(due, await next_churn(customers, tenant, swept, after_days))
            except Exception:
                logger.exception("churn sweep failed; retrying at the next interval")
            while clock.now() < (at := swept + every if unchurned else due):
                wake = loop.create_future()
                await clock.idle(wake, (at - clock.now()).total_seconds())
    finally:
        customers.on_change.remove(stage_changed)
