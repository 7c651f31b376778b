"""What happened to each message sent through the Cloud API: accepted by Meta, then sent,
delivered, read or failed (Meta's status callbacks), or skipped before sending (outside the
24-hour window with no template). The owner's console lists the latest lines."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Index, Table, UniqueConstraint, delete, select, update
from sqlalchemy.dialects import sqlite
from sqlmodel import Field, SQLModel

from bot.models import CustomerKey
from bot.stores.db import Database, UTCDateTime
from bot.stores.memory_sql import as_utc
from bot.stores.sqlite_writer import MAX_BATCH, sqlite_time

# A status callback never moves a message backwards (Meta may deliver them out of order).
_RANK = {"skipped": 0, "accepted": 1, "sent": 2, "delivered": 3, "read": 4, "failed": 5}


class OutboundEntry(SQLModel, table=True):
    __tablename__ = "outbound"
    __table_args__ = (
        UniqueConstraint("tenant", "wamid"),
        Index("ix_outbound_recent", "tenant", "updated_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    tenant: str = Field(max_length=64)
    wamid: str = Field(max_length=160)  # Meta's message id; "skipped:<n>" when never sent
    phone: str = Field(max_length=20)
    kind: str = "text"  # text | template | image | document
    status: str = "accepted"
    error: str = ""  # "131047: Re-engagement message" for failures and skips
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


OUTBOUND = cast(Table, OutboundEntry.__table__)  # type: ignore[attr-defined]
SQLITE_RECORD = (
    "INSERT INTO outbound (tenant, wamid, phone, kind, status, error, created_at, updated_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant, wamid) DO NOTHING")

# PostgreSQL, on the pooled asyncpg connection (issue #23), each statement committing itself:
# a group of lines as text arrays (asyncpg reads the type catalog for other array types).
PG_RECORD = (
    "INSERT INTO outbound (tenant, wamid, phone, kind, status, error, created_at, updated_at)"
    " SELECT t, w, p, k, s, e, c::timestamptz, c::timestamptz FROM unnest($1::text[],"
    " $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])"
    " AS u(t, w, p, k, s, e, c) ON CONFLICT (tenant, wamid) DO NOTHING")
PG_ADVANCE = (
    "UPDATE outbound SET status = $1, error = $2, updated_at = $3"
    " WHERE tenant = $4 AND wamid = $5 AND status = ANY($6::text[])")


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    wamid: str
    phone: str
    status: str  # sent | delivered | read | failed
    at: datetime
    error: str = ""


class OutboundStore:
    """Lines are written in groups: every reply adds one, and a write transaction each
    cost more than the reply's own database write (issue #23). `record` returns once its
    line is committed, with whatever others were waiting."""

    def __init__(self, db: Database, tenant: str) -> None:
        self.db = db
        self.tenant = tenant
        self._queue: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        # An in-memory SQLite database (no writer thread) goes through the engine; PostgreSQL
        # and a SQLite file have statements of their own (`_write`).
        self._stmt: Any = sqlite.insert(OUTBOUND).on_conflict_do_nothing(
            index_elements=["tenant", "wamid"])

    async def record(self, wamid: str, phone: str, kind: str, status: str, at: datetime,
                     error: str = "") -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(({"tenant": self.tenant, "wamid": wamid, "phone": phone,
                             "kind": kind, "status": status, "error": error,
                             "created_at": at, "updated_at": at}, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="outbound-lines")
        await asyncio.shield(done)

    async def _flush(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            try:
                await self._write([row for row, _ in batch])
            except Exception as exc:  # every caller of this group hears it
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for _, done in batch:
                if not done.done():
                    done.set_result(None)

    async def _write(self, rows: list[dict[str, Any]]) -> None:
        raw = self.db.raw_writer
        if raw is not None:
            values = [(r["tenant"], r["wamid"], r["phone"], r["kind"], r["status"],
                       r["error"], sqlite_time(r["created_at"]), sqlite_time(r["updated_at"]))
                      for r in rows]
            await raw.run(lambda cur: cur.executemany(SQLITE_RECORD, values))
            return
        if not self.db.is_sqlite:
            columns = [[r[c] for r in rows]
                       for c in ("tenant", "wamid", "phone", "kind", "status", "error")]
            at = [as_utc(r["created_at"]).isoformat() for r in rows]
            async with self.db.driver() as pg:
                await pg.execute(PG_RECORD, *columns, at)
            return
        async with self.db.begin() as conn:
            await conn.execute(self._stmt, rows)

    async def apply(self, change: StatusUpdate) -> None:
        """Record a status callback; one for a message sent before this store knew it
        (another instance, a lost race) creates the line."""
        await self.record(change.wamid, change.phone, "text", change.status, change.at,
                          change.error)
        lower = [s for s, rank in _RANK.items() if rank < _RANK.get(change.status, 0)]
        if not self.db.is_sqlite:
            async with self.db.driver() as pg:
                await pg.execute(PG_ADVANCE, change.status, change.error, as_utc(change.at),
                                 self.tenant, change.wamid, lower)
            return
        async with self.db.begin() as conn:
            await conn.execute(update(OUTBOUND).where(
                OUTBOUND.c.tenant == self.tenant, OUTBOUND.c.wamid == change.wamid,
                OUTBOUND.c.status.in_(lower),
            ).values(status=change.status, error=change.error, updated_at=change.at))

    async def get(self, wamid: str) -> OutboundEntry | None:
        rows = await self._rows(select(OUTBOUND).where(
            OUTBOUND.c.tenant == self.tenant, OUTBOUND.c.wamid == wamid))
        return rows[0] if rows else None

    async def recent(self, limit: int = 100, phone: str | None = None) -> list[OutboundEntry]:
        stmt = select(OUTBOUND).where(OUTBOUND.c.tenant == self.tenant)
        if phone is not None:
            stmt = stmt.where(OUTBOUND.c.phone == phone)
        return await self._rows(stmt.order_by(OUTBOUND.c.id.desc()).limit(limit))

    async def export(self, key: CustomerKey) -> list[dict[str, Any]]:
        """What happened to each message sent to this customer (a data-access request)."""
        return [{"wamid": e.wamid, "kind": e.kind, "status": e.status, "error": e.error,
                 "at": e.created_at.isoformat()}
                for e in reversed(await self.recent(limit=1_000_000, phone=key.phone))]

    async def forget(self, key: CustomerKey) -> None:
        async with self.db.begin() as conn:
            await conn.execute(delete(OUTBOUND).where(
                OUTBOUND.c.tenant == key.tenant, OUTBOUND.c.phone == key.phone))

    async def _rows(self, stmt: Any) -> list[OutboundEntry]:
        async with self.db.connect() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        return [OutboundEntry.model_validate(dict(r)) for r in rows]
