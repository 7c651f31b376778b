"""Under a burst the per-message writes on PostgreSQL (the journal, the turn, the outbound
lines) each took a connection of their own: beyond the pool's size SQLAlchemy opened
overflow connections and closed them again as they came back to a full pool, so every few
writes paid for a new connection (its backend started, its statements prepared anew). In
the Cloud API benchmark that cost more than the writes did. They now queue for the
connections they keep from the pool (half its size)."""

from __future__ import annotations

import asyncio

import pytest

from bot.stores.db import Database
from tests.conftest import _postgres_url

pytestmark = pytest.mark.postgres


async def test_a_burst_of_writes_takes_no_more_connections_than_the_pool_keeps() -> None:
    db = Database(_postgres_url(), pool_size=2, max_overflow=20)
    backends: set[int] = set()

    async def write() -> None:
        async with db.driver() as pg:
            backends.add(await pg.fetchval("SELECT pg_backend_pid()"))
            await asyncio.sleep(0.01)  # a statement that takes a moment

    try:
        for _ in range(3):
            await asyncio.gather(*(write() for _ in range(30)))
    finally:
        await db.close()
    assert len(backends) <= 2
