"""SQLite writes without a thread hop per statement: one raw `sqlite3` connection in one
writer thread, one hop and one commit for all the writes that are waiting.

aiosqlite (under SQLAlchemy's async engine) sends every statement to its thread and back;
a turn's write of five statements paid five hops and SQLAlchemy's per-statement work. The
per-turn and journal writes run here instead, as plain functions over a cursor, inside the
`Database`'s write lock so they queue with SQLAlchemy's writers rather than in SQLite's
busy handler. Schema and admin paths stay on SQLModel/SQLAlchemy.

Group commit: writes that arrive while a commit is under way are made together in the next
transaction, each in a savepoint of its own (one that fails is rolled back alone and its
caller gets the error). Every caller still returns only once its write is committed; with
`synchronous=FULL` a commit is a disk flush, so under load one flush serves many turns.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

T = TypeVar("T")
Work = Callable[[sqlite3.Cursor], Any]
MAX_BATCH = 256


def _name_os_thread(name: bytes) -> None:
    """The writer thread's name as `top -H` and `/proc/<pid>/task/*/comm` show it (Python
    names its threads for itself only): where the daemon's CPU goes, per thread."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(15, ctypes.c_char_p(name[:15]), 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):  # not Linux: the name is only a convenience
        pass


def sqlite_time(at: datetime) -> str:
    """A datetime as SQLAlchemy's SQLite DATETIME stores it (UTC, no offset)."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def parse_sqlite_time(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class SqliteWriter:
    def __init__(self, path: str, lock: asyncio.Lock) -> None:
        self.path = path
        self._lock = lock
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer",
                                          initializer=_name_os_thread,
                                          initargs=(b"sqlite-writer",))
        self._conn: sqlite3.Connection | None = None
        self._queue: list[tuple[Work, asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.commits = 0  # transactions committed (tests and benchmarks read it)

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

    def _transaction(self, works: list[Work]) -> list[tuple[bool, Any]]:
        """Run `works` in one transaction: (True, result) or (False, exception) for each."""
        conn = self._connection()
        cur = conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        done: list[tuple[bool, Any]] = []
        try:
            if len(works) == 1:  # alone: a failure rolls the transaction back (below)
                done.append((True, works[0](cur)))
            else:
                for work in works:
                    cur.execute("SAVEPOINT w")
                    try:
                        done.append((True, work(cur)))
                    except Exception as exc:
                        cur.execute("ROLLBACK TO w")
                        done.append((False, exc))
                    cur.execute("RELEASE w")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")
        return done

    async def run(self, work: Callable[[sqlite3.Cursor], T]) -> T:
        """Run `work` in the writer thread, in a transaction with whatever other writes are
        waiting; committed when this returns."""
        done: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((work, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="sqlite-group-commit")
        return await done

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        # One turn of the loop first: a write asked for by work that was already scheduled
        # (a reply's outbound line, recorded in a task of its own just before the turn's
        # write) joins this commit instead of paying a disk flush of its own.
        await asyncio.sleep(0)
        while self._queue:
            async with self._lock:
                # Taken once the write slot is ours: what queued meanwhile joins this commit.
                batch = [(w, f) for w, f in self._queue[:MAX_BATCH] if not f.cancelled()]
                del self._queue[:MAX_BATCH]
                if not batch:
                    continue
                try:
                    results = await loop.run_in_executor(
                        self._thread, self._transaction, [w for w, _ in batch])
                except BaseException as exc:  # the commit failed: every write in it did
                    for _, waiter in batch:
                        if not waiter.done():
                            waiter.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
            self.commits += 1
            for (_, waiter), (ok, value) in zip(batch, results, strict=True):
                if waiter.done():
                    continue
                if ok:
                    waiter.set_result(value)
                else:
                    waiter.set_exception(value)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def close(self) -> None:
        if self._flusher is not None:  # the writes already asked for are made first
            await asyncio.gather(self._flusher, return_exceptions=True)
        await asyncio.get_running_loop().run_in_executor(self._thread, self._close)
        self._thread.shutdown(wait=True)
