"""A customer's data, all of it: export (what we hold on them) and forget (erase it everywhere).

The customer store (customer row, journal) and the memory store (history, summary, facts,
stages) are covered here. Any other part that keeps data about a customer (scheduled
follow-ups…) plugs in with a `Holder`: a name, an `export(key)` and a `forget(key)`. The CLI
builds the list (`bot.cli.memory.holders`), so `wabot export` and `wabot forget` reach it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from loguru import logger
from sqlalchemy import event, select, text

from bot.models import CustomerKey
from bot.phones import mask
from bot.stores.customers import JOURNAL, CustomerStore
from bot.stores.db import Database
from bot.stores.memory_base import MemoryStore

Exporter = Callable[[CustomerKey], Awaitable[Any]]
Eraser = Callable[[CustomerKey], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Holder:
    """Another place that holds data about customers (e.g. follow-up jobs)."""

    name: str  # the key of its section in `wabot export`
    export: Exporter
    forget: Eraser
    shown: str = ""  # what it holds, in the owner's words (`wabot forget` asks about it)


async def journal_lines(customers: CustomerStore, key: CustomerKey) -> list[dict[str, Any]]:
    """Every journaled inbound message of this customer, oldest first."""
    j = JOURNAL.c
    stmt = (select(JOURNAL).where(j.tenant == key.tenant, j.phone == key.phone)
            .order_by(j.id))
    async with customers.db.connect() as conn:
        rows = (await conn.execute(stmt)).mappings().all()
    return [{k: _plain(v) for k, v in r.items() if k not in ("id", "tenant")} for r in rows]


async def export_customer(key: CustomerKey, customers: CustomerStore, memory: MemoryStore,
                          holders: Sequence[Holder] = ()) -> dict[str, Any] | None:
    """Everything held on this customer as JSON-ready data, or None when nothing is."""
    customer = await customers.get(key)
    mem = await memory.export(key)
    journal = await journal_lines(customers, key)
    out: dict[str, Any] = {
        "tenant": key.tenant,
        "phone": key.phone,
        "customer": (None if customer is None else
                     {k: _plain(v) for k, v in customer.model_dump().items() if k != "id"}),
        "memory": mem,
        "journal": journal,
    }
    for h in holders:
        out[h.name] = await h.export(key)
    held = (customer is not None or journal or mem["messages"] or mem["facts"]
            or mem["stages"] or mem["summary"] or any(out[h.name] for h in holders))
    return out if held else None


async def forget_customer(key: CustomerKey, customers: CustomerStore, memory: MemoryStore,
                          extra: Sequence[Eraser] = ()) -> None:
    """Erase the customer everywhere.

    Order matters: the other holders first (a follow-up must not fire for a half-erased
    customer and write their history again), then memory, then the customer row and journal.
    """
    for erase in extra:
        await erase(key)
    await memory.forget(key)
    await customers.forget(key)
    # The CLI says it on stdout; at INFO it would land among the command's own lines.
    logger.bind(customer=mask(key.phone)).debug("customer forgotten in every store")


def erase_for_real(db: Database) -> None:
    """Make deletes on this (SQLite) database overwrite the deleted bytes.

    Without it SQLite only unlinks deleted rows: the text stays in free pages of the file
    (and in the WAL) until reused. Call before the first query; PostgreSQL is unaffected.
    """
    if not db.is_sqlite:
        return

    def secure(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA secure_delete=ON")
        cur.close()

    event.listen(db.engine.sync_engine, "connect", secure)


async def checkpoint(db: Database) -> bool:
    """Fold the SQLite WAL into the database file and truncate it, so erased rows do not
    survive in old WAL frames. False when a reader (the daemon) kept it from completing."""
    if not db.is_sqlite:
        return True
    async with db.connect() as conn:
        busy = (await conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))).first()
    return busy is None or not busy[0]


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value
