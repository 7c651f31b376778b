"""Per-bubble delivery: what each bubble of a reply became, written before the next send.

A reply is planned (one `pending` row per bubble) before its first bubble goes out, and
each bubble is marked the moment the transport answers. So after a crash between bubbles,
a restart resumes at the first bubble not `sent` instead of sending the reply again, and a
reply the transport refused while disconnected stays `undelivered` for a bounded retry.

States: pending → sent | undelivered (provably never left: retried when connected)
| unknown (timed out: WhatsApp may have it, never resent) | held (after an unknown or a
failure: not sent blindly) | failed (the transport refused it) | expired (undelivered
past the retry age: the owner is alerted).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Index, Table, Text, UniqueConstraint, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Field, SQLModel

from bot.models import CustomerKey
from bot.stores.db import Database, UTCDateTime


class DeliveryRow(SQLModel, table=True):
    __tablename__ = "delivery"
    __table_args__ = (
        UniqueConstraint("tenant", "reply_id", "seq"),
        Index("ix_delivery_state", "tenant", "state", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    tenant: str = Field(max_length=64)
    reply_id: str = Field(max_length=200)  # "turn:<last journal msg id>" for replies
    seq: int = 0  # the bubble's place in the reply
    phone: str = Field(default="", max_length=40)
    chat: str = Field(max_length=160)
    text: str = Field(sa_type=Text)
    state: str = Field(default="pending", max_length=16)
    wa_id: str = Field(default="", max_length=160)  # the transport's id once sent
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


DELIVERY = cast(Table, DeliveryRow.__table__)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Bubble:
    reply_id: str
    seq: int
    chat: str
    text: str
    state: str
    created_at: datetime
    phone: str = ""


class DeliveryLog:
    def __init__(self, db: Database, tenant: str) -> None:
        self.db = db
        self.tenant = tenant

    def _insert(self) -> Any:
        return (sqlite.insert if self.db.is_sqlite else postgresql.insert)(DELIVERY)

    async def plan(self, reply_id: str, chat: str, bubbles: list[str], at: datetime,
                   phone: str = "") -> list[Bubble]:
        """Record the reply's bubbles as `pending`; a plan already stored for `reply_id`
        (a restart after a crash mid-reply) wins: the customer saw its first bubbles."""
        rows = [{"tenant": self.tenant, "reply_id": reply_id, "seq": i, "phone": phone,
                 "chat": chat, "text": text, "state": "pending", "wa_id": "",
                 "created_at": at, "updated_at": at} for i, text in enumerate(bubbles)]
        fresh = True
        async with self.db.begin() as conn:  # no SELECT for a new reply (the usual case)
            for row in rows:
                stmt = self._insert().values(**row).on_conflict_do_nothing(
                    index_elements=["tenant", "reply_id", "seq"])
                if not (await conn.execute(stmt)).rowcount:
                    fresh = False  # planned before: the first row is already there
                    break
        if fresh:
            return [Bubble(reply_id, i, chat, text, "pending", at, phone)
                    for i, text in enumerate(bubbles)]
        return await self.bubbles(reply_id)

    async def bubbles(self, reply_id: str) -> list[Bubble]:
        return await self._rows(select(DELIVERY).where(
            DELIVERY.c.tenant == self.tenant, DELIVERY.c.reply_id == reply_id
        ).order_by(DELIVERY.c.seq))

    async def mark(self, reply_id: str, seq: int, state: str, at: datetime,
                   wa_id: str = "") -> None:
        values: dict[str, Any] = {"state": state, "updated_at": at}
        if wa_id:
            values["wa_id"] = wa_id
        async with self.db.begin() as conn:
            await conn.execute(update(DELIVERY).where(
                DELIVERY.c.tenant == self.tenant, DELIVERY.c.reply_id == reply_id,
                DELIVERY.c.seq == seq).values(**values))

    async def mark_rest(self, reply_id: str, from_seq: int, state: str, at: datetime) -> None:
        """Every bubble from `from_seq` on that has not gone out."""
        async with self.db.begin() as conn:
            await conn.execute(update(DELIVERY).where(
                DELIVERY.c.tenant == self.tenant, DELIVERY.c.reply_id == reply_id,
                DELIVERY.c.seq >= from_seq,
                DELIVERY.c.state.in_(("pending", "undelivered"))
            ).values(state=state, updated_at=at))

    async def undelivered(self, since: datetime | None = None,
                          before: datetime | None = None) -> list[str]:
        """Reply ids with an undelivered bubble, oldest first, created in [since, before)."""
        stmt = select(DELIVERY.c.reply_id, DELIVERY.c.created_at, DELIVERY.c.id).where(
            DELIVERY.c.tenant == self.tenant, DELIVERY.c.state == "undelivered")
        if since is not None:
            stmt = stmt.where(DELIVERY.c.created_at >= since)
        if before is not None:
            stmt = stmt.where(DELIVERY.c.created_at < before)
        async with self.db.connect() as conn:
            rows = (await conn.execute(stmt.order_by(DELIVERY.c.created_at,
                                                     DELIVERY.c.id))).all()
        return list(dict.fromkeys(str(r[0]) for r in rows))

    async def export(self, key: CustomerKey) -> list[dict[str, Any]]:
        """Every bubble sent (or meant) to this customer, for `wabot export`."""
        return [{"reply": b.reply_id, "bubble": b.seq + 1, "text": b.text, "state": b.state,
                 "at": b.created_at.isoformat()} for b in await self._rows(
                     select(DELIVERY).where(DELIVERY.c.tenant == key.tenant,
                                            DELIVERY.c.phone == key.phone)
                     .order_by(DELIVERY.c.created_at, DELIVERY.c.seq))]

    async def forget(self, key: CustomerKey) -> None:
        async with self.db.begin() as conn:
            await conn.execute(delete(DELIVERY).where(DELIVERY.c.tenant == key.tenant,
                                                      DELIVERY.c.phone == key.phone))

    async def _rows(self, stmt: Any) -> list[Bubble]:
        async with self.db.connect() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        return [Bubble(r["reply_id"], r["seq"], r["chat"], r["text"], r["state"],
                       r["created_at"], r["phone"]) for r in rows]
