"""One person, one customer: a customer known only by LID joins their phone number's.

WhatsApp may show a customer only by LID (`…@lid`) before wabot can learn their number:
whatsmeow's LID map (store/sqlstore/lidmap.go GetPNForLID) has no entry until a message
carries both (MessageSource.SenderAlt) or a usync answer fills it. Until then the customer
lives under `lid:<digits>` (`bot.phones.lid_customer`). When an event first names both the
phone and that LID, `Identity.observe` merges the LID customer into the phone customer:
row, journal, usage, run log and pending deliveries in one transaction; memory through `MemoryStore.rekey`;
anything else (follow-up jobs) through the `Rekeyer` hooks it is built with.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any, Protocol

from loguru import logger
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.models import CustomerKey, InboundMessage, Stage
from bot.phones import LID_PREFIX, is_lid_customer, lid_customer, mask
from bot.stores.customers import CUSTOMERS, JOURNAL, USAGE, CustomerStore, _insert
from bot.stores.deliveries import DELIVERIES
from bot.stores.memory_base import MemoryStore
from bot.stores.runs import RUNS

Rekeyer = Callable[[CustomerKey, CustomerKey], Awaitable[None]]  # (from LID key, to phone key)
_STAGE_RANK = {Stage.LEAD.value: 0, Stage.CHURNED.value: 1, Stage.CUSTOMER.value: 2,
               Stage.ACTIVE_USER.value: 3}


class FollowUps(Protocol):
    """What moving follow-up jobs needs of `bot.followups.FollowUpScheduler`."""

    async def pending(self, phone: str | None = None, limit: int | None = None,
                      kinds: list[str] | None = None) -> list[Any]: ...
    async def put(self, fu: Any, at: Any) -> None: ...
    async def cancel(self, key: CustomerKey, kind: str | None = None) -> int: ...


def moving_followups(followups: FollowUps) -> Rekeyer:
    """A `Rekeyer` for the follow-up jobs: the LID customer's pending ones move to the
    phone number, unless the phone customer already has one of that kind."""
    async def rekey(old: CustomerKey, new: CustomerKey) -> None:
        kinds = {fu.kind for fu in await followups.pending(new.phone)}
        for fu in await followups.pending(old.phone):
            if fu.kind not in kinds:
                await followups.put(replace(fu, phone=new.phone), fu.run_at or fu.due_at)
        await followups.cancel(old)

    return rekey


class Identity:
    """Watches inbound messages for a LID customer's phone number and merges them.

    `busy(key)` says a chat still has a turn queued or running: its LID customer is merged
    on a later message (or at the next start) instead, never under a running turn.
    `dropped(key)` is told each key whose cached state (agent, rows) is now stale.
    """

    def __init__(self, tenant: str, customers: CustomerStore, memory: MemoryStore, *,
                 busy: Callable[[CustomerKey], bool] = lambda key: False,
                 dropped: Callable[[CustomerKey], None] = lambda key: None,
                 rekeyers: Sequence[Rekeyer] = ()) -> None:
        self.tenant = tenant
        self.customers = customers
        self.memory = memory
        self.busy = busy
        self.dropped = dropped
        self.rekeyers = tuple(rekeyers)
        self._lids: set[str] = set()  # LIDs (`digits@lid`) that are customers of their own

    async def start(self) -> int:
        """Learn the LID customers; merge those whose number became known meanwhile (a
        phone customer stored the same LID). Returns how many were merged."""
        c = CUSTOMERS.c
        async with self.customers.db.connect() as conn:
            rows = (await conn.execute(select(c.phone, c.lid).where(
                c.tenant == self.tenant, c.phone.startswith(LID_PREFIX)))).all()
        self._lids |= {r.lid or r.phone.removeprefix(LID_PREFIX) + "@lid" for r in rows}
        merged = 0
        for lid in list(self._lids):
            found = await self._phone_customer(lid)
            if found is not None:
                merged += await self._merge_if_idle(lid, found)
        return merged

    async def phone_for_lid(self, lid: str) -> str | None:
        """A LID WhatsApp's own map forgot, from the customers we stored it for (the
        gateway's `lid_directory`): the phone JID user, or None."""
        customer = await self.customers.find_by_lid(self.tenant, lid)
        if customer is None or not customer.phone.startswith("+"):
            return None
        return customer.phone.removeprefix("+")

    async def observe(self, msg: InboundMessage) -> None:
        """Before a message is journaled: remember a new LID customer, or merge one whose
        phone number this message names."""
        if not msg.lid:
            return
        if is_lid_customer(msg.phone):
            self._lids.add(msg.lid)
        elif msg.phone.startswith("+") and msg.lid in self._lids:
            await self._merge_if_idle(msg.lid, msg.phone)

    async def _phone_customer(self, lid: str) -> str | None:
        c = CUSTOMERS.c
        async with self.customers.db.connect() as conn:
            return (await conn.execute(select(c.phone).where(
                c.tenant == self.tenant, c.lid == lid, c.phone.startswith("+")).limit(1)
            )).scalar_one_or_none()

    async def _merge_if_idle(self, lid: str, phone: str) -> int:
        old = CustomerKey(self.tenant, lid_customer(lid))
        new = CustomerKey(self.tenant, phone)
        if self.busy(old) or self.busy(new):  # a turn would write to a half-moved customer
            logger.bind(customer=mask(phone)).info("LID customer in a turn: merged later")
            return 0
        await self.merge(old, new, lid)
        self._lids.discard(lid)
        return 1

    async def merge(self, old: CustomerKey, new: CustomerKey, lid: str = "") -> None:
        """Move everything held under `old` (a `lid:` key) to `new` (a phone number)."""
        for key in (old, new):
            self.dropped(key)
        for rekey in self.rekeyers:  # follow-ups first: none may fire for a half-moved key
            await rekey(old, new)
        await self.memory.rekey(old, new)
        async with self.customers.db.begin() as conn:
            await _merge_rows(conn, self.customers, old, new, lid)
        for key in (old, new):
            self.customers.uncache(key.phone)
            self.dropped(key)
        logger.bind(customer=mask(new.phone)).info(
            "customer known by LID {} merged into their phone number", mask(old.phone))


async def _merge_rows(conn: AsyncConnection, store: CustomerStore, old: CustomerKey,
                      new: CustomerKey, lid: str) -> None:
    c = CUSTOMERS.c
    rows = {r.phone: dict(r) for r in (await conn.execute(select(CUSTOMERS).where(
        c.tenant == old.tenant, c.phone.in_([old.phone, new.phone])))).mappings()}
    was, now = rows.get(old.phone), rows.get(new.phone)
    if was is not None and now is None:
        await conn.execute(update(CUSTOMERS).where(c.id == was["id"]).values(
            phone=new.phone, wa_jid=new.phone.removeprefix("+") + "@s.whatsapp.net",
            lid=was["lid"] or lid))
    elif was is not None and now is not None:
        await conn.execute(update(CUSTOMERS).where(c.id == now["id"]).values(
            **_combined(was, now, lid)))
        await conn.execute(delete(CUSTOMERS).where(c.id == was["id"]))
    j, u = JOURNAL.c, USAGE.c
    await conn.execute(update(JOURNAL).where(j.tenant == old.tenant, j.phone == old.phone)
                       .values(phone=new.phone))
    for table in (RUNS, DELIVERIES):  # replies still to deliver keep their chat address
        await conn.execute(update(table).where(table.c.tenant == old.tenant,
                                               table.c.phone == old.phone)
                           .values(phone=new.phone))
    days = (await conn.execute(select(USAGE).where(
        u.tenant == old.tenant, u.phone == old.phone))).mappings().all()
    for day in days:  # one row per customer and day: counts are added, not moved
        stmt = _insert(store.db, USAGE).values(
            tenant=new.tenant, day=day["day"], phone=new.phone, msgs_out=day["msgs_out"],
            tokens_in=day["tokens_in"], tokens_out=day["tokens_out"])
        counts = ("msgs_out", "tokens_in", "tokens_out")
        await conn.execute(stmt.on_conflict_do_update(
            index_elements=["tenant", "day", "phone"],
            set_={n: USAGE.c[n] + stmt.excluded[n] for n in counts}))
    await conn.execute(delete(USAGE).where(u.tenant == old.tenant, u.phone == old.phone))


def _combined(was: dict[str, Any], now: dict[str, Any], lid: str) -> dict[str, Any]:
    """The phone customer's row with what the LID customer added: counters summed, the
    earliest first contact, the latest contacts, the furthest stage, and an opt-out or a
    pause from either kept (the customer said so, whichever way WhatsApp showed them)."""
    def latest(name: str) -> Any:
        values = [v for v in (was[name], now[name]) if v is not None]
        return max(values) if values else None

    stage = max((now["stage"], was["stage"]), key=lambda s: _STAGE_RANK.get(s, 0))
    return {
        "lid": now["lid"] or was["lid"] or lid, "name": now["name"] or was["name"],
        "stage": stage, "opted_out": bool(was["opted_out"] or now["opted_out"]),
        "paused_until": latest("paused_until"), "last_contact": latest("last_contact"),
        "last_inbound": latest("last_inbound"),
        "first_contact": min(was["first_contact"], now["first_contact"]),
        **{n: was[n] + now[n] for n in ("msgs_in", "msgs_out", "tokens_in", "tokens_out")},
    }
