"""On PostgreSQL a NUL byte in a message or a push name, or a message id over 128 characters,
made the journal insert fail: the message WhatsApp had acknowledged was never answered.
NUL is now replaced (U+FFFD) in the journal and the customer row, as the memory store does,
and the journal's id column holds any id."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from bot.models import CustomerKey
from bot.stores.db import Database, widen_columns
from tests.fakes.pipeline import pipeline

ANA = "+5215512345678"
LONG_ID = "3EB0" + "A1B2C3D4" * 40  # 324 characters


@pytest.fixture
def settings_overrides():
    return {"presenter": {"enabled": False}, "inbox": {"debounce_seconds": 0}}


@pytest.mark.parametrize(("msg_text", "push_name", "msg_id"), [
    ("hola\x00 tienen tenis?", "Ana", None),
    ("hola, tienen tenis?", "A\x00na", None),
    ("hola, tienen tenis?", "Ana", LONG_ID),
])
async def test_the_message_is_journaled_and_answered(settings, msg_text, push_name, msg_id):
    async with pipeline(settings) as p:
        sent = await p.say(ANA, msg_text, push_name=push_name, msg_id=msg_id)
        await p.settle()
        [reply] = p.texts_to(ANA)
        assert reply.startswith("OK: hola")
        customer = await p.app.unit.customers.get(CustomerKey(settings.tenant, ANA))
        assert customer is not None and customer.name == push_name.replace("\x00", "\ufffd")
        async with p.app.unit.db.connect() as conn:
            row = (await conn.execute(text(
                "SELECT msg_id, status, text, push_name FROM journal"
                " WHERE tenant = :t"), {"t": settings.tenant})).one()
        assert row.msg_id == sent and row.status == "answered"
        assert "\x00" not in row.text + row.push_name


async def test_an_existing_postgres_journal_is_widened_at_start(db_url, tenant):
    """Databases made before the fix have `msg_id VARCHAR(128)`: start widens it. In a
    schema of this test's own, so the shared test database's tables are not locked."""
    if db_url.startswith("sqlite"):
        pytest.skip("SQLite does not enforce VARCHAR lengths")
    db = Database(db_url)
    size = "SELECT character_maximum_length FROM information_schema.columns" \
           " WHERE table_schema = current_schema() AND table_name = 'journal'" \
           " AND column_name = 'msg_id'"
    try:
        async with db.begin() as conn:
            await conn.execute(text(f"CREATE SCHEMA {tenant}"))
            await conn.execute(text(f"SET LOCAL search_path TO {tenant}"))
            await conn.execute(text("CREATE TABLE journal (id serial PRIMARY KEY,"
                                    " msg_id varchar(128) NOT NULL)"))
            assert (await conn.execute(text(size))).scalar() == 128
            await widen_columns(conn)
            assert (await conn.execute(text(size))).scalar() is None
            await conn.execute(text("INSERT INTO journal (msg_id) VALUES (:m)"), {"m": LONG_ID})
            await widen_columns(conn)  # again: nothing to do
            await conn.execute(text(f"DROP SCHEMA {tenant} CASCADE"))
    finally:
        await db.close()
