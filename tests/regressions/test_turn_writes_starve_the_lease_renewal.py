"""On PostgreSQL a turn's write held the number's lease row FOR SHARE until its commit, and
the lease renewal (an UPDATE of that row) waited for every such lock: under load overlapping
turns kept the row share-locked, the renewal came too late, the node's lease ran out on its
own clock and its turns were refused (then answered again once the number was taken back).
A renewal now passes the turns' lock; a change of owner still waits for them, so a stale
owner's turn can never commit after another node took the number."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import bot.wiring  # noqa: F401  (every table, the fleet's included)
from bot.fleet.lease import Leases
from bot.models import CustomerKey, MemoryMessage, Role
from bot.stores.db import Database
from bot.stores.turn_writer import TurnRecord, pg_statement


async def test_a_renewal_passes_a_turns_write_and_a_takeover_waits_for_it(
        postgres_db: Database) -> None:
    number = f"n-{uuid.uuid4().hex[:8]}"
    owner = Leases(postgres_db, "node-1", 0.6)
    await owner.ensure([number])
    lease = await owner.acquire(number)
    assert lease is not None
    stamp = {"n": number, "me": "node-1", "e": lease.epoch}
    at = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)
    rec = TurnRecord(CustomerKey(number, "+5215512345678"), at, inbound=1, create=True,
                     messages=[MemoryMessage(Role.CUSTOMER, "hola", at, msg_id="m1")])
    # The turn's own statement, on the connection it uses, run but not yet committed (here
    # in a transaction left open; on its own it commits as it ends):
    sql, args = pg_statement(rec, rec.messages, stamp)
    async with postgres_db.driver() as turn, turn.transaction():
        assert (await turn.fetchrow(sql, *args))["held"]
        assert await asyncio.wait_for(owner.renew(lease), 3)  # not held back by the turn
        await asyncio.sleep(0.7)  # the lease lapses in the database; another node takes it
        takeover = asyncio.create_task(Leases(postgres_db, "node-2", 30).acquire(number))
        await asyncio.sleep(0.5)
        assert not takeover.done()  # it waits for the turn's write to commit
    taken = await asyncio.wait_for(takeover, 5)
    assert taken is not None and taken.epoch == lease.epoch + 1
