"""One owner per number: a second node waits, the epoch grows at every acquisition, a
stale owner's turn write is refused, a graceful release hands over at once (SQLite and
PostgreSQL, through the real stores)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import text

from bot.clock import SystemClock
from bot.fleet.claim import Claim
from bot.fleet.lease import Leases, StaleLease
from bot.fleet.numbers import NumberError, NumberStore
from bot.settings import Settings
from bot.stores.db import Database
from bot.stores.turn_writer import FENCE, StaleOwner, _fence


async def _db(settings: Settings) -> Database:
    import bot.wiring  # noqa: F401  (every table, the fleet's included)

    db = Database(settings.sql_url)
    await db.create_all()
    return db


async def test_a_second_node_waits_and_takes_over_when_the_first_gives_back(
        settings: Settings) -> None:
    db = await _db(settings)
    number = f"n-{uuid.uuid4().hex[:8]}"
    try:
        first = Claim(Leases(db, "node-1", 30), number, 0.05)
        second = Claim(Leases(db, "node-2", 30), number, 0.05)
        lease = await first.wait()
        waiting = asyncio.create_task(second.wait())
        await asyncio.sleep(0.3)
        assert not waiting.done()  # the number is served: the second node waits
        first.check()
        with pytest.raises(StaleLease):
            second.check()
        await first.release()
        taken = await asyncio.wait_for(waiting, 5)
        assert taken.epoch == lease.epoch + 1  # a fencing token: it grows every time
        with pytest.raises(StaleLease):
            first.check()  # the old owner may not send any more
        second.check()
        await second.release()
    finally:
        await db.close()


async def test_a_stale_owners_turn_write_is_refused_by_the_database(
        settings: Settings) -> None:
    db = await _db(settings)
    number = f"n-{uuid.uuid4().hex[:8]}"
    try:
        old = Leases(db, "node-1", 0.5)
        await old.ensure([number])
        stale = await old.acquire(number)
        assert stale is not None
        await asyncio.sleep(0.6)  # its lease lapses (the node froze) and another takes it
        new = await Leases(db, "node-2", 30).acquire(number)
        assert new is not None and new.epoch == stale.epoch + 1
        for lease, node, refused in ((stale, "node-1", True), (new, "node-2", False)):
            stamp = {"n": number, "me": node, "e": lease.epoch}
            async with db.connect() as conn:
                row = (await conn.execute(text(FENCE), stamp)).first()
            if refused:
                with pytest.raises(StaleOwner):
                    _fence(row, stamp)
            else:
                _fence(row, stamp)
    finally:
        await db.close()


async def test_numbers_never_store_a_secret(settings: Settings) -> None:
    db = await _db(settings)
    try:
        store = NumberStore(db, SystemClock())
        key = f"n-{uuid.uuid4().hex[:8]}"
        with pytest.raises(NumberError, match="access_token_env"):
            await store.add(key, "cloud", {"cloud": {"access_token": "EAAB-secret"}})
        row = await store.add(key, "cloud", {"cloud": {"access_token_env": "SHOP2_TOKEN"}})
        assert row.settings == {"cloud": {"access_token_env": "SHOP2_TOKEN"}}
        assert await store.remove(key)
    finally:
        await db.close()
