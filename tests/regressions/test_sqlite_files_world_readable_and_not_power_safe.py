"""Outside systemd (a shell's umask 022) the SQLite database, with every customer's
conversation, was created 0644; and the journal committed with synchronous=NORMAL, which
survives a crash but not a power cut, although its commit is what lets WhatsApp's
acknowledgement stand."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime

import bot.stores.customers  # noqa: F401  (declares the journal table)
from bot.models import InboundMessage
from bot.stores.customers import CustomerStore
from bot.stores.db import Database


async def test_database_files_are_owner_only_and_the_journal_commits_fully(tmp_path):
    old = os.umask(0o022)
    try:
        path = tmp_path / "state" / "wabot.db"
        db = Database(f"sqlite:///{path}")
        try:
            await db.create_all()
            store = CustomerStore(db)
            assert await store.journal_add(InboundMessage(
                tenant="t", phone="+5215512345678", msg_id="M1",
                timestamp=datetime(2026, 1, 5, tzinfo=UTC), text="hola"))
            raw = db.raw_writer
            assert raw is not None
            level = await raw.run(lambda cur: cur.execute("PRAGMA synchronous").fetchone()[0])
            assert level == 2  # FULL
            for name in ("wabot.db", "wabot.db-wal", "wabot.db-shm"):
                mode = stat.S_IMODE((path.parent / name).stat().st_mode)
                assert mode == 0o600, f"{name}: {oct(mode)}"
        finally:
            await db.close()
    finally:
        os.umask(old)
