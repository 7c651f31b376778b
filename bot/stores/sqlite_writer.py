"""SQLite writes without a thread hop per statement: one raw `sqlite3` connection in one
writer thread, one hop per transaction.

aiosqlite (under SQLAlchemy's async engine) sends every statement to its thread and back;
a turn's write of five statements paid five hops and SQLAlchemy's per-statement work. The
per-turn and journal writes run here instead, as plain functions over a cursor, inside the
`Database`'s write lock so they queue with SQLAlchemy's writers rather than in SQLite's
busy handler. Schema and admin paths stay on SQLModel/SQLAlchemy.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TypeVar

T = TypeVar("T")


def sqlite_time(at: datetime) -> str:
    """A datetime as SQLAlchemy's SQLite DATETIME stores it (UTC, no offset)."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def parse_sqlite_time(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class SqliteWriter:
    def __init__(self, path: str, lock: asyncio.Lock) -> None:
        self.path = path
        self._lock = lock
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL: the journal's commit is what lets WhatsApp's acknowledgement stand, so it
            # must survive a power cut, not only a crash (NORMAL: only a crash). It syncs the
            # WAL at each commit, ~1 ms on an SSD, and makes every earlier commit durable too.
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._conn = conn
        return self._conn

    def _transaction(self, work: Callable[[sqlite3.Cursor], T]) -> T:
        conn = self._connection()
        cur = conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            result = work(cur)
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")
        return result

    async def run(self, work: Callable[[sqlite3.Cursor], T]) -> T:
        """Run `work` in one transaction in the writer thread; committed when this returns."""
        async with self._lock:
            return await asyncio.get_running_loop().run_in_executor(
                self._thread, self._transaction, work)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, self._close)
        self._thread.shutdown(wait=True)
