"""Agent memory in SQL tables (SQLite by default, PostgreSQL by URL), on the shared `Database`.

Every write is a single atomic statement (`INSERT … ON CONFLICT`, merging in the database),
so concurrent turns, follow-ups and owner messages for one customer never lose or duplicate
anything: SQLite serializes writers, PostgreSQL resolves the conflict on the unique index.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    Select,
    Text,
    TypeDecorator,
    UniqueConstraint,
    delete,
    func,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Field, SQLModel

from bot.models import CustomerKey, MemoryMessage, Stage
from bot.stores.db import SCHEMA, Database
from bot.stores.memory_base import ROLES, Fact, MemoryStore, Profile, StageChange
from bot.stores.sqlite_writer import sqlite_time
from bot.text import scrub


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC in, aware UTC out: SQLite keeps no offset, so it is re-attached on read."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


def as_utc(at: datetime) -> datetime:
    # A naive time is taken as UTC (what every wabot clock hands out) rather than refused:
    # losing a customer's line over a missing tzinfo would be worse than a mislabelled one.
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


# BIGINT on PostgreSQL (history across all tenants outgrows 2**31); SQLite only makes an
# AUTOINCREMENT rowid of exactly INTEGER, and AUTOINCREMENT keeps a forgotten customer's seqs
# from being handed out again.
_SEQ = BigInteger().with_variant(Integer(), "sqlite")
_FACTS = JSON().with_variant(JSONB(), "postgresql")


class MemoryMessageRow(SQLModel, table=True):
    __tablename__ = "memory_messages"
    __table_args__ = (
        Index("ix_memory_messages_customer_seq", "tenant", "phone", "id"),
        # NULL msg_ids (lines without a WhatsApp id) never collide in a unique constraint.
        UniqueConstraint("tenant", "phone", "msg_id", name="uq_memory_messages_msg_id"),
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(default=None, sa_column=Column(_SEQ, primary_key=True))
    tenant: str
    phone: str
    role: str
    text: str = Field(sa_column=Column(Text, nullable=False))
    at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))
    kind: str
    msg_id: str | None = None


class MemoryProfileRow(SQLModel, table=True):
    __tablename__ = "memory_profiles"

    tenant: str = Field(primary_key=True)
    phone: str = Field(primary_key=True)
    summary: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    summarized_upto: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    facts: dict[str, Any] = Field(default_factory=dict, sa_column=Column(_FACTS, nullable=False))
    updated_at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))


class MemoryStageRow(SQLModel, table=True):
    __tablename__ = "memory_stage_changes"
    __table_args__ = (Index("ix_memory_stage_changes_customer", "tenant", "phone", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    tenant: str
    phone: str
    from_stage: str | None = None
    to_stage: str
    reason: str = Field(sa_column=Column(Text, nullable=False))
    at: datetime = Field(sa_column=Column(UtcDateTime, nullable=False))


MESSAGES = MemoryMessageRow.__table__  # type: ignore[attr-defined]
PROFILES = MemoryProfileRow.__table__  # type: ignore[attr-defined]
STAGES = MemoryStageRow.__table__  # type: ignore[attr-defined]
TABLES = [MESSAGES, PROFILES, STAGES]


def _customer(table: Any, key: CustomerKey) -> ColumnElement[bool]:
    match: ColumnElement[bool] = (table.c.tenant == key.tenant) & (table.c.phone == key.phone)
    return match


def _message(row: Any) -> MemoryMessage:
    return MemoryMessage(role=ROLES[row.role], text=row.text, at=row.at, kind=row.kind,
                         msg_id=row.msg_id or "", seq=row.id)


def _fact_json(fact: Fact, now: datetime) -> dict[str, str]:
    # Always stamped: SQLite's json_patch reads a JSON null as "delete this key".
    at = as_utc(fact.updated_at) if fact.updated_at else now
    return {"value": scrub(fact.value), "category": scrub(fact.category),
            "updated_at": at.isoformat()}


def _fact(key: str, data: dict[str, str]) -> Fact:
    return Fact(key=key, value=data["value"], category=data["category"],
                updated_at=datetime.fromisoformat(data["updated_at"]))


def page_query(key: CustomerKey, after_seq: int, limit: int, *, newest_first: bool) -> Select[Any]:
    """One page of a customer's history, walked along the (tenant, phone, id) index in either
    direction: its cost is `limit` rows however long the relationship is."""
    order = MESSAGES.c.id.desc() if newest_first else MESSAGES.c.id.asc()
    return (select(MESSAGES).where(_customer(MESSAGES, key), MESSAGES.c.id > after_seq)
            .order_by(order).limit(limit))


INSERT_LINE = (
    "INSERT INTO memory_messages (tenant, phone, role, text, at, kind, msg_id)"
    " VALUES (:tenant, :phone, :role, :text, :at, :kind, :msg_id)"
    " ON CONFLICT DO NOTHING RETURNING id")


def line_params(key: CustomerKey, m: MemoryMessage) -> dict[str, Any]:
    return {"tenant": key.tenant, "phone": key.phone, "role": m.role.value,
            "text": scrub(m.text), "at": as_utc(m.at), "kind": m.kind, "msg_id": m.msg_id or None}


def insert_lines(cur: sqlite3.Cursor, key: CustomerKey,
                 lines: list[MemoryMessage]) -> list[MemoryMessage]:
    """Append lines on the SQLite writer thread's cursor; the stored ones with their seq."""
    stored: list[MemoryMessage] = []
    for m in lines:
        p = line_params(key, m)
        at = p["at"]
        p["at"] = sqlite_time(at)
        row = cur.execute(INSERT_LINE, p).fetchone()
        if row is not None:  # None: this msg_id is already remembered
            stored.append(replace(m, text=p["text"], at=at, seq=int(row[0])))
    return stored


class SqlMemoryStore(MemoryStore):
    """The embedded default: memory tables next to the customers in the same database."""

    def __init__(self, db: Database) -> None:
        self._db = db  # shared with the customer store: never disposed here

    @property
    def database(self) -> Database:
        return self._db

    def _insert(self, table: Any) -> Any:
        # The dialect's own INSERT is the only one that speaks ON CONFLICT.
        return (sqlite if self._db.is_sqlite else postgresql).insert(table)

    async def start(self) -> None:
        async with self._db.begin(serial=SCHEMA) as conn:
            await conn.run_sync(SQLModel.metadata.create_all, tables=TABLES)

    async def close(self) -> None:
        return None

    async def append(self, key: CustomerKey, messages: list[MemoryMessage]) -> list[MemoryMessage]:
        raw = self._db.raw_writer
        if raw is not None and messages:  # SQLite: one hop to the writer thread
            return await raw.run(lambda cur: insert_lines(cur, key, messages))
        stored: list[MemoryMessage] = []
        async with self._db.begin() as conn:
            await self._lock_customer(conn, key)
            for m in messages:
                line = replace(m, text=scrub(m.text))
                row = (await conn.execute(self._insert_message(key, line))).first()
                if row is not None:  # None: this msg_id is already remembered
                    stored.append(replace(line, at=row.at, seq=row.id))
        return stored

    def _insert_message(self, key: CustomerKey, m: MemoryMessage) -> Any:
        # One row per statement: RETURNING of a multi-row INSERT comes back in no promised
        # order (SQLite says so), and each line needs its own seq or "skipped".
        return (self._insert(MESSAGES)
                .values(tenant=key.tenant, phone=key.phone, role=m.role.value, text=m.text,
                        at=m.at, kind=m.kind, msg_id=m.msg_id or None)
                .on_conflict_do_nothing()
                .returning(MESSAGES.c.id, MESSAGES.c.at))

    async def _lock_customer(self, conn: AsyncConnection, key: CustomerKey) -> None:
        # PostgreSQL hands out ids at INSERT but makes them visible at COMMIT, so two
        # concurrent appends could surface seq 6 before seq 5, and a summarizer reading in
        # between would skip 5 for good. One append per customer at a time keeps seqs
        # visible in order. SQLite already serializes writers.
        if not self._db.is_sqlite:
            await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
                               {"k": f"wabot-memory:{key}"})

    async def recent(self, key: CustomerKey, limit: int, after_seq: int = 0) -> list[MemoryMessage]:
        rows = await self._rows(page_query(key, after_seq, limit, newest_first=True))
        return [_message(r) for r in reversed(rows)]

    async def oldest(self, key: CustomerKey, after_seq: int, limit: int) -> list[MemoryMessage]:
        rows = await self._rows(page_query(key, after_seq, limit, newest_first=False))
        return [_message(r) for r in rows]

    async def _rows(self, stmt: Select[Any]) -> list[Any]:
        async with self._db.connect() as conn:
            return list((await conn.execute(stmt)).all())

    async def count(self, key: CustomerKey, after_seq: int = 0) -> int:
        stmt = (select(func.count()).select_from(MESSAGES)
                .where(_customer(MESSAGES, key), MESSAGES.c.id > after_seq))
        async with self._db.connect() as conn:
            return int((await conn.execute(stmt)).scalar_one())

    async def profile(self, key: CustomerKey, *, with_stages: bool = True) -> Profile:
        async with self._db.connect() as conn:
            row = (await conn.execute(select(PROFILES).where(_customer(PROFILES, key)))).first()
            stages = (await conn.execute(select(STAGES).where(_customer(STAGES, key))
                                         .order_by(STAGES.c.id))).all() if with_stages else []
        prof = Profile(stages=[
            StageChange(Stage(s.from_stage) if s.from_stage else None, Stage(s.to_stage),
                        s.reason, s.at) for s in stages])
        if row is not None:
            prof.summary, prof.summarized_upto = row.summary, row.summarized_upto
            prof.facts = {k: _fact(k, v) for k, v in row.facts.items()}
        return prof

    async def save_summary(self, key: CustomerKey, summary: str, upto_seq: int) -> None:
        now = datetime.now(UTC)
        stmt = self._insert(PROFILES).values(
            tenant=key.tenant, phone=key.phone, summary=scrub(summary), summarized_upto=upto_seq,
            facts={}, updated_at=now)
        # The WHERE turns a stale summarizer (one that started before a newer summary landed)
        # into a no-op instead of rewinding the summary.
        stmt = stmt.on_conflict_do_update(
            index_elements=[PROFILES.c.tenant, PROFILES.c.phone],
            set_={"summary": stmt.excluded.summary,
                  "summarized_upto": stmt.excluded.summarized_upto, "updated_at": now},
            where=PROFILES.c.summarized_upto <= stmt.excluded.summarized_upto)
        async with self._db.begin() as conn:
            await conn.execute(stmt)

    async def merge_facts(self, key: CustomerKey, facts: list[Fact]) -> None:
        if not facts:
            return
        now = datetime.now(UTC)
        patch = {scrub(f.key): _fact_json(f, now) for f in facts}  # later duplicates win
        stmt = self._insert(PROFILES).values(
            tenant=key.tenant, phone=key.phone, summary="", summarized_upto=0, facts=patch,
            updated_at=now)
        # Merged inside the database, in the same statement as the conflict check, so two
        # concurrent merges both land (a read-modify-write in Python would lose one).
        merged = (func.json_patch(PROFILES.c.facts, stmt.excluded.facts) if self._db.is_sqlite
                  else PROFILES.c.facts.op("||")(stmt.excluded.facts))
        stmt = stmt.on_conflict_do_update(index_elements=[PROFILES.c.tenant, PROFILES.c.phone],
                                          set_={"facts": merged, "updated_at": now})
        async with self._db.begin() as conn:
            await conn.execute(stmt)

    async def add_stage_change(self, key: CustomerKey, change: StageChange) -> None:
        values = {"tenant": key.tenant, "phone": key.phone, "reason": scrub(change.reason),
                  "from_stage": change.from_stage.value if change.from_stage else None,
                  "to_stage": change.to_stage.value, "at": change.at}
        async with self._db.begin() as conn:
            await conn.execute(STAGES.insert().values(**values))

    async def forget(self, key: CustomerKey) -> None:
        async with self._db.begin() as conn:
            await self._lock_customer(conn, key)  # an append in flight lands before, not after
            for table in TABLES:
                await conn.execute(delete(table).where(_customer(table, key)))

    async def rekey(self, old: CustomerKey, new: CustomerKey) -> None:
        """One transaction: rows change hands, keeping their seqs, so the merged history
        interleaves in the order it happened. A line `new` already holds is kept once."""
        m = MESSAGES.c
        async with self._db.begin() as conn:
            for key in sorted((old, new), key=str):
                await self._lock_customer(conn, key)
            firsts = {k.phone: (await conn.execute(select(func.min(m.id)).where(
                _customer(MESSAGES, k)))).scalar_one() for k in (old, new)}
            held = select(m.msg_id).where(_customer(MESSAGES, new), m.msg_id.is_not(None))
            await conn.execute(delete(MESSAGES).where(_customer(MESSAGES, old),
                                                      m.msg_id.in_(held)))
            for table in (MESSAGES, STAGES):
                await conn.execute(table.update().where(_customer(table, old))
                                   .values(phone=new.phone))
            rows = {r.phone: r for r in (await conn.execute(select(PROFILES).where(
                PROFILES.c.tenant == old.tenant,
                PROFILES.c.phone.in_([old.phone, new.phone])))).all()}
            if old.phone in rows:
                await conn.execute(delete(PROFILES).where(
                    PROFILES.c.tenant == old.tenant,
                    PROFILES.c.phone.in_([old.phone, new.phone])))
                await conn.execute(self._insert(PROFILES).values(
                    tenant=new.tenant, phone=new.phone, updated_at=datetime.now(UTC),
                    **_joined(rows[old.phone], rows.get(new.phone), firsts[old.phone],
                             firsts[new.phone])))


def _joined(was: Any, now: Any, first_was: int | None, first_now: int | None,
            ) -> dict[str, Any]:
    """A merged profile: `now`'s facts win, the summaries joined, and `summarized_upto`
    never hiding a line no summary covers (lines at or below it leave the window)."""
    sides = [(was, first_was), (now, first_now)]  # `now` None: lines without a profile
    upto: int | None = None
    for row, first in sides:
        covered = row.summarized_upto if row is not None and row.summary else None
        bound = covered if covered is not None else (None if first is None else first - 1)
        upto = bound if upto is None else upto if bound is None else min(upto, bound)
    summary = "\n\n".join(r.summary for r, _ in sides if r is not None and r.summary)
    facts = {**was.facts, **(now.facts if now is not None else {})}
    return {"summary": summary, "summarized_upto": max(upto or 0, 0), "facts": facts}
