"""The dashboard's numbers, read from the database so they survive a restart.

"Today" is the business's local day (its timezone), from midnight to now:
- messages in: the journal (every inbound message, at its arrival time);
- turns, failures, tokens and cost: the run log (one row per turn that called the model,
  with its tokens and whether it failed; memory summaries and media descriptions are not
  turns and count only in the usage table); with `runs.enabled = false` there is no run log,
  and tokens and cost fall back to the usage table, turns and failures to the daemon's
  counters since start-up;
- messages out: the usage table, which counts per UTC day (the daily token cap's unit), so
  this one number is the UTC day's. The 30-day chart is in UTC days too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import Integer, cast, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.clock import Clock
from bot.models import Stage
from bot.settings import Settings
from bot.stores.customers import CUSTOMERS, JOURNAL, USAGE, utc_day
from bot.stores.db import Database
from bot.stores.runs import RUNS


def local_midnight(now: datetime, zone: tzinfo) -> datetime:
    """The start of `now`'s day in `zone`, as an aware UTC datetime."""
    local = now.astimezone(zone)
    start = datetime.combine(local.date(), datetime.min.time(), zone)
    return start.astimezone(UTC)


@dataclass(slots=True)
class Stats:
    db: Database
    settings: Settings
    clock: Clock
    zone: tzinfo = UTC

    @property
    def tenant(self) -> str:
        return self.settings.tenant

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        p = self.settings.llm
        return (tokens_in * p.price_in_per_million + tokens_out * p.price_out_per_million) / 1e6

    async def today(self) -> dict[str, Any]:
        """Today's numbers (see the module), `day` the local date, `since` its start."""
        now = self.clock.now()
        since = local_midnight(now, self.zone)
        async with self.db.connect() as conn:
            msgs_in = await self._count(conn, JOURNAL, JOURNAL.c.received_at >= since,
                                        JOURNAL.c.from_owner.is_(False))
            used = (await conn.execute(select(
                func.coalesce(func.sum(USAGE.c.msgs_out), 0),
                func.coalesce(func.sum(USAGE.c.tokens_in), 0),
                func.coalesce(func.sum(USAGE.c.tokens_out), 0)).where(
                    USAGE.c.tenant == self.tenant, USAGE.c.day == utc_day(now)))).one()
            runs = (await conn.execute(select(
                func.count(), func.coalesce(func.sum(cast(RUNS.c.failed, Integer)), 0),
                func.coalesce(func.sum(RUNS.c.tokens_in), 0),
                func.coalesce(func.sum(RUNS.c.tokens_out), 0)).where(
                    RUNS.c.tenant == self.tenant, RUNS.c.at >= since))).one()
            backlog = await self._count(conn, JOURNAL, JOURNAL.c.status == "received")
        msgs_out, tok_in, tok_out = map(int, used)
        turns, failures, run_in, run_out = map(int, runs)
        if self.settings.runs.enabled:
            tok_in, tok_out = run_in, run_out
        return {"day": now.astimezone(self.zone).date().isoformat(), "since": since.isoformat(),
                "messages_in": msgs_in, "messages_out": msgs_out, "turns": turns,
                "failures": failures, "tokens_in": tok_in, "tokens_out": tok_out,
                "cost_usd": round(self.cost(tok_in, tok_out), 6), "journal_backlog": backlog}

    async def _count(self, conn: AsyncConnection, table: Any, *where: Any) -> int:
        stmt = select(func.count()).select_from(table).where(table.c.tenant == self.tenant,
                                                             *where)
        return int((await conn.execute(stmt)).scalar_one())

    async def days(self, n: int = 30) -> list[dict[str, Any]]:
        """Messages in/out and cost per UTC day, oldest first, `n` days to today."""
        today = self.clock.now().astimezone(UTC).date()
        first = today - timedelta(days=n - 1)
        start = datetime.combine(first, datetime.min.time(), UTC)
        out: dict[str, dict[str, Any]] = {
            (first + timedelta(days=i)).isoformat(): {"messages_in": 0, "messages_out": 0,
                                                       "cost_usd": 0.0} for i in range(n)}
        async with self.db.connect() as conn:
            rows = (await conn.execute(select(
                USAGE.c.day, func.sum(USAGE.c.msgs_out), func.sum(USAGE.c.tokens_in),
                func.sum(USAGE.c.tokens_out)).where(
                    USAGE.c.tenant == self.tenant, USAGE.c.day >= first.isoformat())
                .group_by(USAGE.c.day))).all()
            for day, m_out, t_in, t_out in rows:
                if day in out:
                    out[day]["messages_out"] = int(m_out or 0)
                    out[day]["cost_usd"] = round(self.cost(int(t_in or 0), int(t_out or 0)), 6)
            received = (await conn.execute(select(JOURNAL.c.received_at).where(
                JOURNAL.c.tenant == self.tenant, JOURNAL.c.received_at >= start,
                JOURNAL.c.from_owner.is_(False)))).scalars().all()
        for at in received:
            day = utc_day(at)
            if day in out:
                out[day]["messages_in"] += 1
        return [{"day": d, **v} for d, v in out.items()]

    async def funnel(self) -> dict[str, int]:
        async with self.db.connect() as conn:
            rows = (await conn.execute(select(CUSTOMERS.c.stage, func.count()).where(
                CUSTOMERS.c.tenant == self.tenant).group_by(CUSTOMERS.c.stage))).all()
        counts = {s.value: 0 for s in Stage}
        counts.update({str(stage): int(n) for stage, n in rows})
        return counts
