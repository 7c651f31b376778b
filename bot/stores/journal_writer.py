"""Group commit for the inbound journal: many messages, one transaction.

`add(msg)` queues the row and waits for the commit that holds it, so durability is what it
was (a message is acknowledged to the transport only once its journal row is committed).
While one batch is being written, new rows gather for the next: under load a batch holds
everything that arrived during the previous commit, and a lone message waits for nothing.

The insert also says whether the sender had a customer row when it ran (a subquery in its
RETURNING, no statement of its own): a first contact is known from the journal's write, so
nothing of a customer who has nothing yet is read (`CustomerStore.is_new`).
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import sqlite

from bot.models import InboundMessage
from bot.stores.db import Database
from bot.stores.memory_sql import MESSAGES, PROFILES, as_utc  # created with the journal
from bot.stores.sqlite_writer import sqlite_time
from bot.text import scrub

MAX_BATCH = 500

SQLITE_INSERT = (
    "INSERT INTO journal (tenant, msg_id, phone, chat, lid, push_name, kind, text, from_owner,"
    " received_at, status) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'received')"
    " ON CONFLICT (tenant, msg_id) DO NOTHING RETURNING ")
# One statement for a batch, committing itself. Every column goes as a text array (times in
# ISO form, cast back here): for an array of any other type asyncpg reads the type catalog
# on each new connection (its timestamptz[] and boolean[] codecs are not built in).
PG_INSERT = (
    "INSERT INTO {journal} (tenant, msg_id, phone, chat, lid, push_name, kind, text,"
    " from_owner, received_at, status)"
    " SELECT t, m, p, c, l, n, k, x, o::boolean, r::timestamptz, 'received'"
    " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],"
    " $7::text[], $8::text[], $9::text[], $10::text[]) AS u(t, m, p, c, l, n, k, x, o, r)"
    " ON CONFLICT (tenant, msg_id) DO NOTHING RETURNING msg_id, ")
# Whether the sender had a customer row, or anything in the SQL memory (an owner's lines in
# a chat the customer never wrote in, facts given another way), when it was journaled.
KNOWN = ("EXISTS (SELECT 1 FROM {customers} c WHERE c.tenant = {tenant} AND c.phone = {phone})"
         " OR EXISTS (SELECT 1 FROM {memory} m WHERE m.tenant = {tenant} AND m.phone = {phone})"
         " OR EXISTS (SELECT 1 FROM {profiles} p"
         " WHERE p.tenant = {tenant} AND p.phone = {phone})")
# On SQLite the subqueries name the insert's own parameters (tenant ?1, phone ?3): correlated
# to the new row in RETURNING, SQLite scans the whole index instead of searching it, so every
# inbound message read every customer and memory line (2.6 ms each with 20,000 customers).
SQLITE_INSERT += KNOWN.format(customers="customers", tenant="?1", phone="?3",
                              memory=MESSAGES.name, profiles=PROFILES.name)


class Journaled:
    """What the journal's write found: the message is new (not seen before), and its sender
    had a customer row when it was written (False: a first contact)."""

    __slots__ = ("fresh", "known")

    def __init__(self, fresh: bool, known: bool = True) -> None:
        self.fresh = fresh
        self.known = known


class JournalWriter:
    def __init__(self, db: Database, table: Table, customers: Table) -> None:
        self._db = db
        self._table = table
        self._queue: list[tuple[InboundMessage, asyncio.Future[Journaled]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._pg_insert = PG_INSERT.format(journal=table.name) + KNOWN.format(
            customers=customers.name, tenant=f"{table.name}.tenant",
            phone=f"{table.name}.phone", memory=MESSAGES.name, profiles=PROFILES.name)
        self.batches = 0  # commits made (benchmarks read it)

    async def add(self, msg: InboundMessage) -> Journaled:
        """Journal one message; returns once committed (`fresh` False: its id was seen
        before)."""
        done: asyncio.Future[Journaled] = asyncio.get_running_loop().create_future()
        self._queue.append((msg, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="journal-group-commit")
        return await asyncio.shield(done)

    async def _flush(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            try:
                inserted = await self._write([m for m, _ in batch])
            except Exception as exc:  # every waiter of this batch hears it: nothing is lost
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            self.batches += 1
            seen: set[str] = set()
            for msg, done in batch:
                fresh = msg.msg_id in inserted and msg.msg_id not in seen
                seen.add(msg.msg_id)
                if not done.done():
                    done.set_result(Journaled(fresh, inserted.get(msg.msg_id, True)))

    async def _write(self, msgs: list[InboundMessage]) -> dict[str, bool]:
        """Insert the rows; returns the ids inserted, each with whether its sender had a
        customer row."""
        raw = self._db.raw_writer
        if raw is not None:
            return await raw.run(lambda cur: _sqlite_batch(cur, msgs))
        if not self._db.is_sqlite:
            async with self._db.driver() as pg:
                result = await pg.fetch(self._pg_insert, *_pg_columns(msgs))
            return {r[0]: bool(r[1]) for r in result}
        rows = [{"tenant": m.tenant, "msg_id": m.msg_id, "phone": m.phone,
                 "chat": scrub(m.chat), "lid": scrub(m.lid), "push_name": scrub(m.push_name),
                 "kind": m.kind.value, "text": scrub(m.text), "from_owner": m.from_owner,
                 "received_at": m.timestamp, "status": "received"}
                for m in msgs]
        async with self._db.begin() as conn:  # an in-memory SQLite database: no writer thread
            fresh: dict[str, bool] = {}
            for row in rows:
                stmt = sqlite.insert(self._table).values(**row).on_conflict_do_nothing(
                    index_elements=["tenant", "msg_id"])
                if (await conn.execute(stmt)).rowcount:
                    fresh[str(row["msg_id"])] = True  # not asked: read as usual
            return fresh

    async def close(self) -> None:
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)


def _pg_columns(msgs: list[InboundMessage]) -> list[list[Any]]:
    return [[m.tenant for m in msgs], [m.msg_id for m in msgs], [m.phone for m in msgs],
            [scrub(m.chat) for m in msgs], [scrub(m.lid) for m in msgs],
            [scrub(m.push_name) for m in msgs], [m.kind.value for m in msgs],
            [scrub(m.text) for m in msgs], [str(m.from_owner).lower() for m in msgs],
            [as_utc(m.timestamp).isoformat() for m in msgs]]


def _sqlite_batch(cur: sqlite3.Cursor, msgs: list[InboundMessage]) -> dict[str, bool]:
    fresh: dict[str, bool] = {}
    for m in msgs:
        # NUL replaced as on PostgreSQL (which refuses it): one journal, whatever the backend.
        row = cur.execute(SQLITE_INSERT, (
            m.tenant, m.msg_id, m.phone, scrub(m.chat), scrub(m.lid), scrub(m.push_name),
            m.kind.value, scrub(m.text), int(m.from_owner), sqlite_time(m.timestamp),
        )).fetchone()
        if row is not None:  # None: the id was journaled before
            fresh[m.msg_id] = bool(row[0])
    return fresh
