"""The SQLite writer thread's group commit: writes waiting together share one transaction,
each in its own savepoint, and each caller returns only once its write is committed."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from bot.stores.sqlite_writer import SqliteWriter


@pytest.fixture
async def writer(tmp_path: Path):
    path = str(tmp_path / "w.db")
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)")
    w = SqliteWriter(path, asyncio.Lock())
    yield w
    await w.close()


def committed(writer: SqliteWriter) -> dict[str, int]:
    """What another connection sees: only committed rows."""
    with sqlite3.connect(writer.path) as conn:
        return dict(conn.execute("SELECT k, v FROM t").fetchall())


def insert(k: str, v: int):
    def work(cur: sqlite3.Cursor) -> int:
        cur.execute("INSERT INTO t VALUES (?, ?)", (k, v))
        return v
    return work


async def test_writes_that_wait_together_share_one_commit_and_each_is_committed_on_return(
        writer: SqliteWriter):
    gate = threading.Event()

    def first(cur: sqlite3.Cursor) -> int:
        gate.wait(5)  # holds the writer while the others queue
        return insert("first", 0)(cur)

    head = asyncio.create_task(writer.run(first))
    await asyncio.sleep(0.05)
    rest = [asyncio.create_task(writer.run(insert(f"k{i}", i))) for i in range(50)]
    await asyncio.sleep(0.05)
    gate.set()
    assert await head == 0
    assert await asyncio.gather(*rest) == list(range(50))
    assert writer.commits == 2  # the first alone, then the 50 that waited for it
    assert len(committed(writer)) == 51


async def test_a_failing_write_is_rolled_back_alone_and_its_caller_hears_why(
        writer: SqliteWriter):
    gate = threading.Event()

    def hold(cur: sqlite3.Cursor) -> None:
        gate.wait(5)

    def half_then_fail(cur: sqlite3.Cursor) -> None:
        cur.execute("INSERT INTO t VALUES ('half', 1)")
        cur.execute("INSERT INTO t VALUES ('a', 2)")  # 'a' is written just before: refused

    head = asyncio.create_task(writer.run(hold))
    await asyncio.sleep(0.05)
    a = asyncio.create_task(writer.run(insert("a", 1)))
    bad = asyncio.create_task(writer.run(half_then_fail))
    b = asyncio.create_task(writer.run(insert("b", 3)))
    await asyncio.sleep(0.05)
    gate.set()
    await head
    assert await a == 1 and await b == 3
    with pytest.raises(sqlite3.IntegrityError):
        await bad
    assert committed(writer) == {"a": 1, "b": 3}  # nothing of the failed write, not 'half'
    assert writer.commits == 2


async def test_a_write_whose_caller_gave_up_before_its_turn_is_not_made(writer: SqliteWriter):
    gate = threading.Event()
    head = asyncio.create_task(writer.run(lambda cur: gate.wait(5)))
    await asyncio.sleep(0.05)
    dropped = asyncio.create_task(writer.run(insert("gone", 1)))
    kept = asyncio.create_task(writer.run(insert("kept", 2)))
    await asyncio.sleep(0.05)
    dropped.cancel()
    gate.set()
    await head
    assert await kept == 2
    assert committed(writer) == {"kept": 2}


async def test_a_write_asked_for_by_work_already_scheduled_joins_the_commit(
        writer: SqliteWriter):
    """As after a reply: its outbound line is recorded by a task of its own (which hands the
    write to a flusher task of its own), created just before the turn's write is asked
    for. Both go in one transaction: one disk flush, not two."""

    async def outbound_line() -> int:
        return await asyncio.create_task(writer.run(insert("outbound", 1)))

    line = asyncio.create_task(outbound_line())
    assert await writer.run(insert("turn", 2)) == 2
    assert await line == 1
    assert writer.commits == 1
    assert committed(writer) == {"outbound": 1, "turn": 2}
