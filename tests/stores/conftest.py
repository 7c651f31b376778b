"""The `memory` fixture: one `MemoryStore` per backend, so one contract suite covers them all."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from pymongo import AsyncMongoClient
from sqlalchemy import delete

from bot.stores.db import Database
from bot.stores.memory_base import MemoryStore
from bot.stores.memory_mongo import MongoMemoryStore
from bot.stores.memory_sql import TABLES, SqlMemoryStore
from tests.conftest import MONGODB_ENV, _postgres_url
from tests.fakes.netguard import is_loopback


def _host(entry: str) -> str:
    """`host`, `host:port` or `[v6]:port` → host."""
    if entry.startswith("["):
        return entry[1:].partition("]")[0]
    return entry.partition(":")[0]


def _mongo_marks() -> list[pytest.MarkDecorator]:
    """`allow_network` only when the configured server is off this machine (the network guard
    would refuse it otherwise); a loopback server keeps the guard on."""
    netloc = urlsplit(os.environ.get(MONGODB_ENV, "")).netloc.rpartition("@")[2]
    remote = any(not is_loopback(_host(h)) for h in netloc.split(",") if h)
    return [pytest.mark.mongo, *([pytest.mark.allow_network] if remote else [])]


@pytest.fixture(params=[
    "sql-sqlite",
    pytest.param("sql-postgres", marks=pytest.mark.postgres),
    pytest.param("mongo", marks=_mongo_marks()),
])
async def memory(request: pytest.FixtureRequest, tmp_path: Path,
                 tenant: str) -> AsyncIterator[MemoryStore]:
    """A started store. Every tenant a test uses starts with `tenant`, so teardown on the
    shared PostgreSQL removes exactly what the test wrote."""
    if request.param == "mongo":
        async for store in _mongo(request.getfixturevalue("mongodb_url")):
            yield store
        return
    url = f"sqlite:///{tmp_path / 'wabot.db'}" if request.param == "sql-sqlite" else _postgres_url()
    db = Database(url)
    sql = SqlMemoryStore(db)
    await sql.start()
    try:
        yield sql
    finally:
        await sql.close()
        async with db.engine.begin() as conn:
            for table in TABLES:
                await conn.execute(delete(table).where(table.c.tenant.startswith(tenant)))
        await db.close()


async def _mongo(url: str) -> AsyncIterator[MemoryStore]:
    name = "wabot_test_" + uuid.uuid4().hex[:12]  # a database of its own, dropped after
    store = MongoMemoryStore(url, name)
    await store.start()
    try:
        yield store
    finally:
        await store.close()
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(url)
        await client.drop_database(name)
        await client.close()
