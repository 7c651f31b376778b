"""`wabot history | customers | export | forget` against data the real pipeline wrote,
on SQLite and PostgreSQL. `forget` is checked by grepping every table in the database."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from loguru import logger
from sqlalchemy import Column, LargeBinary, MetaData, Table, Text, cast, func, inspect, select
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel
from typer.testing import CliRunner

from bot.agents.memory_keeper import INSIGHTS_MARKER, SUMMARY_MARKER
from bot.cli import app
from bot.models import CustomerKey
from bot.stores.db import Database
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.pipeline import make_settings, pipeline

ROOT = Path(__file__).resolve().parents[2]


class Seeded:
    """Two customers with everything wabot can hold on them."""

    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
        self.phone = "+4479" + f"{random.randrange(10**8):08d}"  # unique on shared PostgreSQL
        self.other = "+4478" + f"{random.randrange(10**8):08d}"
        self.secret = "Zorro" + uuid.uuid4().hex[:10]  # the dog's name: in text, facts, summary

    @property
    def needles(self) -> list[str]:
        return [self.phone, self.phone[1:], self.secret]


def fake_model(body: dict) -> str:
    system = body["messages"][0]["content"]
    user = body["messages"][-1]["content"]
    if SUMMARY_MARKER in system:
        return "Summary: " + user[-300:]
    if INSIGHTS_MARKER in system:
        words = [w.strip(".,!?") for w in user.split()]
        dogs = [w for w in words if w.startswith("Zorro")]
        return json.dumps({"facts": [{"key": "dog_name", "value": d, "category": "detail"}
                                     for d in dogs[-1:]]})
    said = [m["content"] for m in body["messages"] if m["role"] == "user"]
    return "OK: " + (said[-1][:200] if said else "hello again!")


async def seed(settings, server: FakeOpenAI, s: Seeded) -> None:
    server.responder = fake_model
    key = CustomerKey(s.tenant, s.phone)
    async with pipeline(settings) as p:
        await p.say(s.phone, f"hola, my dog is called {s.secret}", push_name="Zed")
        await p.say(s.other, "hello, do you sell boots?", push_name="Olga")
        await p.settle()
        server.tool_call("set_stage", {"stage": "customer", "reason": "bought a leash"},
                         match=lambda b: "bought" in b["messages"][-1]["content"])
        await p.advance(60)
        await p.say(s.phone, "I bought the red leash\nfor the walks")
        await p.settle()
        await p.advance(60)
        await p.say(s.phone, "it fits great")
        await p.settle()
        await p.app.unit.keeper.idle()
        assert await p.app.unit.chats.proactive(key, "Ask how the leash works out.", kind="followup")
        await p.advance(60)
        await p.say(s.phone, "te hago 10% de descuento", from_owner=True)
        await p.settle()
        await p.app.unit.keeper.idle()
        await p.app.unit.followups.schedule(key, "agent", f"ask whether {s.secret} likes the leash",
                                       p.clock.now() + timedelta(days=3))
        assert await p.app.unit.followups.pending()
        profile = await p.app.unit.memory.profile(key)
        assert s.secret in profile.summary and profile.facts["dog_name"].value == s.secret


@pytest.fixture
def seeded(db_url, tmp_path, openai_server, tenant, monkeypatch) -> Seeded:
    """Seed through the pipeline, then point the CLI at the same database and tenant."""
    s = Seeded(tenant)
    settings = make_settings(db_url, tmp_path / "state", openai_server, tenant,
                             presenter={"enabled": False},
                             memory={"delay_seconds": 0, "summarize_after_messages": 4,
                                     "keep_recent_messages": 2})
    asyncio.run(seed(settings, openai_server, s))
    for name in list(os.environ):
        if name.startswith(("WABOT_", "OPENAI_")) and not name.startswith("WABOT_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    for k, v in {"WABOT_STATE_DIR": str(tmp_path / "state"), "WABOT_DATABASE_URL": db_url,
                 "WABOT_TENANT": tenant, "WABOT_LLM__BASE_URL": openai_server.base_url,
                 "WABOT_LLM__API_KEY": "test",
                 "WABOT_BUSINESS_FILE": str(ROOT / "config" / "business.example.yaml")}.items():
        monkeypatch.setenv(k, v)
    return s


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """The CLI points loguru and stdlib logging at CliRunner's stream, closed afterwards:
    put them back so later tests (and this one's teardown) log somewhere real."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    logger.remove()
    logger.configure(patcher=lambda record: None)
    logger.add(sys.stderr)
    root.handlers[:] = handlers
    root.setLevel(level)


def wabot(*args: str, input: str | None = None):
    return CliRunner().invoke(app, list(args), input=input)


def test_history_prints_the_transcript_with_times_and_roles(seeded):
    result = wabot("history", seeded.phone)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{seeded.phone} · Zed · customer · 8 messages")
    assert "America/Mexico_City" in lines[0]
    body = [line for line in lines[2:] if line.strip()]
    roles = [line.split()[2] for line in body if line[:2] == "20"]
    assert roles == ["customer", "agent", "customer", "agent", "customer", "agent", "agent",
                     "owner"]
    assert body[0].split(None, 3) == ["2026-01-05", "09:00", "customer",
                                      f"hola, my dog is called {seeded.secret}"]
    column = body[0].index("hola")
    assert "agent (follow-up)" in result.stdout  # follow-ups are marked
    assert "te hago 10% de descuento" in body[-1]
    multi = body.index(next(b for b in body if "I bought the red leash" in b))
    assert body[multi + 1].strip() == "for the walks"
    assert body[multi + 1].index("for") == column  # continuation lines stay in the column
    last = wabot("history", seeded.phone, "--last", "2")
    assert "the last 2 shown" in last.stdout and len(last.stdout.splitlines()) == 4


def test_customers_lists_a_table_and_filters_by_stage(seeded):
    result = wabot("customers")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["PHONE", "NAME", "STAGE", "LAST", "MESSAGE", "IN", "OUT", "FLAGS"]
    rows = {line.split()[0]: line.split() for line in lines[1:3]}
    assert rows[seeded.phone][1:3] == ["Zed", "customer"]
    assert rows[seeded.other][1:3] == ["Olga", "lead"]
    assert "2 customers" in result.stdout
    leads = wabot("customers", "--stage", "LEAD").stdout
    assert seeded.other in leads and seeded.phone not in leads
    assert wabot("customers", "--stage", "churned").stdout.strip() == "no customers in stage churned"
    assert wabot("customers", "--stage", "vip").exit_code == 2


def test_export_prints_everything_held_as_json(seeded, tmp_path):
    result = wabot("export", seeded.phone)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["phone"] == seeded.phone and data["tenant"] == seeded.tenant
    assert data["customer"]["name"] == "Zed" and data["customer"]["stage"] == "customer"
    memory = data["memory"]
    assert len(memory["messages"]) == 8
    assert {m["role"] for m in memory["messages"]} == {"customer", "agent", "owner"}
    assert [f["value"] for f in memory["facts"] if f["key"] == "dog_name"] == [seeded.secret]
    assert seeded.secret in memory["summary"]
    assert [s["to"] for s in memory["stages"]] == ["customer"]
    assert [j["text"] for j in data["journal"]][:1] == [f"hola, my dog is called {seeded.secret}"]
    assert seeded.other not in result.stdout
    out = tmp_path / "zed.json"
    assert wabot("export", seeded.phone, "--out", str(out)).exit_code == 0
    assert json.loads(out.read_text())["phone"] == seeded.phone


def test_unknown_and_malformed_numbers_have_clear_answers(seeded):
    for command in ("history", "export"):
        missing = wabot(command, "+15550000000")
        assert missing.exit_code == 1 and "+15550000000" in missing.output
    bad = wabot("history", "5512345678")
    assert bad.exit_code == 2 and "country code" in bad.output


# --- forget -------------------------------------------------------------------------------------


def grep_database(url: str, needles: list[str]) -> list[str]:
    """Every (table, column, needle) where a needle occurs, across every table in the
    database: the ones wabot declares and any other the inspector finds."""

    def scan(conn: Connection) -> list[str]:
        names = set(inspect(conn).get_table_names())
        names |= {t.name for t in SQLModel.metadata.sorted_tables if inspect(conn).has_table(t.name)}
        hits = []
        for name in sorted(names):
            table = Table(name, MetaData(), autoload_with=conn)
            for col in table.columns:
                for needle in needles:
                    if _found(conn, table, col, needle):
                        hits.append(f"{name}.{col.name} holds {needle!r}")
        return hits

    async def run() -> list[str]:
        db = Database(url)
        try:
            async with db.engine.connect() as conn:
                return await conn.run_sync(scan)
        finally:
            await db.close()

    return asyncio.run(run())


def _found(conn: Connection, table: Table, col: Column, needle: str) -> bool:
    if isinstance(col.type, LargeBinary):  # pickled job state, for instance
        raw = needle.encode()
        match = (func.instr(col, raw) > 0 if conn.dialect.name == "sqlite"
                 else cast(col, Text).contains(raw.hex()))  # bytea as text is \x<hex>
    else:
        match = cast(col, Text).contains(needle, autoescape=True)
    return bool(conn.execute(select(func.count()).select_from(table).where(match)).scalar())


def raw_files(tmp_path: Path) -> bytes:
    """The SQLite database file and its write-ahead log, byte for byte."""
    return b"".join(p.read_bytes() for p in sorted(tmp_path.glob("wabot.db*")))


def test_forget_asks_first_and_then_leaves_no_trace_in_any_table(seeded, db_url, tmp_path):
    assert grep_database(db_url, seeded.needles)  # the grep does find the customer
    sqlite = db_url.startswith("sqlite")
    assert not sqlite or seeded.secret.encode() in raw_files(tmp_path)

    declined = wabot("forget", seeded.phone, input="n\n")
    assert declined.exit_code == 1 and "Aborted" in declined.output
    assert "8 messages" in declined.output and "received messages" in declined.output
    assert wabot("history", seeded.phone).exit_code == 0  # nothing was erased

    result = wabot("forget", seeded.phone, input="y\n")
    assert result.exit_code == 0, result.output
    assert f"forgot {seeded.phone}" in result.stdout

    assert grep_database(db_url, seeded.needles) == []
    assert wabot("history", seeded.phone).exit_code == 1
    assert wabot("export", seeded.phone).exit_code == 1
    kept = wabot("history", seeded.other)
    assert kept.exit_code == 0 and "hello, do you sell boots?" in kept.stdout
    if sqlite:  # not even in free pages or the write-ahead log
        assert seeded.secret.encode() not in raw_files(tmp_path)
        assert seeded.phone[1:].encode() not in raw_files(tmp_path)


def test_forget_yes_skips_the_question(seeded, db_url):
    result = wabot("forget", "--yes", seeded.phone)
    assert result.exit_code == 0, result.output
    assert "Erase everything" not in result.output
    assert grep_database(db_url, seeded.needles) == []


async def test_other_holders_are_exported_and_erased_before_the_customer(db_url, tenant):
    from bot.stores.customers import Contact, CustomerStore
    from bot.stores.memory_sql import SqlMemoryStore
    from bot.stores.privacy import Holder, export_customer, forget_customer
    from tests.fakes.pipeline import START

    db = Database(db_url)
    await db.create_all()
    memory = SqlMemoryStore(db)
    await memory.start()
    customers = CustomerStore(db)
    key = CustomerKey(tenant, "+4477" + f"{random.randrange(10**8):08d}")
    jobs = {key: [{"kind": "lead_silent", "due": "2026-01-06T15:00:00+00:00"}]}
    seen_by_eraser = []

    async def export_jobs(k: CustomerKey) -> list[dict]:
        return jobs.get(k, [])

    async def erase_jobs(k: CustomerKey) -> None:
        seen_by_eraser.append(await customers.get(k) is not None)
        jobs.pop(k, None)

    followups = Holder("followups", export_jobs, erase_jobs)
    try:
        assert await export_customer(key, customers, memory, [followups]) is not None  # jobs
        await customers.touch(key, Contact(name="Zed"), START, inbound=1)
        data = await export_customer(key, customers, memory, [followups])
        assert data is not None and data["followups"] == jobs[key]
        await forget_customer(key, customers, memory, [followups.forget])
        assert seen_by_eraser == [True]  # the holders go first, while the customer exists
        assert await export_customer(key, customers, memory, [followups]) is None
    finally:
        await db.close()
