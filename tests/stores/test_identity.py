"""A LID customer's memory moves to their phone number (`MemoryStore.rekey`), on every
backend: nothing lost, nothing twice, nothing hidden behind a summary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.models import CustomerKey, MemoryMessage, Role, Stage
from bot.stores.customers import Contact, CustomerStore
from bot.stores.db import Database
from bot.stores.memory_base import Fact, MemoryStore, StageChange

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
