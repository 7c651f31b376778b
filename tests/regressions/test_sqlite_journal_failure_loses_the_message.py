"""A journal write that failed on SQLite raised sqlite3's own error (the journal writes
through `bot.stores.sqlite_writer`, not the engine), which the inbox did not count as a
journal failure: the intake logged "journaled but could not be queued" and the message,
never journaled, was lost. It is now held and retried as on PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from bot.clock import VirtualClock
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.pipeline import START, make_settings, pipeline
from tests.regressions.test_database_outage_loses_acknowledged_messages import gateway, message

ANA = "+5215512345678"


async def rename(path: Path, old: str, new: str) -> None:
    """A table away and back, from another connection (in a thread: the daemon's own
    transaction on the loop must be able to finish)."""
    def run() -> None:
        db = sqlite3.connect(path, timeout=60, isolation_level=None)
        try:
            db.execute(f"ALTER TABLE {old} RENAME TO {new}")
        finally:
            db.close()
    await asyncio.to_thread(run)


async def test_a_failed_sqlite_journal_write_holds_the_message(
        tmp_path: Path, openai_server: FakeOpenAI, tenant: str) -> None:
    db = tmp_path / "wabot.db"
    settings = make_settings(f"sqlite:///{db}", tmp_path, openai_server, tenant,
                             inbox={"debounce_seconds": 0}, presenter={"enabled": False})
    clock = VirtualClock(START)
    async with pipeline(settings, clock=clock, gateway=gateway(clock)) as p:
        await rename(db, "journal", "journal_away")
        await p.gateway.receive(message(settings, clock, "L1", "is the shop open?"))
        assert [m.msg_id for m in p.app.unit.intake.held] == ["L1"]  # not lost
        await rename(db, "journal_away", "journal")
        retrier = p.app.unit.intake.retrier
        assert retrier is not None
        await clock.advance(60, {retrier})
        await p.settle()
        assert p.texts_to(ANA) == ["OK: is the shop open?"]
