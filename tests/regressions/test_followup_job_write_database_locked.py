"""Under load (1,000 customers at 200 ms model latency) the lifecycle rules' job writes —
APScheduler's job store, its own SQLite connection to the daemon's file — waited in SQLite's
busy handler while the turn writers held the file, holding turn slots, and after 30 s
failed with "database is locked". They now queue on the database's write lock."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event

from bot.followups import erase_tenant_followups
from bot.models import CustomerKey
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.pipeline import START, make_settings, pipeline

ANA = "+5215512345678"


async def test_a_follow_up_job_write_waits_for_the_databases_writers(
        tmp_path: Path, openai_server: FakeOpenAI, tenant: str) -> None:
    db_url = f"sqlite:///{tmp_path / 'wabot.db'}"
    settings = make_settings(db_url, tmp_path, openai_server, tenant)
    try:
        async with pipeline(settings) as p:
            f = p.app.unit.followups
            assert f is not None
            key = CustomerKey(tenant, ANA)
            attempted = threading.Event()

            @event.listens_for(f.table.store.engine, "before_cursor_execute")
            def execute(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
                if sql.startswith("INSERT"):
                    attempted.set()

            async with p.app.unit.db.writing():  # a turn's write holds SQLite's one write slot
                put = asyncio.create_task(f.schedule(key, "agent", "check in",
                                                     START + timedelta(days=1)))
                # Bounded wait for something that must not happen: the job store's insert
                # would now sit in SQLite's busy handler, holding the turn's slot.
                assert not await asyncio.to_thread(attempted.wait, 1.0)
            await put
            assert attempted.is_set()
            assert [x.kind for x in await asyncio.to_thread(f.table.pending, ANA)] == ["agent"]
    finally:
        erase_tenant_followups(db_url, tenant)
