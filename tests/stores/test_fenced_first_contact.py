"""A first contact's one write is fenced like any turn's: a node whose lease was taken over
writes nothing of it: no customer row, no lines, no usage, no run, no follow-up job, no
journal status (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import Column, Float, LargeBinary, MetaData, String, Table, text

from bot.fleet.lease import Leases
from bot.models import CustomerKey, MemoryMessage, Role
from bot.settings import Settings
from bot.stores.db import Database
from bot.stores.memory_sql import SqlMemoryStore
from bot.stores.runs import RunRow
from bot.stores.turn_writer import JobRow, StaleOwner, TurnRecord, TurnWriter

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
    jobs = Table(f"jobs_{number.replace('-', '_')}", MetaData(),
                 Column("id", String(191), primary_key=True), Column("next_run_time", Float),
                 Column("job_state", LargeBinary))  # as APScheduler's job store has it
    try:
        old = Leases(db, "node-1", 0.5)
        await old.ensure([number])
        stale = await old.acquire(number)
        assert stale is not None
        await asyncio.sleep(0.6)  # its lease lapses and another node takes the number
        current = await Leases(db, "node-2", 30).acquire(number)
        assert current is not None
        async with db.begin() as conn:
            await conn.run_sync(jobs.create)
            await conn.execute(text(
                "INSERT INTO journal (tenant, msg_id, phone, chat, lid, push_name, kind, text,"
                " from_owner, received_at, status) VALUES (:t, 'm1', :p, '', '', '', 'text',"
                " 'hola', false, :at, 'received')"), {"t": number, "p": key.phone, "at": AT})
        memory = SqlMemoryStore(db)
        writer = TurnWriter(db, memory, lambda: {"n": number, "me": "node-1", "e": stale.epoch})
        rec = TurnRecord(key, AT, inbound=1, create=True, msgs_out=1, tokens_in=3,
                         journal_ids=["m1"], run=RunRow("reply", "gpt", False, "¡Hola!", 3, 1,
                                                        9.0, "[]"),
                         jobs=[JobRow(jobs.name, "lead_silent", 1.5e9, b"state")], messages=[
                             MemoryMessage(Role.CUSTOMER, "hola", AT, msg_id="m1"),
                             MemoryMessage(Role.AGENT, "¡Hola!", AT)])
        with pytest.raises(StaleOwner):
            await writer.write(rec)
        assert rec.customer is None
        async with db.connect() as conn:
            for table in ("customers", "memory_messages", "usage_daily", "runs"):
                count = (await conn.execute(text(
                    f"SELECT count(*) FROM {table} WHERE tenant = :t"), {"t": number})).scalar()
                assert count == 0, table
            assert (await conn.execute(text(f"SELECT count(*) FROM {jobs.name}"))).scalar() == 0
            assert (await conn.execute(text("SELECT status FROM journal WHERE tenant = :t"),
                                       {"t": number})).scalar() == "received"
        assert await memory.recent(key, 10) == []
        # The node that holds the number now writes all of it.
        owner = TurnWriter(db, memory, lambda: {"n": number, "me": "node-2",
                                                "e": current.epoch})
        await owner.write(rec)
        assert rec.customer is not None and rec.customer.msgs_in == 1
        async with db.connect() as conn:
            for table in ("customers", "usage_daily", "runs"):
                count = (await conn.execute(text(
                    f"SELECT count(*) FROM {table} WHERE tenant = :t"), {"t": number})).scalar()
                assert count == 1, table
            job = (await conn.execute(text(
                f"SELECT id, next_run_time, job_state FROM {jobs.name}"))).one()
            assert (job.id, job.next_run_time, bytes(job.job_state)) == (
                "lead_silent", 1.5e9, b"state")
            assert (await conn.execute(text("SELECT status FROM journal WHERE tenant = :t"),
                                       {"t": number})).scalar() == "answered"
        assert [m.text for m in await memory.recent(key, 10)] == ["hola", "¡Hola!"]
    finally:
        async with db.begin() as conn:
            await conn.execute(text(f"DROP TABLE IF EXISTS {jobs.name}"))
            for table in ("journal", "customers", "memory_messages", "usage_daily", "runs"):
                await conn.execute(text(f"DELETE FROM {table} WHERE tenant = :t"),
                                   {"t": number})
        await db.close()
