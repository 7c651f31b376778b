"""The run log: every model call of every turn, for "why did it say that".

One row per turn (a "run"): the prompt messages, the tools offered, the tool calls and their
results (they are the next call's messages), the reply, tokens, latency and model of each
call. Kept `runs.retention_days`, erased by `wabot forget`, included in `wabot export`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Index, Table, Text, delete, func, insert, select
from sqlmodel import Field, SQLModel

from bot.llm import CallLog
from bot.models import CustomerKey
from bot.stores.db import Database, UTCDateTime
from bot.text import scrub


class Run(SQLModel, table=True):
    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_customer", "tenant", "phone", "at"),
        Index("ix_runs_at", "tenant", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    tenant: str = Field(max_length=64)
    phone: str = Field(max_length=20)
    at: datetime = Field(sa_type=UTCDateTime)  # the turn's time: the reply's time in history
    kind: str = "chat"  # chat | followup | …
    model: str = ""
    failed: bool = False
    reply: str = Field(default="", sa_type=Text)
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: float = 0.0  # the whole turn, tools included
    calls: str = Field(default="[]", sa_type=Text)  # JSON list, one object per model call


RUNS = cast(Table, Run.__table__)  # type: ignore[attr-defined]

# Written with the turn, in its one transaction (`bot.stores.turn_writer`): SQL text with
# parameters, like the turn's other statements.
INSERT_RUN = (
    "INSERT INTO runs (tenant, phone, at, kind, model, failed, reply, tokens_in, tokens_out,"
    " latency_ms, calls) VALUES (:tenant, :phone, :at, :kind, :model, :failed, :reply,"
    " :tokens_in, :tokens_out, :latency_ms, :calls)")


@dataclass(frozen=True, slots=True)
class RunRow:
    """One turn's run, waiting for the turn's write."""

    kind: str
    model: str
    failed: bool
    reply: str
    tokens_in: int
    tokens_out: int
    latency_ms: float
    calls: str  # JSON

    @classmethod
    def of(cls, kind: str, calls: CallLog, reply: str, failed: bool,
           seconds: float) -> RunRow:
        c = calls.calls
        # scrub: PostgreSQL refuses NUL; a model may echo a customer's
        return cls(kind, c[-1]["model"] if c else "", failed, scrub(reply),
                   sum(x["tokens_in"] for x in c), sum(x["tokens_out"] for x in c),
                   round(seconds * 1000, 1), json.dumps(c, ensure_ascii=False))

    def params(self, key: CustomerKey, at: datetime | str) -> dict[str, Any]:
        return {"tenant": key.tenant, "phone": key.phone, "at": at, "kind": self.kind,
                "model": self.model, "failed": self.failed, "reply": self.reply,
                "tokens_in": self.tokens_in, "tokens_out": self.tokens_out,
                "latency_ms": self.latency_ms, "calls": self.calls}


def _summary(row: Any) -> dict[str, Any]:
    return {"id": row["id"], "phone": row["phone"], "at": row["at"].isoformat(),
            "kind": row["kind"], "model": row["model"], "failed": row["failed"],
            "reply": row["reply"], "tokens_in": row["tokens_in"],
            "tokens_out": row["tokens_out"], "latency_ms": row["latency_ms"]}


class RunStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, key: CustomerKey, at: datetime, kind: str, calls: CallLog, reply: str,
                  failed: bool, seconds: float) -> int:
        row = RunRow.of(kind, calls, reply, failed, seconds)
        stmt = insert(RUNS).values(**row.params(key, at))
        async with self.db.begin() as conn:
            result = await conn.execute(stmt.returning(RUNS.c.id))
            return int(result.scalar_one())

    async def get(self, tenant: str, run_id: int) -> dict[str, Any] | None:
        """One run with its calls; None when it is not this tenant's."""
        async with self.db.connect() as conn:
            row = (await conn.execute(select(RUNS).where(
                RUNS.c.tenant == tenant, RUNS.c.id == run_id))).mappings().first()
        if row is None:
            return None
        return {**_summary(row), "calls": json.loads(row["calls"])}

    async def for_customer(self, key: CustomerKey, limit: int = 200) -> list[dict[str, Any]]:
        """The customer's runs, newest first, without their calls."""
        cols = [c for c in RUNS.c if c.name != "calls"]
        stmt = (select(*cols).where(RUNS.c.tenant == key.tenant, RUNS.c.phone == key.phone)
                .order_by(RUNS.c.at.desc(), RUNS.c.id.desc()).limit(limit))
        async with self.db.connect() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        return [_summary(r) for r in rows]

    async def export(self, key: CustomerKey) -> list[dict[str, Any]]:
        stmt = (select(RUNS).where(RUNS.c.tenant == key.tenant, RUNS.c.phone == key.phone)
                .order_by(RUNS.c.id))
        async with self.db.connect() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        return [{**_summary(r), "calls": json.loads(r["calls"])} for r in rows]

    async def forget(self, key: CustomerKey) -> None:
        async with self.db.begin() as conn:
            await conn.execute(delete(RUNS).where(
                RUNS.c.tenant == key.tenant, RUNS.c.phone == key.phone))

    async def prune(self, tenant: str, before: datetime) -> int:
        """Drop runs older than `before`; returns how many."""
        async with self.db.begin() as conn:
            result = await conn.execute(delete(RUNS).where(
                RUNS.c.tenant == tenant, RUNS.c.at < before))
        return int(result.rowcount or 0)

    async def count(self, tenant: str) -> int:
        async with self.db.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(RUNS).where(
                RUNS.c.tenant == tenant))).scalar_one())
