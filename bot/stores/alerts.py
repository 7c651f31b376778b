"""Owner alerts, kept: what the console's alerts page lists, read or unread, after a restart
and on whichever node of the fleet serves the number now (one table, keyed by tenant)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Index,
    Table,
    Text,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlmodel import Field, SQLModel

from bot.models import CustomerKey
from bot.stores.db import Database, UTCDateTime

KEEP_DAYS = 90  # older alerts are pruned at start


class AlertRow(SQLModel, table=True):
    __tablename__ = "owner_alerts"
    __table_args__ = (Index("ix_owner_alerts_recent", "tenant", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    tenant: str = Field(max_length=64)
    at: datetime = Field(sa_type=UTCDateTime)
    kind: str = Field(max_length=64)
    text: str = Field(sa_type=Text)
    phone: str = Field(default="", max_length=64)  # the customer it is about, if any
    whatsapp: str = Field(default="", sa_type=Text)  # "sent to …" or why it was not
    read_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


ALERTS = cast(Table, AlertRow.__table__)  # type: ignore[attr-defined]


def alert_json(row: Any) -> dict[str, Any]:
    return {"id": row["id"], "at": row["at"].isoformat(), "kind": row["kind"],
            "text": row["text"], "phone": row["phone"], "whatsapp": row["whatsapp"],
            "read": row["read_at"] is not None}


class AlertStore:
    def __init__(self, db: Database, tenant: str) -> None:
        self.db = db
        self.tenant = tenant

    async def add(self, at: datetime, kind: str, text: str, phone: str = "",
                  whatsapp: str = "") -> int:
        async with self.db.begin() as conn:
            result = await conn.execute(insert(ALERTS).values(
                tenant=self.tenant, at=at, kind=kind[:64], text=text, phone=phone[:64],
                whatsapp=whatsapp, read_at=None).returning(ALERTS.c.id))
            return int(result.scalar_one())

    async def note_whatsapp(self, alert_id: int, outcome: str) -> None:
        """What happened to the alert's WhatsApp copy (sent to …, or why not)."""
        async with self.db.begin() as conn:
            await conn.execute(update(ALERTS).where(
                ALERTS.c.tenant == self.tenant, ALERTS.c.id == alert_id).values(
                whatsapp=outcome))

    async def recent(self, limit: int = 200, *, unread_only: bool = False
                     ) -> list[dict[str, Any]]:
        a = ALERTS.c
        stmt = select(ALERTS).where(a.tenant == self.tenant)
        if unread_only:
            stmt = stmt.where(a.read_at.is_(None))
        async with self.db.connect() as conn:
            rows = (await conn.execute(stmt.order_by(a.at.desc(), a.id.desc())
                                       .limit(limit))).mappings().all()
        return [alert_json(r) for r in rows]

    async def unread(self) -> int:
        a = ALERTS.c
        async with self.db.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(ALERTS).where(
                a.tenant == self.tenant, a.read_at.is_(None)))).scalar_one())

    async def mark_read(self, at: datetime, ids: list[int] | None = None) -> int:
        """Mark these alerts read (None: every unread one); returns how many changed."""
        a = ALERTS.c
        stmt = update(ALERTS).where(a.tenant == self.tenant, a.read_at.is_(None))
        if ids is not None:
            stmt = stmt.where(a.id.in_(ids))
        async with self.db.begin() as conn:
            return int((await conn.execute(stmt.values(read_at=at))).rowcount or 0)

    async def prune(self, now: datetime) -> int:
        async with self.db.begin() as conn:
            return int((await conn.execute(delete(ALERTS).where(
                ALERTS.c.tenant == self.tenant,
                ALERTS.c.at < now - timedelta(days=KEEP_DAYS)))).rowcount or 0)

    def _about(self, phone: str) -> ColumnElement[bool]:
        """The alerts about this customer: by its phone, or naming it in their text."""
        a = ALERTS.c
        return and_(a.tenant == self.tenant, or_(
            a.phone == phone, a.text.contains(phone.removeprefix("+"), autoescape=True)))

    async def export(self, key: CustomerKey) -> list[dict[str, Any]]:
        async with self.db.connect() as conn:
            rows = (await conn.execute(select(ALERTS).where(self._about(key.phone))
                                       .order_by(ALERTS.c.id))).mappings().all()
        return [{k: v for k, v in alert_json(r).items() if k != "id"} for r in rows]

    async def forget(self, key: CustomerKey) -> None:
        async with self.db.begin() as conn:
            await conn.execute(delete(ALERTS).where(self._about(key.phone)))

    async def forget_tenant(self) -> None:
        """Every alert of this tenant (a finished simulation's)."""
        async with self.db.begin() as conn:
            await conn.execute(delete(ALERTS).where(ALERTS.c.tenant == self.tenant))
