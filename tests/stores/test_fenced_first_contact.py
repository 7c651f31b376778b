"""A first contact's one write is fenced like any turn's: a node whose lease was taken over
writes nothing of it: no customer row, no lines, no usage (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from bot.fleet.lease import Leases
from bot.models import CustomerKey, MemoryMessage, Role
from bot.settings import Settings
from bot.stores.db import Database
from bot.stores.memory_sql import SqlMemoryStore
from bot.stores.turn_writer import StaleOwner, TurnRecord, TurnWriter

AT = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


async def _db(settings: Settings) -> Database:
    import bot.wiring  # noqa: F401  (every table, the fleet's included)

    db = Database(settings.sql_url)
    await db.create_all()
    return db


async def test_a_stale_owners_first_contact_writes_nothing(settings: Settings) -> None:
    db = await _db(settings)
    number = f"n-{uuid.uuid4().hex[:8]}"
    key = CustomerKey(number, "+5215512345678")
    try:
        old = Leases(db, "node-1", 0.5)
        await old.ensure([number])
        stale = await old.acquire(number)
        assert stale is not None
        await asyncio.sleep(0.6)  # its lease lapses and another node takes the number
        assert await Leases(db, "node-2", 30).acquire(number) is not None
        memory = SqlMemoryStore(db)
        writer = TurnWriter(db, memory, lambda: {"n": number, "me": "node-1", "e": stale.epoch})
        rec = TurnRecord(key, AT, inbound=1, create=True, msgs_out=1, messages=[
            MemoryMessage(Role.CUSTOMER, "hola", AT, msg_id="m1"),
            MemoryMessage(Role.AGENT, "¡Hola!", AT)])
        with pytest.raises(StaleOwner):
            await writer.write(rec)
        assert rec.customer is None
        async with db.connect() as conn:
            for table in ("customers", "memory_messages", "usage_daily"):
                count = (await conn.execute(text(
                    f"SELECT count(*) FROM {table} WHERE tenant = :t"), {"t": number})).scalar()
                assert count == 0, table
        assert await memory.recent(key, 10) == []
    finally:
        await db.close()
