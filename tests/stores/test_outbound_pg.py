"""Outbound lines on PostgreSQL go in as one statement per group, on the asyncpg connection:
a status never moves a line backwards, and a status for a line not yet known creates it."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

import bot.wiring  # noqa: F401  (every table)
from bot.stores.db import Database
from bot.stores.outbound import OutboundStore, StatusUpdate

pytestmark = pytest.mark.postgres
AT = datetime(2026, 1, 5, 15, 0, 0, 123456, tzinfo=UTC)



async def test_lines_and_statuses_round_trip(postgres_db: Database) -> None:
    store = OutboundStore(postgres_db, f"t-{uuid.uuid4().hex[:8]}")
    phone = "+5215512345678"
    await asyncio.gather(*(store.record(f"w{i}", phone, "text", "accepted", AT)
                           for i in range(3)), store.record("w0", phone, "text", "accepted", AT))
    later = AT + timedelta(seconds=5)
    await store.apply(StatusUpdate("w1", phone, "read", later))
    await store.apply(StatusUpdate("w1", phone, "delivered", later + timedelta(seconds=1)))
    await store.apply(StatusUpdate("w9", phone, "failed", later, "131047: window"))
    lines = {e.wamid: e for e in await store.recent()}
    assert sorted(lines) == ["w0", "w1", "w2", "w9"]
    assert (lines["w0"].status, lines["w0"].created_at, lines["w0"].updated_at) == (
        "accepted", AT, AT)
    assert (lines["w1"].status, lines["w1"].updated_at) == ("read", later)
    assert (lines["w9"].status, lines["w9"].error) == ("failed", "131047: window")
