"""A LID customer's memory moves to their phone number (`MemoryStore.rekey`), on every
backend: nothing lost, nothing twice, nothing hidden behind a summary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.followups import FollowUp
from bot.models import CustomerKey, InboundMessage, MemoryMessage, Role, Stage
from bot.stores.customers import Contact, CustomerStore
from bot.stores.db import Database
from bot.stores.identity import Identity, moving_followups
from bot.stores.memory_base import Fact, MemoryStore, StageChange
from bot.stores.memory_sql import SqlMemoryStore

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def line(text: str, seconds: int, msg_id: str = "", role: Role = Role.CUSTOMER) -> MemoryMessage:
    return MemoryMessage(role=role, text=text, at=T0 + timedelta(seconds=seconds), msg_id=msg_id)


async def test_lid_memory_becomes_the_phone_customers(memory: MemoryStore, tenant: str) -> None:
    old, new = CustomerKey(tenant, "lid:204060801234567"), CustomerKey(tenant, "+5215512345678")
    stored = await memory.append(old, [line("hola", 0, "L1"), line("¡Hola!", 1, role=Role.AGENT),
                                       line("¿la azul?", 2, "L2")])
    await memory.save_summary(old, "asked hello", stored[1].seq)
    await memory.merge_facts(old, [Fact("size", "M"), Fact("color", "azul")])
    await memory.add_stage_change(old, StageChange(None, Stage.LEAD, "first contact", T0))
    await memory.merge_facts(new, [Fact("size", "L")])  # what the phone customer said wins

    await memory.rekey(old, new)

    history = await memory.recent(new, 10)
    assert [m.text for m in history] == ["hola", "¡Hola!", "¿la azul?"]
    prof = await memory.profile(new)
    assert {k: f.value for k, f in prof.facts.items()} == {"size": "L", "color": "azul"}
    assert [c.reason for c in prof.stages] == ["first contact"]
    assert prof.summary == "asked hello"
    # the window starts right after what the summary covers: "¿la azul?" stays visible
    assert [m.text for m in await memory.recent(new, 10, prof.summarized_upto)] == ["¿la azul?"]
    assert await memory.count(old) == 0
    assert (await memory.profile(old)).facts == {}


async def test_rekey_keeps_a_line_both_customers_hold_once(memory: MemoryStore,
                                                           tenant: str) -> None:
    old, new = CustomerKey(tenant, "lid:204060801234567"), CustomerKey(tenant, "+5215512345678")
    await memory.append(old, [line("hola", 0, "L1")])
    await memory.append(new, [line("hola", 0, "L1"), line("¿sigue?", 5, "P1")])

    await memory.rekey(old, new)

    assert [m.msg_id for m in await memory.recent(new, 10)] == ["L1", "P1"]


async def test_a_lid_both_customers_hold_before_the_merge_finds_the_phone_customer(
    db_url: str, tenant: str,
) -> None:
    db = Database(db_url)
    await db.create_all()
    store = CustomerStore(db)
    lid = "204060801234567@lid"
    try:
        await store.touch(CustomerKey(tenant, "lid:204060801234567"), Contact(lid=lid), T0)
        await store.touch(CustomerKey(tenant, "+5215512345678"), Contact(lid=lid), T0)

        found = await store.find_by_lid(tenant, lid)  # WhatsApp's map forgot the LID

        assert found is not None and found.phone == "+5215512345678"
    finally:
        await db.close()


class FollowUpTable:
    """The follow-up scheduler's job store as `moving_followups` uses it: a dict by id."""

    def __init__(self) -> None:
        self.jobs: dict[tuple[str, str], FollowUp] = {}

    async def pending(self, phone: str | None = None, limit: int | None = None,
                      kinds: list[str] | None = None) -> list[FollowUp]:
        return [fu for (p, _), fu in self.jobs.items() if p == phone]

    async def put(self, fu: FollowUp, at: datetime) -> None:
        self.jobs[(fu.phone, fu.kind)] = fu

    async def cancel(self, key: CustomerKey, kind: str | None = None) -> int:
        gone = [k for k in self.jobs if k[0] == key.phone and kind in (None, k[1])]
        for k in gone:
            del self.jobs[k]
        return len(gone)


async def test_a_lid_customers_follow_ups_move_to_their_number_unless_it_has_its_own(
    tenant: str,
) -> None:
    old, new = CustomerKey(tenant, "lid:204060801234567"), CustomerKey(tenant, "+5215512345678")
    table = FollowUpTable()
    for key, kind, reason in ((old, "agent", "send the catalog"), (old, "quiet_24h", "lid's"),
                              (new, "quiet_24h", "phone's")):
        await table.put(FollowUp(tenant, key.phone, kind, reason, T0, T0 + timedelta(days=1)),
                        T0)

    await moving_followups(table)(old, new)

    assert {(p, k): fu.reason for (p, k), fu in table.jobs.items()} == {
        (new.phone, "agent"): "send the catalog", (new.phone, "quiet_24h"): "phone's"}


async def test_a_lid_customer_in_a_turn_is_merged_on_a_later_message(db_url: str,
                                                                      tenant: str) -> None:
    db = Database(db_url)
    await db.create_all()
    customers, memory = CustomerStore(db), SqlMemoryStore(db)
    await memory.start()
    lid, phone = "204060801234567@lid", "+5215512345678"
    old = CustomerKey(tenant, "lid:204060801234567")
    in_turn = {old}
    identity = Identity(tenant, customers, memory, busy=lambda key: key in in_turn)
    try:
        await customers.touch(old, Contact(lid=lid), T0, inbound=1)
        await memory.append(old, [line("hola", 0, "L1")])
        await identity.start()
        msg = InboundMessage(tenant=tenant, phone=phone, msg_id="P1", timestamp=T0, lid=lid)

        await identity.observe(msg)  # the LID customer's turn is still running
        assert await customers.get(old) is not None

        in_turn.clear()
        await identity.observe(msg)
        assert await customers.get(old) is None
        assert [m.text for m in await memory.recent(CustomerKey(tenant, phone), 5)] == ["hola"]
    finally:
        await memory.forget(CustomerKey(tenant, phone))
        await db.close()
