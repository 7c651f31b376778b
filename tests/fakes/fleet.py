"""A node of the fleet as the tests need one: it beats and takes a number's lease through
the real `Leases`, on the test's database; and the rows a test made, removed after it."""

from __future__ import annotations

from sqlalchemy import delete

from bot.fleet.lease import Lease, Leases
from bot.fleet.tables import LEASES, NODES, NUMBERS
from bot.stores.db import Database


async def hold(db_url: str, number: str, node: str, ttl: float = 30.0) -> Lease:
    """`node` is alive and holds `number` for `ttl` seconds of the database's clock."""
    db = Database(db_url)
    try:
        await db.create_all()
        leases = Leases(db, node=node, ttl=ttl)
        await leases.beat(console_url=f"http://{node}.example:8080")
        await leases.ensure([number])
        lease = await leases.acquire(number)
    finally:
        await db.close()
    assert lease is not None, f"{number} is held by another node"
    return lease


async def forget_rows(db_url: str, prefix: str) -> None:
    """The numbers, leases and nodes whose names start with `prefix` (PostgreSQL is shared
    between tests: each names its rows after its own tenant)."""
    db = Database(db_url)
    try:
        await db.create_all()
        async with db.begin() as conn:
            await conn.execute(delete(NUMBERS).where(NUMBERS.c.key.startswith(prefix)))
            await conn.execute(delete(LEASES).where(LEASES.c.number.startswith(prefix)))
            await conn.execute(delete(NODES).where(NODES.c.node.startswith(prefix)))
    finally:
        await db.close()
