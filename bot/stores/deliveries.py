"""Replies on their way out, bubble by bubble, for the replies whose delivery is not settled
by the turn's own write.

A one-bubble reply needs no row: the turn's write (memory, journal status) follows the send.
A reply of several bubbles gets a row after its first bubble went out, updated before each
next send, so a crash between bubbles resumes from the first bubble not recorded (the one
in flight at the crash may go out twice: nothing can tell whether WhatsApp had it). A reply
that could not go out (WhatsApp not connected) stays as `undelivered` and is retried when
the connection returns, up to an age; a timed-out send is `unknown` and never resent.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Index, Table, Text, delete, insert, select, update
from sqlmodel import Column, Field, SQLModel

from bot.models import CustomerKey
from bot.stores.db import Database, UTCDateTime

SENDING = "sending"  # bubbles going out now (at start-up: the process died mid-reply)
UNDELIVERED = "undelivered"  # provably not sent; retried while young enough
UNKNOWN = "unknown"  # a send timed out: WhatsApp may have it; never resent
FAILED = "failed"  # WhatsApp refused it (an error answer): not sent again
EXPIRED = "expired"  # gave up; the owner was told


class DeliveryRow(SQLModel, table=True):
    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_status", "tenant", "status", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    tenant: str = Field(max_length=64)
    phone: str = Field(max_length=40)
    chat: str = Field(max_length=128)
    kind: str = Field(default="reply", max_length=16)
    bubbles: str = Field(sa_column=Column(Text, nullable=False))  # JSON list of texts
    journal_ids: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    sent: int = 0  # bubbles known to have gone out
    status: str = Field(default=SENDING, max_length=16)
    error: str = Field(default="", max_length=300)
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


DELIVERIES = cast(Table, DeliveryRow.__table__)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    phone: str
    chat: str
    kind: str
    bubbles: list[str]
    journal_ids: list[str]
    sent: int
    status: str
    created_at: datetime


class DeliveryStore:
    def __init__(self, db: Database, tenant: str) -> None:
        self.db = db
        self.tenant = tenant
        # Set while undelivered rows may exist. Only the daemon writes rows (one per tenant),
        # so once a look found none, nothing is owed until one of our writes says so: the
        # retry loop waits for that instead of looking every 30 s on a healthy number.
        self._owed = asyncio.Event()
        self._owed.set()

    async def open(self, phone: str, chat: str, kind: str, bubbles: list[str],
                   journal_ids: list[str], sent: int, status: str, at: datetime,
                   error: str = "") -> int:
        async with self.db.begin() as conn:
            result = await conn.execute(insert(DELIVERIES).values(
                tenant=self.tenant, phone=phone, chat=chat, kind=kind,
                bubbles=json.dumps(bubbles), journal_ids=json.dumps(journal_ids), sent=sent,
                status=status, error=error[:300], created_at=at, updated_at=at,
            ).returning(DELIVERIES.c.id))
            row = int(result.scalar_one())
        self._mark(status)
        return row

    async def progress(self, row: int, sent: int, status: str, at: datetime,
                       error: str = "") -> None:
        async with self.db.begin() as conn:
            await conn.execute(update(DELIVERIES).where(DELIVERIES.c.id == row).values(
                sent=sent, status=status, error=error[:300], updated_at=at))
        self._mark(status)

    def _mark(self, status: str) -> None:
        if status == UNDELIVERED:
            self._owed.set()

    def when_owed(self) -> asyncio.Future[bool]:
        """Done once undelivered rows may exist (at once after a start)."""
        return asyncio.ensure_future(self._owed.wait())

    async def done(self, row: int) -> None:
        """Delivered and remembered: the row has nothing left to say."""
        async with self.db.begin() as conn:
            await conn.execute(delete(DELIVERIES).where(DELIVERIES.c.id == row))

    async def undelivered(self) -> list[Delivery]:
        """The replies waiting for a retry, oldest first; no query when none can exist."""
        if not self._owed.is_set():
            return []
        self._owed.clear()  # before the look: a row marked meanwhile sets it again
        try:
            rows = await self.with_status(UNDELIVERED)
        except BaseException:
            self._owed.set()
            raise
        if rows:
            self._owed.set()
        return rows

    async def with_status(self, *statuses: str) -> list[Delivery]:
        """This tenant's rows in these states, oldest first."""
        return await self._rows(self.tenant, statuses)

    async def _rows(self, tenant: str, statuses: tuple[str, ...] = (),
                    phone: str | None = None) -> list[Delivery]:
        stmt = select(DELIVERIES).where(DELIVERIES.c.tenant == tenant)
        if statuses:
            stmt = stmt.where(DELIVERIES.c.status.in_(statuses))
        if phone is not None:
            stmt = stmt.where(DELIVERIES.c.phone == phone)
        stmt = stmt.order_by(DELIVERIES.c.created_at, DELIVERIES.c.id)
        async with self.db.connect() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        return [Delivery(int(r["id"]), r["phone"], r["chat"], r["kind"],
                         list(json.loads(r["bubbles"])), list(json.loads(r["journal_ids"])),
                         int(r["sent"]), r["status"], r["created_at"]) for r in rows]

    async def export(self, key: CustomerKey) -> list[dict[str, Any]]:
        """Replies still owed to this customer (for `wabot export`)."""
        return [{"bubbles": d.bubbles, "sent": d.sent, "status": d.status,
                 "created_at": d.created_at.isoformat()}
                for d in await self._rows(key.tenant, phone=key.phone)]

    async def forget(self, key: CustomerKey) -> None:
        async with self.db.begin() as conn:
            await conn.execute(delete(DELIVERIES).where(
                DELIVERIES.c.tenant == key.tenant, DELIVERIES.c.phone == key.phone))
