"""The per-message writes on PostgreSQL run on the pooled connection's asyncpg connection
(the turn's lines as one pipelined batch, the rest of the turn as one statement; the
journal's batch as one statement): what they store is what the stores read back."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event, text

import bot.wiring  # noqa: F401  (every table)
from bot.models import CustomerKey, InboundMessage, MemoryMessage, Role
from bot.stores.customer_rows import CUSTOMERS, JOURNAL
from bot.stores.db import Database
from bot.stores.journal_writer import JournalWriter
from bot.stores.memory_sql import SqlMemoryStore
from bot.stores.runs import RunRow
from bot.stores.turn_writer import TurnRecord, TurnWriter
from tests.conftest import _postgres_url

pytestmark = pytest.mark.postgres
AT = datetime(2026, 1, 5, 15, 0, 0, 123456, tzinfo=UTC)



def _line(role: Role, body: str, msg_id: str = "") -> MemoryMessage:
    return MemoryMessage(role, body, AT, msg_id=msg_id)


async def _count(postgres_db: Database, table: str, tenant: str) -> int:
    async with postgres_db.connect() as conn:
        return int((await conn.execute(text(
            f"SELECT count(*) FROM {table} WHERE tenant = :t"), {"t": tenant})).scalar())


async def test_a_replayed_turn_skips_the_lines_already_stored_and_numbers_the_rest(
        postgres_db: Database) -> None:
    key = CustomerKey(f"t-{uuid.uuid4().hex[:8]}", "+5215512345678")
    memory = SqlMemoryStore(postgres_db)
    writer = TurnWriter(postgres_db, memory)
    first = TurnRecord(key, AT, inbound=1, create=True, messages=[
        _line(Role.CUSTOMER, "hola", "m1")])
    [hola] = await writer.write(first)
    # The replay after a crash: m1 is remembered, the lines around it are not.
    replay = TurnRecord(key, AT, inbound=2, msgs_out=1, messages=[
        _line(Role.CUSTOMER, "hola", "m1"), _line(Role.AGENT, "¡Hola!"),
        _line(Role.CUSTOMER, "hola", "m1"), _line(Role.CUSTOMER, "y el precio?", "m2"),
        _line(Role.AGENT, "200 pesos")])
    stored = await writer.write(replay)
    assert [(m.text, m.msg_id) for m in stored] == [
        ("¡Hola!", ""), ("y el precio?", "m2"), ("200 pesos", "")]
    history = await memory.recent(key, 10)
    assert [(m.seq, m.text) for m in history] == [
        (hola.seq, "hola"), *((m.seq, m.text) for m in stored)]
    assert hola.seq < stored[0].seq < stored[1].seq < stored[2].seq


async def test_a_turn_writes_the_customer_usage_journal_and_run_in_one_go(
        postgres_db: Database) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    key = CustomerKey(tenant, "+5215512345678")
    journal = JournalWriter(postgres_db, JOURNAL, CUSTOMERS)
    inbound = [InboundMessage(tenant, key.phone, f"m{i}", AT, text="hola\x00", from_owner=i == 2)
               for i in range(3)]
    found = [await journal.add(m) for m in inbound]
    assert [(j.fresh, j.known) for j in found] == [(True, False)] * 3
    again = await journal.add(inbound[0])
    assert not again.fresh  # seen before: not answered twice
    writer = TurnWriter(postgres_db, SqlMemoryStore(postgres_db))
    first = TurnRecord(key, AT, inbound=2, create=True, msgs_out=1, tokens_in=10,
                       tokens_out=5, journal_ids=["m0", "m1"], run=RunRow(
                           "reply", "gpt", False, "¡Hola!", 10, 5, 12.5, "[]"))
    await writer.write(first)
    assert first.customer is not None
    assert (first.customer.msgs_in, first.customer.first_contact) == (2, AT)
    later = AT + timedelta(minutes=1)
    await writer.write(TurnRecord(key, later, inbound=0, msgs_out=1, tokens_in=1,
                                  journal_ids=["m2"], status="ignored"))
    await writer.write(TurnRecord(key, later, inbound=1))  # no usage, journal or run
    async with postgres_db.connect() as conn:
        customer = (await conn.execute(text(
            "SELECT msgs_in, msgs_out, tokens_in, tokens_out, last_contact, last_inbound"
            " FROM customers WHERE tenant = :t"), {"t": tenant})).one()
        usage = (await conn.execute(text(
            "SELECT msgs_out, tokens_in, tokens_out FROM usage_daily WHERE tenant = :t"),
            {"t": tenant})).one()
        rows = (await conn.execute(text(
            "SELECT msg_id, status, text, from_owner, received_at FROM journal"
            " WHERE tenant = :t ORDER BY msg_id"), {"t": tenant})).all()
    assert tuple(customer) == (3, 2, 11, 5, later, later)
    assert tuple(usage) == (2, 11, 5)
    assert [tuple(r) for r in rows] == [
        ("m0", "answered", "hola\ufffd", False, AT), ("m1", "answered", "hola\ufffd", False, AT),
        ("m2", "ignored", "hola\ufffd", True, AT)]
    assert await _count(postgres_db, "runs", tenant) == 1
    # The journal now knows the sender.
    known = await journal.add(InboundMessage(tenant, key.phone, "m3", AT))
    assert (known.fresh, known.known) == (True, True)
    await journal.close()


async def test_a_batch_holding_one_id_twice_journals_it_once(postgres_db: Database) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    journal = JournalWriter(postgres_db, JOURNAL, CUSTOMERS)
    twice = [InboundMessage(tenant, "+5215512345678", "m1", AT, text=t) for t in ("a", "b")]
    assert await journal._write(twice) == {"m1": False}
    assert await _count(postgres_db, "journal", tenant) == 1


async def test_a_connection_the_server_closed_is_not_handed_out(postgres_db: Database) -> None:
    """No pre-ping round trip at checkout: a pooled connection whose backend went away while
    it sat idle in the pool (a restart, an idle timeout) is known closed from its socket and
    replaced before use."""
    async with postgres_db.driver() as pg:
        pid = await pg.fetchval("SELECT pg_backend_pid()")
    outside = await asyncpg.connect(_postgres_url())  # not from the pool
    try:  # waits for the backend to exit (PostgreSQL ≥ 14)
        assert await outside.fetchval("SELECT pg_terminate_backend($1, 5000)", pid)
    finally:
        await outside.close()
    async with postgres_db.driver() as pg:
        assert await pg.fetchval("SELECT pg_backend_pid()") != pid


async def test_a_write_cut_off_midway_commits_nothing_and_leaves_no_transaction_open(
        postgres_db: Database) -> None:
    """A turn cancelled while a statement is in flight (a stop past its grace): its
    connection goes back to the pool, and must not bring a half-done transaction to the next
    write (which would then commit as part of it, or wait on it forever)."""
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    blocker = await asyncpg.connect(_postgres_url())
    await blocker.execute("SELECT pg_advisory_lock(hashtext($1))", tenant)

    async def write() -> None:
        async with postgres_db.driver() as pg, pg.transaction():
            await pg.execute("INSERT INTO usage_daily (tenant, day, phone, msgs_out, tokens_in,"
                             " tokens_out) VALUES ($1, '2026-01-05', '+1', 1, 1, 1)", tenant)
            await pg.execute("SELECT pg_advisory_xact_lock(hashtext($1))", tenant)

    try:
        task = asyncio.create_task(write())
        async with asyncio.timeout(5):  # until the write waits on the lock, mid-statement
            while not await blocker.fetchval(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"):
                await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        await blocker.close()
    for _ in range(3):  # every pooled connection is usable and starts clean
        async with postgres_db.driver() as pg:
            assert not pg.is_in_transaction()
            assert await pg.fetchval("SELECT count(*) FROM usage_daily WHERE tenant = $1",
                                     tenant) == 0


async def test_the_writes_keep_their_connections_between_messages(
        postgres_db: Database) -> None:
    """A checkout through the engine cost about as much CPU as the write it was for: the
    per-message writes keep theirs (half the pool's at most) and take no other."""
    checkouts = 0

    def counted(*_: object) -> None:
        nonlocal checkouts
        checkouts += 1

    event.listen(postgres_db.engine.sync_engine, "checkout", counted)
    try:
        for _ in range(20):
            async with postgres_db.driver() as pg:
                await pg.fetchval("SELECT 1")
        assert checkouts <= 1  # none when an earlier test left one kept

        async def write() -> None:
            async with postgres_db.driver() as pg:
                await pg.fetchval("SELECT pg_sleep(0.01)")

        await asyncio.gather(*(write() for _ in range(40)))
        assert checkouts <= 5  # the default pool of 10: five kept for these writes
    finally:
        event.remove(postgres_db.engine.sync_engine, "checkout", counted)


async def test_a_write_finishing_after_the_database_closed_closes_its_connection() -> None:
    db = Database(_postgres_url())
    started = asyncio.Event()
    used: list[Any] = []

    async def write() -> None:
        async with db.driver() as pg:
            used.append(pg)
            started.set()
            await pg.fetchval("SELECT pg_sleep(0.2)")

    task = asyncio.create_task(write())
    await started.wait()
    await db.close()  # a stop's teardown while the write is still in flight
    await task
    assert used[0].is_closed()  # not kept, open, by a database that is gone
