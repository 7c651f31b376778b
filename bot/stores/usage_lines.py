"""What the business pays for outside any customer's turn, by UTC day (issue #16).

Background memory work (summaries, profile facts) is the business's cost, not the
customer's: counting it in `usage_daily` made a talkative customer reach the daily cap
sooner. Voice-note transcription is paid per audio second and has a business-wide daily
budget of its own. Both are lines here: (tenant, day, line) → tokens and seconds.
`wabot status` adds them to the day's totals.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, UniqueConstraint, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Field, SQLModel

from bot.stores.customers import utc_day
from bot.stores.db import Database

MEMORY = "memory"  # summaries and insight extraction
VOICE = "voice"  # transcription
PROBE_LINE = "probe"  # is the model back? (failed turns wait: bot.pipeline.later.capped_and_failed)


class UsageLine(SQLModel, table=True):
    __tablename__ = "usage_lines"
    __table_args__ = (UniqueConstraint("tenant", "day", "line"),)

    id: int | None = Field(default=None, primary_key=True)
    tenant: str = Field(max_length=64)
    day: str = Field(max_length=10)  # YYYY-MM-DD, UTC
    line: str = Field(max_length=16)
    tokens_in: int = 0
    tokens_out: int = 0
    seconds: float = 0.0


LINES = cast(Table, UsageLine.__table__)  # type: ignore[attr-defined]


class BusinessUsage:
    """One tenant's lines. Only this process writes them, so a day's seconds are kept in
    memory once read (the voice budget is checked before every transcription)."""

    def __init__(self, db: Database, tenant: str) -> None:
        self.db = db
        self.tenant = tenant
        self._seconds: dict[tuple[str, str], float] = {}

    async def add(self, line: str, at: datetime, *, tokens_in: int = 0, tokens_out: int = 0,
                  seconds: float = 0.0) -> None:
        day = utc_day(at)
        counts: dict[str, Any] = {"tokens_in": tokens_in, "tokens_out": tokens_out,
                                  "seconds": seconds}
        insert = sqlite.insert if self.db.is_sqlite else postgresql.insert
        stmt = insert(LINES).values(tenant=self.tenant, day=day, line=line, **counts)
        stmt = stmt.on_conflict_do_update(
            index_elements=["tenant", "day", "line"],
            set_={name: LINES.c[name] + stmt.excluded[name] for name in counts})
        async with self.db.begin() as conn:
            await conn.execute(stmt)
        if (line, day) in self._seconds:
            self._seconds[(line, day)] += seconds

    async def seconds_on(self, line: str, day: str) -> float:
        cached = self._seconds.get((line, day))
        if cached is not None:
            return cached
        async with self.db.connect() as conn:
            found = (await conn.execute(select(LINES.c.seconds).where(
                LINES.c.tenant == self.tenant, LINES.c.day == day,
                LINES.c.line == line))).scalar_one_or_none()
        self._seconds = {k: v for k, v in self._seconds.items() if k[1] == day}  # old days
        self._seconds[(line, day)] = float(found or 0.0)
        return self._seconds[(line, day)]
