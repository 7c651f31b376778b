"""Every inbound message read every customer and every memory line.

The journal's insert asks, in its RETURNING, whether the sender had a customer row or
anything in the memory. Correlated to the new row, SQLite does not search an index for such
a subquery: it scanned the whole customers index, memory index and profiles index, for every
message (2.6 ms a message with 20,000 customers, and growing with every line the shop's
memory keeps). Now the subqueries name the insert's parameters and search.

Checked two ways on SQLite: no statement a first contact or a warm turn runs is planned as a
scan of a table, and the journal's write does the same work (SQLite virtual-machine steps)
whether the shop has 10 customers or 5,000.
"""

from __future__ import annotations

import re
import sqlite3
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

from bot.models import InboundMessage, MessageKind
from bot.stores.journal_writer import _sqlite_batch
from tests.fakes.pipeline import make_settings, pipeline
from tests.pipeline.test_cached_agent import QUIET, Statements

ANA = "+5215512345678"


def _scans(db: Path, statements: list[str]) -> list[tuple[str, str]]:
    """(plan line, statement) for each table a statement would scan rather than search."""
    conn = sqlite3.connect(db)
    try:
        found = []
        for sql in dict.fromkeys(statements):
            if not sql.lstrip().upper().startswith(("INSERT", "UPDATE", "SELECT", "DELETE")):
                continue
            for *_, detail in conn.execute("EXPLAIN QUERY PLAN " + sql, _nulls(sql)):
                if detail.startswith("SCAN") and "CONSTANT ROW" not in detail:
                    found.append((detail, sql))
        return found
    finally:
        conn.close()


def _nulls(sql: str) -> object:
    """NULL for each of a statement's parameters (the plan does not depend on them)."""
    bare = re.sub(r"'(?:[^']|'')*'", "''", sql)  # string literals hold no parameters
    if re.search(r"(?<![:\w]):[A-Za-z_]", bare):
        return defaultdict(lambda: None)
    numbered = [int(n) for n in re.findall(r"\?(\d+)", bare)]
    return [None] * (max(numbered) if numbered else bare.count("?"))


async def test_no_statement_of_a_turn_scans_a_table(tmp_path, openai_server, tenant):
    db = tmp_path / "wabot.db"
    settings = make_settings(f"sqlite:///{db}", tmp_path, openai_server, tenant,
                             memory=QUIET)
    async with pipeline(settings) as p:
        seen = Statements()
        await seen.attach(p.app)
        seen.on = True
        await p.say(ANA, "hola")  # first contact
        await p.settle()
        await p.say(ANA, "¿tienen envíos?")  # warm
        await p.settle()
        seen.on = False
        assert p.texts_to(ANA) == ["OK: hola", "OK: ¿tienen envíos?"]
        journal = [s for s in seen.all if s.startswith("INSERT INTO journal")]
        assert journal, "the journal's insert was not seen"
        assert _scans(db, seen.all) == []


def _steps_to_journal(conn: sqlite3.Connection, customers: int) -> int:
    """SQLite VM steps (in hundreds) for one journal write, with `customers` in the shop."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    with conn:
        conn.executemany(
            "INSERT INTO customers (tenant, phone, stage, opted_out, first_contact,"
            " last_contact, msgs_in, msgs_out, tokens_in, tokens_out, wa_jid, lid, name)"
            " VALUES ('shop', ?, 'lead', 0, ?, ?, 0, 0, 0, 0, '', '', '')",
            [(f"+1{customers:04d}{n:06d}", now, now) for n in range(customers)])
        conn.executemany(
            "INSERT INTO memory_messages (tenant, phone, role, text, at, kind, msg_id)"
            " VALUES ('shop', ?, 'customer', 'hola', ?, 'text', ?)",
            [(f"+1{customers:04d}{n:06d}", now, f"m{customers}-{n}") for n in range(customers)])
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    conn.set_progress_handler(count, 100)
    cur = conn.cursor()
    cur.execute("BEGIN")
    msg = InboundMessage(tenant="shop", msg_id=f"wamid.{customers}", phone=ANA, chat="",
                         push_name="Ana", kind=MessageKind.TEXT, text="hola",
                         timestamp=datetime.now(UTC))
    assert _sqlite_batch(cur, [msg]) == {msg.msg_id: False}  # a first contact
    cur.execute("COMMIT")
    conn.set_progress_handler(None, 0)
    return steps


async def test_the_journal_write_costs_the_same_with_5000_customers(tmp_path, openai_server,
                                                                    tenant):
    db = tmp_path / "wabot.db"
    async with pipeline(make_settings(f"sqlite:///{db}", tmp_path, openai_server, tenant,
                                      memory=QUIET)):
        pass  # the daemon made its tables
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        few = _steps_to_journal(conn, 10)
        many = _steps_to_journal(conn, 5000)
    finally:
        conn.close()
    assert many <= few + 2, (few, many)  # it scanned: ~10 steps a customer
