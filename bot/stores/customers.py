"""Customers (identity, lifecycle stage, opt-out, pause, counters) and the inbound journal.

Every query is keyed by tenant. Writes are single statements (upserts, `col = col + n`)
so concurrent turns never lose an update.

A first contact reads nothing: the journal's write says the sender had no row (`is_new`),
and the row is created by the turn's one write (`bot.stores.turn_writer`), not before it.
A write through this store made after the journal's check voids what it said, so a row
made meanwhile is never taken for missing. Until the turn's write, a change to the
customer made during the turn (a tool setting the stage, an opt-out) creates the row first
(`expect`).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Executable,
    Select,
    Table,
    and_,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from bot.clock import Clock, SystemClock
from bot.models import CustomerKey, InboundMessage, MessageKind, Stage
from bot.stores.customer_rows import (
    CUSTOMERS,
    JOURNAL,
    USAGE,
    Customer,
    UsageDay,
    customer_of,
)
from bot.stores.db import Database
from bot.stores.journal_writer import JournalWriter
from bot.stores.sqlite_writer import parse_sqlite_time
from bot.text import scrub

__all__ = ["CUSTOMERS", "JOURNAL", "USAGE", "Contact", "Customer", "CustomerListener",
           "CustomerStore", "Resident", "UsageDay", "utc_day"]


@dataclass(frozen=True, slots=True)
class Contact:
    """What the transport told us about who wrote."""

    name: str = ""
    wa_jid: str = ""
    lid: str = ""

    def __post_init__(self) -> None:
        # A push name is the customer's to choose, NUL included; PostgreSQL refuses NUL in
        # text and the whole row (the message's turn with it) would fail.
        object.__setattr__(self, "name", scrub(self.name))


def _insert(db: Database, table: Table) -> Any:
    return (sqlite.insert if db.is_sqlite else postgresql.insert)(table)


def utc_day(at: datetime) -> str:
    return at.astimezone(UTC).date().isoformat()


# Told after a write through this store: the new column values, or None when the customer
# was erased. The daemon's cached agents follow changes this way (`bot.agents.state`).
CustomerListener = Callable[[CustomerKey, dict[str, Any] | None], None]
# A first contact's follow-up jobs (customer, turn time) → (job rows, once committed).
FirstJobs = Callable[[CustomerKey, datetime], tuple[list[Any], Callable[[], None]]]
# The row a cached agent holds, kept current by the listeners and change stamps (None: not
# cached): read instead of the database.
Resident = Callable[[CustomerKey], Customer | None]


class _MemoryWrites:
    __slots__ = ("_wrote",)

    def __init__(self, wrote: Callable[[CustomerKey], None]) -> None:
        self._wrote = wrote

    def appended(self, key: CustomerKey, stored: list[Any]) -> None:
        self._wrote(key)

    def summarized(self, key: CustomerKey, summary: str, upto_seq: int) -> None:
        self._wrote(key)

    def facts_merged(self, key: CustomerKey, facts: list[Any]) -> None:
        self._wrote(key)

    def forgotten(self, key: CustomerKey) -> None:
        self._wrote(key)


_TIMES = ("paused_until", "first_contact", "last_contact", "last_inbound")


def customer_from_sqlite(row: dict[str, Any]) -> Customer:
    """A row the SQLite writer thread read back (times as SQLAlchemy stores them: text)."""
    for name in _TIMES:
        if isinstance(row.get(name), str):
            row[name] = parse_sqlite_time(row[name])
    row["opted_out"] = bool(row["opted_out"])
    return customer_of(row)


class CustomerStore:
    RECENT = 4096  # customers whose last read is kept for `get(max_age=…)`
    USAGE_CACHED = 50_000  # customer-days whose usage is kept (the daily cap reads it)

    def __init__(self, db: Database, clock: Clock | None = None, *,
                 resident: Resident | None = None) -> None:
        self.db = db
        self.clock: Clock = clock or SystemClock()  # which day usage counts towards
        self.listeners: list[CustomerListener] = []
        self.resident = resident
        self._journal = JournalWriter(db, JOURNAL, CUSTOMERS)
        # First contacts: the customers whose sender had no row when the journal wrote
        # their message, each with the write count then (`is_new`); the count goes up with
        # every write through this store, and each customer's last one is kept.
        self._writes = 0
        self._wrote: OrderedDict[CustomerKey, int] = OrderedDict()
        self._wrote_floor = 0  # the count of the last one forgotten (or of "anyone")
        self._new: OrderedDict[CustomerKey, int] = OrderedDict()
        # Customers whose row the running turn's write will create: (contact, turn time).
        self._unborn: dict[CustomerKey, tuple[Contact, datetime]] = {}
        # Per number, told when an agent is made for a first contact (`first_contact`): the
        # follow-ups know such a customer has no job pending.
        self.on_first_contact: dict[str, Callable[[CustomerKey], None]] = {}
        # Per number, the follow-up jobs a first contact's turn writes with its row (rows of
        # `bot.stores.turn_writer.JobRow`), and what to call once they are committed.
        self.first_jobs: dict[str, FirstJobs] = {}
        # Only this process writes its tenant's usage: once read, a day's counts are kept
        # and added to as they are written.
        self._usage: OrderedDict[tuple[CustomerKey, str], UsageDay] = OrderedDict()
        # A turn asks for the same customer several times within milliseconds (filters,
        # the hold check, follow-up rules); callers that can live with a second-old row say
        # so with `max_age`, and writes through this store refresh or drop the entry.
        self._recent: OrderedDict[CustomerKey, tuple[float, Customer]] = OrderedDict()
        # (customer, "stage" | "opted_out", new value): webhooks and metrics listen here.
        self.on_change: list[Callable[[CustomerKey, str, Any], None]] = []

    def _remember(self, key: CustomerKey, customer: Customer) -> Customer:
        self._recent[key] = (time.monotonic(), customer)
        self._recent.move_to_end(key)
        if len(self._recent) > self.RECENT:
            self._recent.popitem(last=False)
        return customer.model_copy()

    def uncache(self, phone: str) -> None:
        """Another process changed this customer ("*": any): drop the recent copies."""
        for key in [k for k in self._recent if phone in (k.phone, "*")]:
            del self._recent[key]
        self._writes += 1
        self._wrote_floor = self._writes  # and what the journal said of anyone's row
        self._new.clear()

    # --- first contacts ------------------------------------------------------------------

    def _wrote_to(self, key: CustomerKey) -> None:
        self._writes += 1
        self._wrote[key] = self._writes
        self._wrote.move_to_end(key)
        if len(self._wrote) > self.RECENT:
            _, self._wrote_floor = self._wrote.popitem(last=False)
        self._new.pop(key, None)

    @property
    def memory_writes(self) -> _MemoryWrites:
        """A listener of the memory store (`ObservedMemory`): a customer's memory written
        (an owner's line in a chat with no customer yet) voids what the journal said."""
        return _MemoryWrites(self._wrote_to)

    def is_new(self, key: CustomerKey) -> bool:
        """Whether the journal found no row of this sender, and nothing was written for
        them through this store since: they have no row, memory or usage to read."""
        asked = self._new.get(key)
        if asked is None:
            return False
        if max(self._wrote_floor, self._wrote.get(key, 0)) > asked:
            del self._new[key]  # written since: what the journal said is out of date
            return False
        return True

    def first_contact(self, key: CustomerKey) -> bool:
        """`is_new`, asked when the customer's agent is made (tells `on_first_contact`)."""
        if not self.is_new(key):
            return False
        listener = self.on_first_contact.get(key.tenant)
        if listener is not None:
            listener(key)
        return True

    def expect(self, key: CustomerKey, contact: Contact, at: datetime) -> None:
        """The running turn's write creates this customer's row: a change made to them
        before it (a tool, an opt-out) creates it first."""
        self._unborn[key] = (contact, at)

    def expected(self, key: CustomerKey) -> None:
        """The turn ended (its write created the row, or it failed)."""
        self._unborn.pop(key, None)

    async def _born(self, key: CustomerKey) -> None:
        waiting = self._unborn.pop(key, None)
        if waiting is not None:
            await self.touch(key, *waiting)

    def created(self, key: CustomerKey, customer: Customer, at: datetime, msgs_out: int = 0,
                tokens_in: int = 0, tokens_out: int = 0) -> None:
        """A turn's write created (or found and updated) this row: `customer` is it."""
        self._unborn.pop(key, None)
        self.written(key, at, msgs_out, tokens_in, tokens_out)
        self._tell(key, customer.model_dump())
        self._remember(key, customer)

    def _mine(self, key: CustomerKey) -> ColumnElement[bool]:
        return and_(CUSTOMERS.c.tenant == key.tenant, CUSTOMERS.c.phone == key.phone)

    async def _select(self, stmt: Select[Any]) -> list[Customer]:
        async with self.db.connect() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        return [customer_of(r) for r in rows]

    async def _write(self, stmt: Executable) -> int:
        async with self.db.begin() as conn:
            result = await conn.execute(stmt)
        return int(getattr(result, "rowcount", 0) or 0)

    async def get(self, key: CustomerKey, *, max_age: float = 0.0) -> Customer | None:
        """The customer's row; with `max_age`, a copy read at most that many seconds ago
        (in this process) may be returned instead of a database round trip."""
        if self.resident is not None:
            # A cached agent's row is current (asking also applies change stamps, which
            # clear the copies below).
            row = self.resident(key)
            if row is not None:
                return row.model_copy()
        if self.is_new(key):
            return None
        hit = self._recent.get(key) if max_age > 0 else None
        if hit is not None and time.monotonic() - hit[0] <= max_age:
            return hit[1].model_copy()
        found = await self._select(select(CUSTOMERS).where(self._mine(key)))
        if not found:
            self._recent.pop(key, None)
            return None
        return self._remember(key, found[0])

    async def touch(self, key: CustomerKey, contact: Contact, at: datetime,
                    inbound: int = 0) -> Customer:
        """Create the customer on first contact (as a LEAD) or refresh what we know.

        One upsert statement: two first messages racing create one customer.
        """
        values: dict[str, Any] = {
            "tenant": key.tenant, "phone": key.phone, "wa_jid": contact.wa_jid,
            "lid": contact.lid, "name": contact.name, "stage": Stage.LEAD.value,
            "opted_out": False, "first_contact": at, "last_contact": at,
            "last_inbound": at if inbound else None, "msgs_in": inbound,
            "msgs_out": 0, "tokens_in": 0, "tokens_out": 0,
        }
        stmt = _insert(self.db, CUSTOMERS).values(**values)
        changes: dict[str, Any] = {"last_contact": at,
                                   "msgs_in": CUSTOMERS.c.msgs_in + inbound}
        if inbound:
            changes["last_inbound"] = at
        for col in ("name", "wa_jid", "lid"):
            if values[col]:
                changes[col] = stmt.excluded[col]
        stmt = stmt.on_conflict_do_update(index_elements=["tenant", "phone"], set_=changes)
        self._unborn.pop(key, None)
        self._wrote_to(key)  # before and after: no first contact is read while it runs
        async with self.db.begin() as conn:
            row = (await conn.execute(stmt.returning(*CUSTOMERS.c))).mappings().one()
        self._wrote_to(key)
        self._tell(key, dict(row))
        return self._remember(key, customer_of(row))

    def _tell(self, key: CustomerKey, values: dict[str, Any] | None) -> None:
        for listener in self.listeners:
            listener(key, values)

    async def find_by_lid(self, tenant: str, lid: str) -> Customer | None:
        # Until they are merged, the `lid:` customer and the phone customer share the LID.
        found = await self._select(select(CUSTOMERS).where(
            CUSTOMERS.c.tenant == tenant, CUSTOMERS.c.lid == lid)
            .order_by(CUSTOMERS.c.phone.startswith("lid:")).limit(1))
        return found[0] if found else None

    async def _update(self, key: CustomerKey, **values: Any) -> bool:
        await self._born(key)
        self._recent.pop(key, None)
        self._wrote_to(key)
        changed = bool(await self._write(update(CUSTOMERS).where(self._mine(key))
                                         .values(**values)))
        self._wrote_to(key)
        if changed:
            self._tell(key, values)
        return changed

    async def add_usage(self, key: CustomerKey, *, msgs_out: int = 0, tokens_in: int = 0,
                        tokens_out: int = 0, at: datetime | None = None) -> None:
        c = CUSTOMERS.c
        values: dict[str, Any] = {
            "msgs_out": c.msgs_out + msgs_out,
            "tokens_in": c.tokens_in + tokens_in,
            "tokens_out": c.tokens_out + tokens_out,
        }
        if at is not None:
            values["last_contact"] = at
        await self._born(key)
        self._recent.pop(key, None)
        self._wrote_to(key)
        async with self.db.begin() as conn:  # one transaction: the two never disagree
            row = (await conn.execute(
                update(CUSTOMERS).where(self._mine(key)).values(**values)
                .returning(c.msgs_out, c.tokens_in, c.tokens_out, c.last_contact))
            ).mappings().first()
            if msgs_out or tokens_in or tokens_out:
                await conn.execute(self._add_daily(
                    key, utc_day(at or self.clock.now()), msgs_out=msgs_out,
                    tokens_in=tokens_in, tokens_out=tokens_out))
        if row is not None:
            self._tell(key, dict(row))
        self.written(key, at or self.clock.now(), msgs_out, tokens_in, tokens_out)

    def written(self, key: CustomerKey, at: datetime, msgs_out: int = 0, tokens_in: int = 0,
                tokens_out: int = 0) -> None:
        """A write elsewhere (a turn's one transaction) changed this customer's row and
        usage: drop the recent copy, keep a cached day's usage in step."""
        self._recent.pop(key, None)
        self._wrote_to(key)
        used = self._usage.get((key, utc_day(at)))
        if used is not None:
            used.msgs_out += msgs_out
            used.tokens_in += tokens_in
            used.tokens_out += tokens_out

    def _add_daily(self, key: CustomerKey, day: str, **counts: int) -> Executable:
        stmt = _insert(self.db, USAGE).values(tenant=key.tenant, day=day, phone=key.phone,
                                              **counts)
        upsert: Executable = stmt.on_conflict_do_update(
            index_elements=["tenant", "day", "phone"],
            set_={name: USAGE.c[name] + stmt.excluded[name] for name in counts})
        return upsert

    async def usage_on(self, key: CustomerKey, day: str) -> UsageDay:
        """The customer's usage on `day` (YYYY-MM-DD, UTC); zeros when nothing was used."""
        cached = self._usage.get((key, day))
        if cached is not None:
            self._usage.move_to_end((key, day))
            return cached.model_copy()
        if self.is_new(key):  # nothing used yet; kept, and added to as the turn writes
            used = UsageDay(tenant=key.tenant, day=day, phone=key.phone)
        else:
            used = await self._read_usage(key, day)
        self._usage[(key, day)] = used
        if len(self._usage) > self.USAGE_CACHED:
            self._usage.popitem(last=False)
        return used.model_copy()

    async def _read_usage(self, key: CustomerKey, day: str) -> UsageDay:
        stmt = select(USAGE).where(USAGE.c.tenant == key.tenant, USAGE.c.day == day,
                                   USAGE.c.phone == key.phone)
        async with self.db.connect() as conn:
            row = (await conn.execute(stmt)).mappings().first()
        if row is None:
            return UsageDay(tenant=key.tenant, day=day, phone=key.phone)
        return UsageDay.model_validate(dict(row))

    async def set_stage(self, key: CustomerKey, stage: Stage) -> bool:
        changed = await self._update(key, stage=stage.value)
        if changed:
            self._changed(key, "stage", stage.value)
        return changed

    async def set_opted_out(self, key: CustomerKey, opted_out: bool) -> bool:
        changed = await self._update(key, opted_out=opted_out)
        if changed:
            self._changed(key, "opted_out", opted_out)
        return changed

    def _changed(self, key: CustomerKey, field: str, value: Any) -> None:
        for listener in self.on_change:
            listener(key, field, value)

    async def set_paused_until(self, key: CustomerKey, until: datetime | None) -> bool:
        return await self._update(key, paused_until=until)

    async def all(self, tenant: str, stage: Stage | None = None,
                  limit: int = 1000) -> list[Customer]:
        stmt = select(CUSTOMERS).where(CUSTOMERS.c.tenant == tenant)
        if stage is not None:
            stmt = stmt.where(CUSTOMERS.c.stage == stage.value)
        return await self._select(stmt.order_by(CUSTOMERS.c.last_contact.desc()).limit(limit))

    async def forget(self, key: CustomerKey) -> None:
        """Erase the customer and every journal line of theirs."""
        self._recent.pop(key, None)
        self._unborn.pop(key, None)
        for cached in [k for k in self._usage if k[0] == key]:
            del self._usage[cached]
        self._wrote_to(key)
        async with self.db.begin() as conn:
            await conn.execute(delete(CUSTOMERS).where(self._mine(key)))
            await conn.execute(delete(JOURNAL).where(
                JOURNAL.c.tenant == key.tenant, JOURNAL.c.phone == key.phone))
            await conn.execute(delete(USAGE).where(
                USAGE.c.tenant == key.tenant, USAGE.c.phone == key.phone))
        self._wrote_to(key)
        self._tell(key, None)

    # --- the inbound journal -------------------------------------------------------------

    async def journal_add(self, msg: InboundMessage) -> bool:
        """Record an inbound message; False when this message id was seen before.

        Returns once the row is committed; concurrent calls share one transaction. A sender
        with no row is remembered as new (`is_new`) until something is written for them."""
        asked = self._writes  # before the journal's check: a write after it voids what it says
        journaled = await self._journal.add(msg)
        if journaled.fresh and not journaled.known and not msg.from_owner:
            key = msg.key
            if max(self._wrote_floor, self._wrote.get(key, 0)) <= asked:
                self._new[key] = asked
                self._new.move_to_end(key)
                if len(self._new) > self.RECENT:
                    self._new.popitem(last=False)
        return journaled.fresh

    async def close(self) -> None:
        await self._journal.close()

    async def journal_mark(self, tenant: str, msg_ids: Iterable[str], status: str) -> None:
        ids = list(msg_ids)
        if ids:
            await self._write(update(JOURNAL).where(
                JOURNAL.c.tenant == tenant, JOURNAL.c.msg_id.in_(ids)).values(status=status))

    async def journal_pending(self, tenant: str, statuses: Iterable[str] = ("received", "held"),
                              since: datetime | None = None) -> list[InboundMessage]:
        """Journaled messages never answered (the daemon stopped mid-turn), oldest first;
        or those in other `statuses` (`capped`, `failed`: revisited by `bot.pipeline.later.capped_and_failed`)."""
        stmt = (select(JOURNAL)
                .where(JOURNAL.c.tenant == tenant, JOURNAL.c.status.in_(tuple(statuses)))
                .order_by(JOURNAL.c.id))
        if since is not None:
            stmt = stmt.where(JOURNAL.c.received_at >= since)
        async with self.db.connect() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        return [
            InboundMessage(tenant=r["tenant"], phone=r["phone"], msg_id=r["msg_id"],
                           timestamp=r["received_at"], text=r["text"],
                           kind=MessageKind(r["kind"]), chat=r["chat"],
                           push_name=r["push_name"], from_owner=r["from_owner"], lid=r["lid"])
            for r in rows
        ]

    async def journal_latest(self, key: CustomerKey) -> datetime | None:
        """When the customer's newest journaled message arrived (the Cloud API's window)."""
        stmt = select(func.max(JOURNAL.c.received_at)).where(
            JOURNAL.c.tenant == key.tenant, JOURNAL.c.phone == key.phone)
        async with self.db.connect() as conn:
            latest: datetime | None = (await conn.execute(stmt)).scalar_one()
        return latest

    async def journal_count(self, tenant: str, since: datetime, status: str | None = None) -> int:
        stmt = select(func.count()).select_from(JOURNAL).where(
            JOURNAL.c.tenant == tenant, JOURNAL.c.received_at >= since)
        if status:
            stmt = stmt.where(JOURNAL.c.status == status)
        async with self.db.connect() as conn:
            return int((await conn.execute(stmt)).scalar_one())
