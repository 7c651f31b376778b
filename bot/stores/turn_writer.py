"""A turn's one write: the inbound lines and the reply, the customer's counters and contact
details, the day's usage and the journal status, in one transaction.

The statements are written once, as SQL text with parameters, so nothing is built or
compiled per turn: on SQLite they run as one function in the writer thread (one hop), on
PostgreSQL as one prepared statement of data-modifying CTEs on the pooled connection's
asyncpg connection (`_pg_turn_sql`): one round trip, committing itself. With the memory in
MongoDB the lines go there first and the rest is one SQL transaction.

A first contact creates the customer's row in the same write (an upsert: a row made
meanwhile is updated instead), and the follow-up jobs of a new customer (`JobRow`, the
lifecycle rules' first job) go in with it, so a first contact is one transaction too.

In a fleet the write is fenced: `stamp()` gives the number's lease (and raises when this
node's lease lapsed), and the transaction first checks that the database still names this
node the owner under that epoch (on PostgreSQL holding the lease row FOR KEY SHARE until the
commit, so a takeover, which locks the row FOR UPDATE, waits for it, while a renewal, which
changes no key, does not): a stale owner's turn is refused, never half-written.
"""

from __future__ import annotations

import base64
import functools
import re
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import TextClause, text

from bot.gateway.base import NotOwner
from bot.models import CustomerKey, MemoryMessage, Stage
from bot.stores.customer_rows import CUSTOMERS, customer_of
from bot.stores.customers import Contact, Customer, customer_from_sqlite, utc_day
from bot.stores.db import Database
from bot.stores.memory_base import MemoryStore
from bot.stores.memory_sql import INSERT_LINE, SqlMemoryStore, insert_lines, line_params
from bot.stores.positional import Positional
from bot.stores.runs import INSERT_RUN, RunRow
from bot.stores.sqlite_writer import sqlite_time
from bot.text import scrub


@dataclass(frozen=True, slots=True)
class JobRow:
    """A follow-up job written with the turn, as APScheduler's job store keeps it."""

    table: str
    id: str
    next_run_time: float
    job_state: bytes


@dataclass(slots=True)
class TurnRecord:
    key: CustomerKey
    at: datetime  # the customer's last contact
    contact: Contact = field(default_factory=Contact)  # non-empty fields are refreshed
    inbound: int = 0  # customer lines in this turn (msgs_in, last_inbound)
    messages: list[MemoryMessage] = field(default_factory=list)
    msgs_out: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    journal_ids: list[str] = field(default_factory=list)
    status: str = "answered"
    run: RunRow | None = None  # the run log's row ("why did it say that")
    create: bool = False  # a first contact: the customer's row is made by this write
    jobs: Sequence[JobRow] = ()  # follow-up jobs written with it
    customer: Customer | None = None  # with `create`: the row as written (set by `write`)


def _p(key: CustomerKey, rec: TurnRecord) -> dict[str, Any]:
    c = rec.contact
    return {"tenant": key.tenant, "phone": key.phone, "name": c.name, "wa_jid": c.wa_jid,
            "lid": c.lid, "n_in": rec.inbound, "n_out": rec.msgs_out, "t_in": rec.tokens_in,
            "t_out": rec.tokens_out, "day": utc_day(rec.at), "stage": Stage.LEAD.value,
            "no": False}


CUSTOMER_SQL = (
    "UPDATE customers SET last_contact = :at,"
    " last_inbound = CASE WHEN :n_in > 0 THEN :at ELSE last_inbound END,"
    " msgs_in = msgs_in + :n_in, msgs_out = msgs_out + :n_out,"
    " tokens_in = tokens_in + :t_in, tokens_out = tokens_out + :t_out,"
    " name = CASE WHEN :name <> '' THEN :name ELSE name END,"
    " wa_jid = CASE WHEN :wa_jid <> '' THEN :wa_jid ELSE wa_jid END,"
    " lid = CASE WHEN :lid <> '' THEN :lid ELSE lid END"
    " WHERE tenant = :tenant AND phone = :phone")
_COLUMNS = [c.name for c in CUSTOMERS.c]
# First contact: the row as `CustomerStore.touch` makes it, counters and all; a row made
# meanwhile (a tool's change, another path) is updated as CUSTOMER_SQL does.
CREATE_SQL = (
    "INSERT INTO customers (tenant, phone, wa_jid, lid, name, stage, opted_out,"
    " first_contact, last_contact, last_inbound, msgs_in, msgs_out, tokens_in, tokens_out)"
    " VALUES (:tenant, :phone, :wa_jid, :lid, :name, :stage, :no, :at, :at, :inbound_at,"
    " :n_in, :n_out, :t_in, :t_out)"
    " ON CONFLICT (tenant, phone) DO UPDATE SET last_contact = :at,"
    " last_inbound = CASE WHEN :n_in > 0 THEN :at ELSE customers.last_inbound END,"
    " msgs_in = customers.msgs_in + :n_in, msgs_out = customers.msgs_out + :n_out,"
    " tokens_in = customers.tokens_in + :t_in, tokens_out = customers.tokens_out + :t_out,"
    " name = CASE WHEN :name <> '' THEN :name ELSE customers.name END,"
    " wa_jid = CASE WHEN :wa_jid <> '' THEN :wa_jid ELSE customers.wa_jid END,"
    " lid = CASE WHEN :lid <> '' THEN :lid ELSE customers.lid END"
    " RETURNING " + ", ".join(_COLUMNS))
JOB_UPSERT = (" ON CONFLICT (id) DO UPDATE SET next_run_time = excluded.next_run_time,"
              " job_state = excluded.job_state")
JOB_SQL = ("INSERT INTO {table} (id, next_run_time, job_state) VALUES (:id, :t, :state)"
           + JOB_UPSERT)
USAGE_SQL = (
    "INSERT INTO usage_daily (tenant, day, phone, msgs_out, tokens_in, tokens_out)"
    " VALUES (:tenant, :day, :phone, :n_out, :t_in, :t_out)"
    " ON CONFLICT (tenant, day, phone) DO UPDATE SET"
    " msgs_out = usage_daily.msgs_out + excluded.msgs_out,"
    " tokens_in = usage_daily.tokens_in + excluded.tokens_in,"
    " tokens_out = usage_daily.tokens_out + excluded.tokens_out")
MESSAGE_SQL = INSERT_LINE
JOURNAL_ONE = "UPDATE journal SET status = :status WHERE tenant = :tenant AND msg_id = :msg_id"
# text[]: asyncpg reads the type catalog for a varchar[] parameter on each new connection.
JOURNAL_PG = ("UPDATE journal SET status = :status WHERE tenant = :tenant"
              " AND msg_id = ANY(CAST(:ids AS text[]))")
FENCE = "SELECT 1 FROM number_leases WHERE number = :n AND owner = :me AND epoch = :e"

_SQL = {name: text(sql) for name, sql in (  # in-memory SQLite, through the engine
    ("customer", CUSTOMER_SQL), ("usage", USAGE_SQL), ("message", MESSAGE_SQL),
    ("journal", JOURNAL_ONE), ("run", INSERT_RUN), ("fence", FENCE))}
_CREATE = text(CREATE_SQL).columns(*CUSTOMERS.c)  # typed: times come back aware

# PostgreSQL, on asyncpg: the whole turn is one statement, so one round trip and no
# BEGIN or COMMIT of its own (`_pg_turn_sql`). Every write in it is gated on `lease`: in a
# fleet the lease row held FOR KEY SHARE to the commit (a takeover, which locks it FOR
# UPDATE, waits for the write; a renewal, which changes no key, does not), else one row.
LEASE_PG = FENCE + " FOR KEY SHARE"
HELD = " WHERE EXISTS (SELECT 1 FROM lease)"
# The memory's lock (as SqlMemoryStore.append takes it) before the lines get their ids.
MEMORY_LOCK_PG = "SELECT pg_advisory_xact_lock(hashtext(:k)) IS NULL FROM lease"
# The lines as text arrays, inserted in order (ids follow it), each returning its row unless
# its msg_id is already remembered.
LINES_PG = (
    "INSERT INTO memory_messages (tenant, phone, role, text, at, kind, msg_id)"
    " SELECT :tenant, :phone, u.r, u.x, CAST(u.a AS timestamptz), u.k, u.m FROM memory_lock,"
    " unnest(CAST(:roles AS text[]), CAST(:texts AS text[]), CAST(:ats AS text[]),"
    " CAST(:kinds AS text[]), CAST(:msg_ids AS text[])) WITH ORDINALITY AS u(r, x, a, k, m, o)"
    " ORDER BY u.o ON CONFLICT DO NOTHING RETURNING id, msg_id")
JOBS_PG = (
    "INSERT INTO {table} (id, next_run_time, job_state) SELECT u.i, CAST(u.t AS float8),"
    " decode(u.s, 'base64') FROM unnest(CAST(:{p}_ids AS text[]), CAST(:{p}_times AS text[]),"
    " CAST(:{p}_states AS text[])) AS u(i, t, s)" + HELD + JOB_UPSERT)


def _held(sql: str) -> str:
    """An INSERT … VALUES or an UPDATE, made to write only when `lease` holds a row."""
    if sql.startswith("UPDATE"):
        return sql + " AND EXISTS (SELECT 1 FROM lease)"
    insert = re.fullmatch(r"(.*?) VALUES \(([^()]*)\)(.*)", sql)
    if insert is None:
        raise ValueError(f"not an INSERT … VALUES or an UPDATE: {sql[:40]}")
    head, values, tail = insert.groups()
    return f"{head} SELECT {values}{HELD}{tail}"


@functools.cache
def _pg_turn_sql(fenced: bool, lines: bool, create: bool, usage: bool, journal: bool,
                 run: bool, jobs: tuple[str, ...] = ()) -> Positional:
    """The turn as one statement of data-modifying CTEs, made once per shape. It returns
    one row: whether the lease held (`held`), the stored lines' ids and msg_ids in order,
    and a first contact's customer row as written. `jobs`: the job tables written to."""
    parts = [("lease", LEASE_PG if fenced else "SELECT 1")]
    if lines:
        parts += [("memory_lock", MEMORY_LOCK_PG), ("line_rows", LINES_PG)]
    parts += [(f"job_rows_{i}", JOBS_PG.format(table=table, p=f"job{i}"))
              for i, table in enumerate(jobs)]
    parts += [(name, _held(sql)) for name, sql, on in (
        ("usage_row", USAGE_SQL, usage), ("journal_status", JOURNAL_PG, journal),
        ("run_row", INSERT_RUN, run), ("customer_row", CREATE_SQL if create else CUSTOMER_SQL,
                                       True)) if on]
    found = ("ARRAY(SELECT id FROM line_rows ORDER BY id) AS ids,"
             " ARRAY(SELECT msg_id FROM line_rows ORDER BY id) AS msg_ids" if lines
             else "NULL AS ids, NULL AS msg_ids")
    main = f"SELECT EXISTS (SELECT 1 FROM lease) AS held, {found}" + (
        ", customer_row.* FROM (SELECT 1) AS one LEFT JOIN customer_row ON true" if create
        else "")
    return Positional.of("WITH " + ", ".join(f"{n} AS ({sql})" for n, sql in parts) + " " + main)


Stamp = Callable[[], dict[str, Any]]


class StaleOwner(NotOwner):
    """The turn was refused: another node serves the number now."""


def _fence(row: object, stamp: dict[str, Any]) -> None:
    if row is None:
        raise StaleOwner(f"number {stamp['n']}: epoch {stamp['e']} is no longer the "
                         "owner's; the turn's write is refused")


class TurnWriter:
    def __init__(self, db: Database, memory: MemoryStore, stamp: Stamp | None = None) -> None:
        self._db = db
        self._memory = memory
        self._stamp = stamp
        # One transaction for everything only when the memory lives in this database.
        self.together = isinstance(memory, SqlMemoryStore) and memory.database is db
        self.writes = 0

    async def write(self, rec: TurnRecord) -> list[MemoryMessage]:
        """Commit the turn; returns the messages stored (with their seq), skipping lines
        already remembered (a replay after a crash)."""
        lines = rec.messages
        stored: list[MemoryMessage] = []
        stamp = self._stamp() if self._stamp is not None else None  # raises when stale
        if lines and not self.together:
            stored = await self._memory.append(rec.key, lines)
            lines = []
        raw = self._db.raw_writer
        if raw is not None:
            stored += await raw.run(lambda cur: _sqlite_turn(cur, rec, lines, stamp))
        elif not self._db.is_sqlite:
            stored += await self._pg_turn(rec, lines, stamp)
        else:
            stored += await self._engine_turn(rec, lines, stamp)
        self.writes += 1
        return stored

    async def _pg_turn(self, rec: TurnRecord, lines: list[MemoryMessage],
                       stamp: dict[str, Any] | None) -> list[MemoryMessage]:
        """The turn in one statement (`_pg_turn_sql`), committing itself."""
        sql, args = pg_statement(rec, lines, stamp)
        async with self._db.driver() as pg:
            row = await pg.fetchrow(sql, *args)
        if stamp is not None and not row["held"]:  # the statement wrote nothing
            _fence(None, stamp)
        if rec.create:
            rec.customer = customer_of(row)  # committed
        return _stored(lines, row["ids"] or [], row["msg_ids"] or [])

    async def _engine_turn(self, rec: TurnRecord, lines: list[MemoryMessage],
                           stamp: dict[str, Any] | None) -> list[MemoryMessage]:
        """An in-memory SQLite database (tests): no writer thread, the engine's connection."""
        key, params = rec.key, _p(rec.key, rec)
        stored: list[MemoryMessage] = []
        created: Customer | None = None
        async with self._db.begin() as conn:
            if stamp is not None:
                _fence((await conn.execute(_SQL["fence"], stamp)).first(), stamp)
            for m in lines:
                seq = (await conn.execute(_SQL["message"], line_params(key, m))).scalar()
                if seq is not None:
                    stored.append(replace(m, text=scrub(m.text), seq=int(seq)))
            at = sqlite_time(rec.at)
            if rec.create:
                row = (await conn.execute(_CREATE, {
                    **params, "at": at, "inbound_at": at if rec.inbound else None,
                })).mappings().one()
                created = customer_of(row)
            else:
                await conn.execute(_SQL["customer"], {**params, "at": at})
            for job in rec.jobs:
                await conn.execute(_job_insert(job.table), _job_params(job))
            if rec.msgs_out or rec.tokens_in or rec.tokens_out:
                await conn.execute(_SQL["usage"], params)
            for msg_id in rec.journal_ids:
                await conn.execute(_SQL["journal"], {
                    "status": rec.status, "tenant": key.tenant, "msg_id": msg_id})
            if rec.run is not None:
                await conn.execute(_SQL["run"], rec.run.params(key, at))
        rec.customer = created  # committed
        return stored


def pg_statement(rec: TurnRecord, lines: list[MemoryMessage],
                 stamp: dict[str, Any] | None) -> tuple[str, list[Any]]:
    """The turn's statement on PostgreSQL and its arguments."""
    key = rec.key
    usage = bool(rec.msgs_out or rec.tokens_in or rec.tokens_out)
    jobs = _jobs_by_table(rec.jobs)
    sql = _pg_turn_sql(stamp is not None, bool(lines), rec.create, usage,
                       bool(rec.journal_ids), rec.run is not None, tuple(jobs))
    params = {**_p(key, rec), **(stamp or {}), "at": rec.at,
              "inbound_at": rec.at if rec.inbound else None, "status": rec.status,
              "ids": rec.journal_ids, "k": f"wabot-memory:{key}"}
    if lines:
        rows = [line_params(key, m) for m in lines]
        params.update(roles=[r["role"] for r in rows], texts=[r["text"] for r in rows],
                      ats=[r["at"].isoformat() for r in rows],
                      kinds=[r["kind"] for r in rows], msg_ids=[r["msg_id"] for r in rows])
    for i, table_jobs in enumerate(jobs.values()):
        params[f"job{i}_ids"] = [j.id for j in table_jobs]
        params[f"job{i}_times"] = [repr(j.next_run_time) for j in table_jobs]
        params[f"job{i}_states"] = [base64.b64encode(j.job_state).decode() for j in table_jobs]
    if rec.run is not None:
        params.update(rec.run.params(key, rec.at))
    return sql.sql, sql.args(params)


def _stored(lines: list[MemoryMessage], ids: list[int],
            msg_ids: list[str | None]) -> list[MemoryMessage]:
    """The stored lines with their seq, from the ids and msg_ids the insert returned in
    order: a line is stored when the next row carries its msg_id (a later line with the same
    msg_id cannot be stored when an earlier one was not)."""
    rows = iter(zip(ids, msg_ids, strict=True))
    stored: list[MemoryMessage] = []
    row = next(rows, None)
    for m in lines:
        if row is not None and row[1] == (m.msg_id or None):
            stored.append(replace(m, text=scrub(m.text), seq=int(row[0])))
            row = next(rows, None)
    return stored


def _jobs_by_table(jobs: Sequence[JobRow]) -> dict[str, list[JobRow]]:
    """The jobs grouped by table, the last of any id kept (as if written one by one: one
    statement cannot update a row twice)."""
    tables: dict[str, dict[str, JobRow]] = {}
    for job in jobs:
        tables.setdefault(job.table, {})[job.id] = job
    return {table: list(by_id.values()) for table, by_id in tables.items()}


def _sqlite_turn(cur: sqlite3.Cursor, rec: TurnRecord, lines: list[MemoryMessage],
                 stamp: dict[str, Any] | None) -> list[MemoryMessage]:
    key, params = rec.key, _p(rec.key, rec)
    if stamp is not None:
        _fence(cur.execute(FENCE, stamp).fetchone(), stamp)
    stored = insert_lines(cur, key, lines)
    at = sqlite_time(rec.at)
    if rec.create:
        row = cur.execute(CREATE_SQL, {**params, "at": at,
                                       "inbound_at": at if rec.inbound else None}).fetchone()
        rec.customer = customer_from_sqlite(dict(zip(_COLUMNS, row, strict=True)))
    else:
        cur.execute(CUSTOMER_SQL, {**params, "at": at})
    for job in rec.jobs:
        cur.execute(JOB_SQL.format(table=job.table), _job_params(job))
    if rec.msgs_out or rec.tokens_in or rec.tokens_out:
        cur.execute(USAGE_SQL, params)
    for msg_id in rec.journal_ids:
        cur.execute(JOURNAL_ONE, {"status": rec.status, "tenant": key.tenant, "msg_id": msg_id})
    if rec.run is not None:
        cur.execute(INSERT_RUN, rec.run.params(key, sqlite_time(rec.at)))
    return stored


@functools.cache
def _job_insert(table: str) -> TextClause:
    """`JOB_SQL` for one job table, made once (a number's table lives as long as the process)."""
    return text(JOB_SQL.format(table=table))


def _job_params(job: JobRow) -> dict[str, Any]:
    return {"id": job.id, "t": job.next_run_time, "state": job.job_state}
