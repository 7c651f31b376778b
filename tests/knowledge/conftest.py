"""The `index` fixture: one started knowledge index per SQL backend (the contract suite)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import delete

from bot.knowledge.index_base import TABLES, KnowledgeIndex
from bot.knowledge.index_postgres import PostgresKnowledgeIndex
from bot.knowledge.index_sqlite import SqliteKnowledgeIndex
from bot.stores.db import Database
from tests.conftest import _postgres_url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def index(request: pytest.FixtureRequest, tmp_path: Path,
                tenant: str) -> AsyncIterator[KnowledgeIndex]:
    """Every tenant a test uses starts with `tenant`: teardown removes exactly those rows."""
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'wabot.db'}")
        idx: KnowledgeIndex = SqliteKnowledgeIndex(db)
    else:
        db = Database(_postgres_url())
        idx = PostgresKnowledgeIndex(db)
    await idx.start()
    try:
        yield idx
    finally:
        async with db.engine.begin() as conn:
            for table in TABLES:
                await conn.execute(delete(table).where(table.c.tenant.startswith(tenant)))
        await db.close()
