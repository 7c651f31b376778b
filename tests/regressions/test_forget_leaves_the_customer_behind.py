"""Issue #24.10: `wabot forget` left the customer behind on PostgreSQL: the Cloud API's
`outbound` table kept the full number, message ids and times, and other tables kept what
named them (webhook events waiting, alerts).

The check walks every table of the schema — the SQLAlchemy metadata and what the database
itself lists (APScheduler's job tables are not in the metadata) — and every text and binary
column, looking for the number's digits after `forget`, on SQLite and PostgreSQL, with the
agent memory in SQL and in MongoDB. Another customer's data stays."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlmodel import SQLModel

from bot.cli.memory import erase
from bot.followups.store import job_table_name
from bot.models import CustomerKey
from bot.settings import Settings
from bot.stores.db import sync_url
from tests.fakes import meta_webhooks as meta
from tests.fakes.graph_server import FakeGraph
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.pipeline import START, make_settings
from tests.gateway.cloud.test_webhook import T0, Cloud

GONE_WA = "5215590417263"  # unusual digits: the PostgreSQL database is shared by tests
GONE = "+" + GONE_WA
STAYS_WA = "5215590417999"


@pytest.fixture(params=["sql", "mongo"])
async def memory(request: pytest.FixtureRequest) -> AsyncIterator[dict[str, Any]]:
    if request.param == "sql":
        yield {}
        return
    url = request.getfixturevalue("mongodb_url")
    name = "wabot_forget_" + uuid.uuid4().hex[:12]
    yield {"mongodb_url": url, "mongodb_database": name}
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
    await client.drop_database(name)
    await client.close()


def settings_for(db_url: str, tmp_path: Path, openai: FakeOpenAI, graph: FakeGraph,
                 tenant: str, memory: dict[str, Any]) -> Settings:
    return make_settings(
        db_url, tmp_path, openai, tenant, whatsapp={"transport": "cloud"},
        cloud={"phone_number_id": graph.phone_number_id, "access_token": graph.token,
               "app_secret": meta.APP_SECRET, "verify_token": meta.VERIFY_TOKEN,
               "graph_url": graph.graph_url, "listen_port": 0},
        presenter={"enabled": False}, inbox={"debounce_seconds": 0},
        followups={"spread_minutes": 0, "send_hours": "00:00-23:59", "rules": []},
        memory={"insights": False},
        webhooks={"urls": ["http://127.0.0.1:9/hook"], "secret": "s"}, **memory)


async def a_customer_everywhere(settings: Settings, graph: FakeGraph) -> None:
    """Two customers write, are answered, get a follow-up scheduled and an alert; their
    webhook events wait for a dead endpoint; Meta reports a delivery."""
    c = Cloud(settings, graph)
    await c.app.start()
    try:
        for wa in (GONE_WA, STAYS_WA):
            assert await c.post(meta.text(wa, "hola, soy Ana", name="Ana", at=T0)) == 200
        await c.settle()
        wamid = "wamid.OUT000001"  # the first reply, as the fake Graph numbers them
        assert await c.post(meta.envelope(statuses=[{
            "id": wamid, "status": "delivered", "timestamp": str(int(T0) + 5),
            "recipient_id": GONE_WA}])) == 200
        followups: Any = c.app.unit.followups
        for wa in (GONE_WA, STAYS_WA):
            await followups.schedule(CustomerKey(c.tenant, "+" + wa), "agent",
                                     "ask about the cake", START + timedelta(days=2))
            await c.app.unit.alerts.alert("human_requested", f"+{wa} asks for a person",
                                          "+" + wa)
        await c.app.unit.alerts.drain()
        await c.app.unit.outbox.flush()
    finally:
        await c.settle()
        await c.app.stop()
        await c.http.aclose()


def tables_naming(settings: Settings, digits: str) -> dict[str, list[str]]:
    """Every table (metadata and the database's own list) → its columns holding `digits`."""
    engine = create_engine(sync_url(settings.sql_url))
    found: dict[str, list[str]] = {}
    try:
        with engine.connect() as conn:
            names = set(inspect(conn).get_table_names())
            assert {t.name for t in SQLModel.metadata.sorted_tables} <= names
            for table in sorted(names):
                columns = [c["name"] for c in inspect(conn).get_columns(table)]
                for row in conn.execute(text(f'SELECT * FROM "{table}"')).mappings():
                    for column in columns:
                        value = row[column]
                        if isinstance(value, memoryview):
                            value = bytes(value)
                        if isinstance(value, bytes):
                            value = value.decode("latin-1")
                        if isinstance(value, str) and digits in value:
                            found.setdefault(table, [])
                            if column not in found[table]:
                                found[table].append(column)
    finally:
        engine.dispose()
    return found


async def documents_naming(settings: Settings, digits: str) -> list[str]:
    if settings.mongodb_url is None:
        return []
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        settings.mongodb_url.get_secret_value())
    try:
        db = client[settings.mongodb_database]
        hits = []
        for name in await db.list_collection_names():
            async for doc in db[name].find({}):
                if digits in str(doc):
                    hits.append(name)
        return hits
    finally:
        await client.close()


async def test_forget_leaves_nothing_in_any_table(
        db_url: str, tmp_path: Path, openai_server: FakeOpenAI, graph_server: FakeGraph,
        tenant: str, memory: dict[str, Any]) -> None:
    settings = settings_for(db_url, tmp_path, openai_server, graph_server, tenant, memory)
    await a_customer_everywhere(settings, graph_server)
    before = tables_naming(settings, GONE_WA)
    # The test can fail: the number is in the tables the issue named, and more.
    for table in ("customers", "journal", "outbound", "webhook_outbox", "owner_alerts",
                  "runs", "usage_daily", job_table_name(tenant)):
        assert table in before, (table, sorted(before))
    if memory:
        assert await documents_naming(settings, GONE_WA)
    else:
        assert "memory_messages" in before

    await erase(settings, CustomerKey(tenant, GONE))

    assert tables_naming(settings, GONE_WA) == {}
    assert await documents_naming(settings, GONE_WA) == []
    stays = tables_naming(settings, STAYS_WA)
    for table in ("customers", "journal", "outbound", "webhook_outbox", "owner_alerts"):
        assert table in stays, (table, sorted(stays))
