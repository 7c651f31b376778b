"""The owner node's catch-up (routing what other nodes journaled for its number) against
its own feeds: a message is routed once, however their journal reads and writes overlap."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.fakes.databases import db_url_of_its_own
from tests.fakes.pipeline import pipeline

ANA = "+5215512345678"


# A node holding a lease registers its number; a node serves every number registered in its
# database: a PostgreSQL database of its own per test.
db_url = db_url_of_its_own("catch_up")


async def test_a_catch_up_that_read_the_journal_before_a_feed_wrote_it_does_not_route_it_twice(
        settings: Any) -> None:
    """A catch-up read the journal while a feed was writing the message's line: the read
    missed it, the feed then wrote and queued it. That catch-up must not forget the
    message as answered, or the next catch-up finds it waiting and starts a second turn
    (a customer answered twice, seen when three nodes shared six numbers)."""
    async with pipeline(settings) as p:
        inbox = p.app.unit.inbox
        customers = inbox.customers
        write, read_done, release_read = asyncio.Event(), asyncio.Event(), asyncio.Event()
        journal_add, journal_pending = customers.journal_add, customers.journal_pending

        async def slow_add(msg: Any) -> bool:
            await write.wait()
            return await journal_add(msg)

        async def held_read(tenant: str, **kw: Any) -> Any:
            rows = await journal_pending(tenant, **kw)
            read_done.set()
            await release_read.wait()
            return rows

        customers.journal_add = slow_add  # type: ignore[method-assign]
        customers.journal_pending = held_read  # type: ignore[method-assign]
        feed = asyncio.create_task(p.say(ANA, "¿tienen la camisa azul?"))
        await asyncio.sleep(0)
        first = asyncio.create_task(inbox.catch_up())
        await read_done.wait()  # the read saw no line for the message
        write.set()
        await feed  # written and queued (the turn waits for the debounce)
        release_read.set()
        assert await first == 0
        customers.journal_pending = journal_pending  # type: ignore[method-assign]
        assert await inbox.catch_up() == 0  # still waiting in the journal: routed already
        await p.settle()
        assert len(p.texts_to(ANA)) == 1


async def test_a_turn_dropped_while_the_lease_was_late_is_answered_once_it_is_renewed(
        settings: Any) -> None:
    """Under a burst the lease's renewal came after its time on this node's clock: turns
    were refused ("not renewed in time"), the renewal then went through under the same
    epoch and the node kept the number, but nothing routed the refused messages again
    (230 of 1,000 were never answered in one benchmark run)."""
    async with pipeline(settings, fleet=True) as p:  # the number's lease, as `wabot run`
        claim = p.app.claim
        assert claim is not None and claim.lease is not None
        lease = claim.lease
        good_until = lease.valid_until
        lease.valid_until = time.monotonic() - 1  # the renewal is late
        await p.say(ANA, "¿tienen pan de muerto?")
        await p.settle()
        assert p.texts_to(ANA) == []  # refused: this node may not send now
        lease.valid_until = good_until  # renewed in time after all, same epoch
        assert await p.app.unit.inbox.catch_up() == 1
        await p.settle()
        assert len(p.texts_to(ANA)) == 1
        assert await p.app.unit.inbox.catch_up() == 0  # answered: not routed again
