"""Customers changed on one node for a number another node serves: a pause or a resume
from any node's console (`bot.web.directory`) is a database write, and the node serving
the number must not answer from a cached copy that says otherwise.

The change is written first, then a row here names the customer and the other nodes are
woken (PostgreSQL NOTIFY, on the fleet's channel). Every node reads the new rows when woken
and at every renewal period (a notification can be lost), and drops what the number it
serves cached of that customer: its next message reloads the row. Within one process the
stores' own listeners already did this; on SQLite (one machine, one process) there is
nothing to tell and this is not built. The rows are kept a day.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from loguru import logger
from sqlalchemy import delete, func, select

from bot.clock import Clock
from bot.fleet.notify import Wakeup
from bot.fleet.tables import CHANGES
from bot.models import CustomerKey
from bot.stores.db import Database, finished

KEPT = timedelta(days=1)
Changed = Callable[[str], None]  # a number's: this customer (phone) changed elsewhere

TOPIC = "customer changes"  # of the notifications (a space: no number's key has one)


class CustomerChanges:
    def __init__(self, db: Database, clock: Clock, wakeup: Wakeup | None = None) -> None:
        self.db = db
        self.clock = clock
        self.wakeup = wakeup
        self._listener = wakeup.listener(TOPIC) if wakeup is not None else None
        self._numbers: dict[str, Changed] = {}
        self._seen = 0

    def follow(self, number: str, changed: Changed) -> None:
        """Number `number` is run here: tell `changed` of its customers changed elsewhere."""
        self._numbers[number] = changed

    async def start(self) -> None:
        """What is there already was written before this process cached anything."""
        async with self.db.connect() as conn:
            self._seen = int((await conn.execute(
                select(func.coalesce(func.max(CHANGES.c.seq), 0)))).scalar_one())

    async def mark(self, key: CustomerKey) -> None:
        """After the change is committed: the node serving the number drops its copy."""
        async with self.db.begin() as conn:
            await conn.execute(CHANGES.insert().values(
                tenant=key.tenant, phone=key.phone, at=self.clock.now()))
        if self.wakeup is not None:
            await self.wakeup.notify(TOPIC)

    async def poll(self) -> int:
        """Apply the rows written since the last look; returns how many."""
        async with self.db.connect() as conn:
            rows = (await conn.execute(
                select(CHANGES.c.seq, CHANGES.c.tenant, CHANGES.c.phone)
                .where(CHANGES.c.seq > self._seen).order_by(CHANGES.c.seq))).all()
        for seq, tenant, phone in rows:
            self._seen = max(self._seen, int(seq))
            changed = self._numbers.get(tenant)
            if changed is not None:
                changed(phone)
        return len(rows)

    async def run(self, every: float) -> None:
        """Poll when woken and every `every` seconds, until cancelled."""
        if self.wakeup is not None:
            await self.wakeup.start()
        while True:
            try:
                if await finished(self.poll()):
                    await finished(self._prune())
            except Exception as exc:  # the database is down: the leases say what to do
                logger.warning("fleet: customer changes not read: {}", exc)
            await self._wait(every)

    async def _wait(self, every: float) -> None:
        if self._listener is not None:
            await self._listener.wait(every)
        else:
            await self.clock.sleep(every)

    async def _prune(self) -> None:
        async with self.db.begin() as conn:
            await conn.execute(delete(CHANGES).where(CHANGES.c.at < self.clock.now() - KEPT))
