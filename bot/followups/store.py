"""Where follow-ups are kept: the tenant's APScheduler job table and the log of sent ones.

A job is one customer's follow-up of one kind under a fixed id `followup:<tenant>:<phone>:<kind>`
(replaced, never duplicated), in a table per tenant. The sent log counts toward the caps, and
both are customer data for `wabot export` and `wabot forget`.
"""

from __future__ import annotations

import asyncio
import hashlib
import pickle
import re
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from sqlalchemy import Engine, Index, Table, create_engine, delete, func, inspect, select, text
from sqlalchemy.exc import OperationalError
from sqlmodel import Field, SQLModel

from bot.models import CustomerKey
from bot.phones import mask
from bot.stores.db import SCHEMA, Database, UTCDateTime, sync_url
from bot.stores.privacy import Holder

AGENT = "agent"  # the kind of the follow-up the agent schedules; rules use their name


@dataclass(frozen=True, slots=True)
class FollowUp:
    tenant: str
    phone: str
    kind: str  # AGENT or a rule name
    reason: str
    scheduled_at: datetime  # a customer message after this cancels it (by policy)
    due_at: datetime  # when it was meant for; moves (hours, caps) keep it
    run_at: datetime | None = None  # the job's next run time, when read from the store

    @property
    def key(self) -> CustomerKey:
        return CustomerKey(self.tenant, self.phone)

    @property
    def job_id(self) -> str:
        return job_id(self.tenant, self.phone, self.kind)

    @property
    def label(self) -> str:
        """The job id with the phone masked, for logs."""
        return job_id(self.tenant, mask(self.phone), self.kind)

    def kwargs(self) -> dict[str, str]:
        return {"tenant": self.tenant, "phone": self.phone, "kind": self.kind,
                "reason": self.reason, "scheduled_at": self.scheduled_at.isoformat(),
                "due_at": self.due_at.isoformat()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> FollowUp:
        kw = state["kwargs"]
        return cls(kw["tenant"], kw["phone"], kw["kind"], kw["reason"],
                   datetime.fromisoformat(kw["scheduled_at"]),
                   datetime.fromisoformat(kw["due_at"]), state.get("next_run_time"))


def job_id(tenant: str, phone: str, kind: str) -> str:
    return f"followup:{tenant}:{phone}:{kind}"


_KIND = re.compile(r"[a-z][a-z0-9_]{0,31}")


def followup_id(phone: str, kind: str) -> str:
    """The id the owner sees, in the CLI, the page and the API: `5215512345678-lead_silent`
    (no `+` or `:` to escape in a URL; the tenant is the number being looked at)."""
    return f"{phone.removeprefix('+')}-{kind}"


def parse_followup_id(text: str, tenant: str) -> tuple[str, str] | None:
    """(phone, kind) of an id as `followup_id` shows it, or as the job table keeps it
    (`followup:<tenant>:+5215512345678:lead_silent`); None when it is neither."""
    text = text.strip()
    if text.startswith("followup:"):
        if not text.startswith(f"followup:{tenant}:"):
            return None
        phone, _, kind = text.removeprefix(f"followup:{tenant}:").rpartition(":")
    else:
        phone, _, kind = text.rpartition("-")
        phone = "+" + phone if phone.isdigit() else phone
    if not phone or not _KIND.fullmatch(kind):
        return None
    return phone, kind


class FollowUpSent(SQLModel, table=True):
    """Every proactive message attempted: the caps count these."""

    __tablename__ = "followups_sent"
    __table_args__ = (
        Index("ix_followups_sent_day", "tenant", "at"),
        Index("ix_followups_sent_customer", "tenant", "phone", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    tenant: str = Field(max_length=64)
    phone: str = Field(max_length=20)
    kind: str = Field(max_length=40)
    at: datetime = Field(sa_type=UTCDateTime)
    status: str = "sending"  # sending → sent | failed (failed ones do not count)


SENT = cast(Table, FollowUpSent.__table__)  # type: ignore[attr-defined]
COUNTED = ("sending", "sent")


# --- the job table -------------------------------------------------------------------------


def job_table_name(tenant: str) -> str:
    """`followup_jobs_<tenant>`; a hash keeps odd or long tenant ids unique and short."""
    slug = re.sub(r"[^a-z0-9_]", "_", tenant.lower())
    if slug == tenant and len(slug) <= 40:
        return f"followup_jobs_{slug}"
    return f"followup_jobs_{slug[:40]}_{hashlib.sha1(tenant.encode()).hexdigest()[:8]}"


class JobTable:
    """The tenant's job table read directly (listing, due jobs, cancelling): the rows
    APScheduler reads, without unpickling 100,000 jobs to show twenty. Synchronous."""

    def __init__(self, sql_url: str, tenant: str) -> None:
        self.tenant = tenant
        self._url = sync_url(sql_url)
        self.store = SQLAlchemyJobStore(engine=_shared_engine(self._url),
                                        tablename=job_table_name(tenant))
        self.t: Table = self.store.jobs_t
        self._closed = False

    def create(self, attempts: int = 6) -> None:
        """Create the job table before APScheduler's start looks for it.

        APScheduler's start (jobstores/sqlalchemy.py `SQLAlchemyJobStore.start`) checks for
        the table, then creates it, in one SQLite transaction: when another connection
        (the turn writer's thread) commits in between, SQLite refuses the upgrade from
        read to write with "database is locked" at once, without waiting on the busy
        timeout (SQLITE_BUSY_SNAPSHOT in WAL mode). Here the same create is retried;
        APScheduler then finds the table and writes nothing.
        """
        for attempt in range(attempts):
            try:
                with self.store.engine.begin() as conn:
                    if conn.dialect.name == "postgresql":  # nodes starting at once
                        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
                                     {"k": SCHEMA})
                    self.t.create(conn, checkfirst=True)
                return
            except OperationalError as exc:
                if "locked" not in str(exc) or attempt == attempts - 1:
                    raise
                time.sleep(0.05 * 2 ** attempt)

    def exists(self) -> bool:
        return bool(inspect(self.store.engine).has_table(self.t.name))

    def pending(self, phone: str | None = None, limit: int | None = None,
                due_by: datetime | None = None, kinds: list[str] | None = None,
                ) -> list[FollowUp]:
        """Pending follow-ups, soonest first: of one customer (of these kinds: a primary
        key lookup; any kind: a scan), and/or due by a time."""
        c = self.t.c
        stmt = select(c.job_state).order_by(c.next_run_time)
        if phone is not None and kinds is not None:
            stmt = stmt.where(c.id.in_([job_id(self.tenant, phone, k) for k in kinds]))
        elif phone is not None:
            stmt = stmt.where(c.id.startswith(job_id(self.tenant, phone, ""), autoescape=True))
        if due_by is not None:
            stmt = stmt.where(c.next_run_time <= due_by.timestamp())
        if limit is not None:
            stmt = stmt.limit(limit)
        with self.store.engine.connect() as conn:
            rows = conn.execute(stmt).scalars().all()
        return [FollowUp.from_state(pickle.loads(state)) for state in rows]

    def remove(self, ids: list[str]) -> int:
        if not ids:
            return 0
        with self.store.engine.begin() as conn:
            return int(conn.execute(self.t.delete().where(self.t.c.id.in_(ids))).rowcount or 0)

    def count(self) -> int:
        with self.store.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(self.t)).scalar_one())

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            _release_engine(self._url)


# One synchronous engine per database for every number's job table in the process (each
# its own engine held a connection pool of its own: a hundred numbers, a hundred pools).
_ENGINES: dict[str, tuple[Engine, int]] = {}


def _shared_engine(url: str) -> Engine:
    engine, users = _ENGINES.get(url, (None, 0))
    if engine is None:
        # APScheduler reads and writes it from the event loop's thread, one call at a
        # time: a small pool does (a node of the fleet has many numbers, PostgreSQL a
        # hundred connections by default).
        options: dict[str, Any] = (
            {"connect_args": {"timeout": 30}} if url.startswith("sqlite")
            else {"pool_pre_ping": True, "pool_size": 2, "max_overflow": 3})
        engine = create_engine(url, hide_parameters=True,  # errors must not print data
                               **options)
    _ENGINES[url] = (engine, users + 1)
    return engine


def _release_engine(url: str) -> None:
    engine, users = _ENGINES.get(url, (None, 0))
    if engine is None:
        return
    if users <= 1:
        del _ENGINES[url]
        engine.dispose()
    else:
        _ENGINES[url] = (engine, users - 1)


class PendingJobs:
    """A number's pending follow-ups, listed and cancelled in its job table as `wabot
    followups` does it: for a console on a node that does not run the number. A job only
    ever fires from the table, so one cancelled here never goes out."""

    def __init__(self, sql_url: str, tenant: str) -> None:
        self.table = JobTable(sql_url, tenant)

    async def pending(self, phone: str | None = None, limit: int | None = None,
                      kinds: list[str] | None = None) -> list[FollowUp]:
        def read() -> list[FollowUp]:
            return self.table.pending(phone, limit, None, kinds) if self.table.exists() else []

        return await asyncio.to_thread(read)

    async def cancel(self, key: CustomerKey, kind: str | None = None) -> int:
        def remove() -> int:
            if not self.table.exists():
                return 0
            if kind is not None:
                return self.table.remove([job_id(key.tenant, key.phone, kind)])
            return self.table.remove([fu.job_id for fu in self.table.pending(key.phone)])

        return await asyncio.to_thread(remove)

    def close(self) -> None:
        self.table.close()


def erase_tenant_followups(sql_url: str, tenant: str) -> None:
    """Drop a tenant's job table and its sent log (a finished simulation). Synchronous."""
    table = JobTable(sql_url, tenant)
    try:
        table.t.drop(table.store.engine, checkfirst=True)
        if inspect(table.store.engine).has_table(SENT.name):
            with table.store.engine.begin() as conn:
                conn.execute(delete(SENT).where(SENT.c.tenant == tenant))
    finally:
        table.close()


def privacy_holder(sql_url: str, db: Database) -> Holder:
    """Follow-ups as a holder of customer data, for `wabot export` and `wabot forget`."""

    def remove_pending(key: CustomerKey, erase: bool) -> list[FollowUp]:
        table = JobTable(sql_url, key.tenant)
        try:
            found = table.pending(key.phone) if table.exists() else []
            if erase:
                table.remove([fu.job_id for fu in found])
            return found
        finally:
            table.close()

    mine = (SENT.c.tenant, SENT.c.phone)

    async def export(key: CustomerKey) -> dict[str, Any]:
        pending = await asyncio.to_thread(remove_pending, key, False)
        stmt = select(SENT.c.kind, SENT.c.at, SENT.c.status).where(
            mine[0] == key.tenant, mine[1] == key.phone).order_by(SENT.c.at)
        async with db.connect() as conn:
            sent = (await conn.execute(stmt)).all()
        if not pending and not sent:
            return {}
        return {"pending": [{"kind": fu.kind, "at": (fu.run_at or fu.due_at).isoformat(),
                             "reason": fu.reason} for fu in pending],
                "sent": [{"kind": k, "at": at.isoformat(), "status": st} for k, at, st in sent]}

    async def forget(key: CustomerKey) -> None:
        await asyncio.to_thread(remove_pending, key, True)
        async with db.begin() as conn:
            await conn.execute(delete(SENT).where(mine[0] == key.tenant, mine[1] == key.phone))

    return Holder("followups", export, forget, "scheduled and sent follow-ups")
