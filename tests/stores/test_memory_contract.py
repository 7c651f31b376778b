"""One contract for agent memory, run against every backend (`memory` fixture: SQLite,
PostgreSQL when WABOT_TEST_POSTGRES_URL is set, MongoDB when WABOT_TEST_MONGODB_URL is set)."""

from __future__ import annotations

import asyncio
import gc
import json
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import text

from bot.models import CustomerKey, MemoryMessage, Role, Stage
from bot.stores.db import Database
from bot.stores.memory_base import Fact, MemoryStore, Profile, StageChange, estimate_tokens
from bot.stores.memory_mongo import MemoryBackendUnavailable, MongoMemoryStore, mask_url
from bot.stores.memory_sql import SqlMemoryStore, page_query

T0 = datetime(2025, 3, 4, 5, 6, 7, 123000, tzinfo=UTC)


def line(text: str, *, role: Role = Role.CUSTOMER, msg_id: str = "", at: datetime = T0,
         kind: str = "chat") -> MemoryMessage:
    return MemoryMessage(role=role, text=text, at=at, kind=kind, msg_id=msg_id)


def lines(prefix: str, n: int) -> list[MemoryMessage]:
    return [line(f"{prefix}{i}", at=T0 + timedelta(seconds=i)) for i in range(n)]


def texts(messages: list[MemoryMessage]) -> list[str]:
    return [m.text for m in messages]


@pytest.fixture
def key(tenant: str) -> CustomerKey:
    return CustomerKey(tenant, "+5215512345678")


class TestMemoryContract:
    async def test_append_returns_messages_with_increasing_seqs(
            self, memory: MemoryStore, key: CustomerKey) -> None:
        first = await memory.append(key, [line("hola", msg_id="A1"),
                                          line("ok", role=Role.AGENT, kind="followup")])
        second = await memory.append(key, [line("gracias", role=Role.OWNER, kind="owner")])
        seqs = [m.seq for m in first + second]
        assert seqs == sorted(seqs) and len(set(seqs)) == 3 and seqs[0] > 0
        assert [(m.role, m.text, m.kind, m.msg_id) for m in first + second] == [
            (Role.CUSTOMER, "hola", "chat", "A1"), (Role.AGENT, "ok", "followup", ""),
            (Role.OWNER, "gracias", "owner", "")]
        assert await memory.recent(key, 10) == first + second
        assert await memory.append(key, []) == []

    async def test_recent_oldest_and_count_honour_after_seq(
            self, memory: MemoryStore, key: CustomerKey) -> None:
        stored = await memory.append(key, lines("m", 10))
        seqs = [m.seq for m in stored]
        assert texts(await memory.recent(key, 4)) == ["m6", "m7", "m8", "m9"]
        assert texts(await memory.recent(key, 4, after_seq=seqs[7])) == ["m8", "m9"]
        assert texts(await memory.oldest(key, seqs[2], 3)) == ["m3", "m4", "m5"]
        assert texts(await memory.oldest(key, 0, 100)) == texts(stored)
        assert await memory.recent(key, 0) == []
        assert await memory.count(key) == 10
        assert await memory.count(key, after_seq=seqs[4]) == 5
        assert await memory.count(key, after_seq=seqs[-1]) == 0

    async def test_window_keeps_the_newest_lines_that_fit_oldest_first(
            self, memory: MemoryStore, key: CustomerKey) -> None:
        body = "x" * 396
        assert estimate_tokens(body) == 136
        await memory.append(key, [line(f"{i}{body}"[:396]) for i in range(6)])
        window = await memory.window(key, token_budget=300)
        assert [m.text[0] for m in window] == ["4", "5"]
        assert window[0].seq < window[1].seq
        # A single line over budget is still shown: the newest line is never dropped.
        await memory.append(key, [line("y" * 5000)])
        assert texts(await memory.window(key, token_budget=10)) == ["y" * 5000]

    async def test_window_over_5000_lines_reads_one_page(
            self, memory: MemoryStore, key: CustomerKey, monkeypatch: pytest.MonkeyPatch) -> None:
        for start in range(0, 5000, 500):
            await memory.append(key, [line(f"line {i}") for i in range(start, start + 500)])
        assert await memory.count(key) == 5000
        reads: list[tuple[int, int]] = []
        real_recent = memory.recent

        async def spy(k: CustomerKey, limit: int, after_seq: int = 0) -> list[MemoryMessage]:
            rows = await real_recent(k, limit, after_seq)
            reads.append((limit, len(rows)))
            return rows

        monkeypatch.setattr(memory, "recent", spy)
        started = time.perf_counter()
        window = await memory.window(key, token_budget=10**9)
        elapsed = time.perf_counter() - started
        assert reads == [(200, 200)]  # one page asked for, one page read
        assert texts(window) == [f"line {i}" for i in range(4800, 5000)]
        assert elapsed < 5.0  # one round trip; generous for a remote MongoDB

    async def test_redelivered_msg_id_is_stored_once(
            self, memory: MemoryStore, key: CustomerKey) -> None:
        first = await memory.append(key, [line("hi", msg_id="WA1")])
        assert len(first) == 1
        assert await memory.append(key, [line("hi again", msg_id="WA1")]) == []
        mixed = await memory.append(key, [line("dup", msg_id="WA1"), line("new", msg_id="WA2"),
                                          line("dup in batch", msg_id="WA2")])
        assert texts(mixed) == ["new"]
        # Lines without a WhatsApp id (agent replies, notes) never collide with each other.
        assert len(await memory.append(key, [line("a"), line("a")])) == 2
        assert texts(await memory.oldest(key, 0, 10)) == ["hi", "new", "a", "a"]

    async def test_concurrent_redelivery_is_stored_once(
            self, memory: MemoryStore, key: CustomerKey) -> None:
        results = await asyncio.gather(
            *(memory.append(key, [line(f"copy {i}", msg_id="WA-RACE")]) for i in range(10)))
        assert sum(len(r) for r in results) == 1
        assert await memory.count(key) == 1

    async def test_concurrent_appends_all_land_in_order(
            self, memory: MemoryStore, key: CustomerKey) -> None:
        results = await asyncio.gather(
            *(memory.append(key, lines(f"b{b}-", 3)) for b in range(20)))
        seqs = [m.seq for batch in results for m in batch]
        assert len(seqs) == len(set(seqs)) == 60
        for batch in results:
            assert [m.seq for m in batch] == sorted(m.seq for m in batch)
        history = await memory.oldest(key, 0, 100)
        assert [m.seq for m in history] == sorted(seqs)
        for b in range(20):  # each batch stays in its own order inside the history
            assert [t for t in texts(history) if t.startswith(f"b{b}-")] == [
                f"b{b}-0", f"b{b}-1", f"b{b}-2"]

    async def test_datetimes_come_back_aware_utc(
            self, memory: MemoryStore, key: CustomerKey) -> None:
        india = timezone(timedelta(hours=5, minutes=30))
        sent = datetime(2025, 6, 1, 9, 30, 15, 250000, tzinfo=india)
        [stored] = await memory.append(key, [line("namaste", at=sent)])
        await memory.merge_facts(key, [Fact("city", "Pune", updated_at=sent)])
        await memory.add_stage_change(key, StageChange(None, Stage.LEAD, "first message", sent))
        [read] = await memory.recent(key, 1)
        prof = await memory.profile(key)
        for at in (stored.at, read.at, prof.facts["city"].updated_at, prof.stages[0].at):
            assert at is not None and at.utcoffset() == timedelta(0)
            assert abs(at - sent) < timedelta(milliseconds=1)
        assert read == stored
        naive = await memory.append(key, [line("naive", at=datetime(2025, 1, 1, 12))])
        assert naive[0].at == datetime(2025, 1, 1, 12, tzinfo=UTC)

    async def test_unknown_customer_has_empty_memory(
            self, memory: MemoryStore, key: CustomerKey) -> None:
        assert await memory.profile(key) == Profile()
        assert await memory.count(key) == 0
        assert await memory.recent(key, 10) == []
        assert await memory.window(key, 1000) == []
        assert (await memory.export(key))["messages"] == []

    async def test_save_summary_replaces_and_never_moves_backwards(
            self, memory: MemoryStore, key: CustomerKey) -> None:
        await memory.save_summary(key, "met at the fair", 5)
        await memory.save_summary(key, "met at the fair; wants blue shoes", 9)
        await memory.save_summary(key, "stale summarizer", 7)
        prof = await memory.profile(key)
        assert (prof.summary, prof.summarized_upto) == ("met at the fair; wants blue shoes", 9)
        await memory.save_summary(key, "rewritten, same span", 9)
        assert (await memory.profile(key)).summary == "rewritten, same span"

    async def test_merge_facts_adds_and_updates_by_key(
            self, memory: MemoryStore, key: CustomerKey) -> None:
        await memory.save_summary(key, "kept", 3)
        await memory.merge_facts(key, [Fact("dog_name", "Rex"), Fact("budget", "100", "purchase"),
                                       Fact("shoe.size", "42"), Fact("$weird", "ok")])
        await memory.merge_facts(key, [Fact("dog_name", "Max", "preference"),
                                       Fact("city", "Lima"), Fact("city", "Cusco")])
        prof = await memory.profile(key)
        assert {k: (f.value, f.category) for k, f in prof.facts.items()} == {
            "dog_name": ("Max", "preference"), "budget": ("100", "purchase"),
            "shoe.size": ("42", "detail"), "$weird": ("ok", "detail"), "city": ("Cusco", "detail")}
        assert all(f.key == k and f.updated_at is not None for k, f in prof.facts.items())
        assert (prof.summary, prof.summarized_upto) == ("kept", 3)

    async def test_concurrent_merges_lose_nothing(
            self, memory: MemoryStore, key: CustomerKey) -> None:
        # The customer does not exist yet: the first writers also race to create it.
        await asyncio.gather(
            *(memory.merge_facts(key, [Fact(f"k{i}", str(i))]) for i in range(20)),
            memory.save_summary(key, "raced", 4),
            memory.add_stage_change(key, StageChange(None, Stage.LEAD, "hello", T0)))
        prof = await memory.profile(key)
        assert {k: f.value for k, f in prof.facts.items()} == {f"k{i}": str(i) for i in range(20)}
        assert (prof.summary, prof.summarized_upto) == ("raced", 4)
        assert len(prof.stages) == 1

    async def test_stage_changes_are_kept_in_order(
            self, memory: MemoryStore, key: CustomerKey) -> None:
        changes = [StageChange(None, Stage.LEAD, "said hi", T0),
                   StageChange(Stage.LEAD, Stage.CUSTOMER, "bought shoes", T0 + timedelta(days=1)),
                   StageChange(Stage.CUSTOMER, Stage.CHURNED, "moved away", T0 + timedelta(days=9))]
        for change in changes:
            await memory.add_stage_change(key, change)
        assert (await memory.profile(key)).stages == changes

    async def test_export_holds_everything(self, memory: MemoryStore, key: CustomerKey) -> None:
        stored = await memory.append(key, [line("hola", msg_id="E1"), line("buenas", role=Role.AGENT)])
        await memory.save_summary(key, "a summary", stored[0].seq)
        await memory.merge_facts(key, [Fact("name", "Ana", "detail")])
        await memory.add_stage_change(key, StageChange(None, Stage.LEAD, "first contact", T0))
        data = json.loads(json.dumps(await memory.export(key)))
        assert (data["summary"], data["summarized_upto"]) == ("a summary", stored[0].seq)
        assert [(f["key"], f["value"]) for f in data["facts"]] == [("name", "Ana")]
        assert [(s["from"], s["to"], s["reason"]) for s in data["stages"]] == [
            (None, "lead", "first contact")]
        assert [(m["seq"], m["role"], m["text"], m["msg_id"]) for m in data["messages"]] == [
            (stored[0].seq, "customer", "hola", "E1"), (stored[1].seq, "agent", "buenas", "")]

    async def test_forget_erases_one_customer_only(
            self, memory: MemoryStore, key: CustomerKey) -> None:
        other = CustomerKey(key.tenant, "+5491100000000")
        for k in (key, other):
            await memory.append(k, [*lines("x", 3), line("id", msg_id="F1")])
            await memory.save_summary(k, f"summary of {k.phone}", 2)
            await memory.merge_facts(k, [Fact("pet", "cat")])
            await memory.add_stage_change(k, StageChange(None, Stage.LEAD, "hi", T0))
        await memory.forget(key)
        assert await memory.profile(key) == Profile()
        assert await memory.count(key) == 0
        assert (await memory.export(key))["messages"] == []
        kept = await memory.profile(other)
        assert await memory.count(other) == 4
        assert (kept.summary, list(kept.facts), len(kept.stages)) == (
            f"summary of {other.phone}", ["pet"], 1)
        # A forgotten customer can start again, and the old msg_id is free again.
        again = await memory.append(key, [line("back", msg_id="F1")])
        assert texts(again) == ["back"] and again[0].seq > 0

    async def test_customers_never_see_each_other(
            self, memory: MemoryStore, tenant: str) -> None:
        same_tenant = [CustomerKey(tenant, "+111"), CustomerKey(tenant, "+222")]
        same_phone = [CustomerKey(tenant, "+333"), CustomerKey(f"{tenant}-b", "+333")]
        for k in same_tenant + same_phone:
            who = str(k)
            await memory.append(k, [line(f"secret of {who}", msg_id="SAME-ID")])
            await memory.save_summary(k, f"summary of {who}", 1)
            await memory.merge_facts(k, [Fact("owner", who)])
            await memory.add_stage_change(k, StageChange(None, Stage.LEAD, who, T0))
        for k in same_tenant + same_phone:
            who = str(k)
            prof = await memory.profile(k)
            assert texts(await memory.oldest(k, 0, 10)) == [f"secret of {who}"]
            assert await memory.count(k) == 1
            assert prof.summary == f"summary of {who}"
            assert prof.facts["owner"].value == who
            assert [s.reason for s in prof.stages] == [who]

    async def test_unicode_emoji_and_huge_text_round_trip(
            self, memory: MemoryStore, key: CustomerKey) -> None:
        odd = "Hola 👋🏽 señor — مرحبا עברית 中文 👨‍👩‍👧 e\u0301 \u200b\u202e tab\t\nnew"
        huge = ("0123456789abcdef🙂" * 6100)[:100_000]
        stored = await memory.append(key, [line(odd, msg_id="Ü-1"), line(huge)])
        assert texts(await memory.oldest(key, 0, 10)) == [odd, huge] == texts(stored)
        await memory.save_summary(key, odd, stored[1].seq)
        await memory.merge_facts(key, [Fact("émoji 🐶", odd)])
        prof = await memory.profile(key)
        assert prof.summary == odd and prof.facts["émoji 🐶"].value == odd

    async def test_nul_characters_are_replaced_not_fatal(
            self, memory: MemoryStore, key: CustomerKey) -> None:
        # PostgreSQL refuses NUL in text; every backend replaces it the same way.
        [stored] = await memory.append(key, [line("a\x00b")])
        await memory.merge_facts(key, [Fact("k\x00", "v\x00")])
        assert stored.text == "a\ufffdb"
        assert texts(await memory.recent(key, 1)) == ["a\ufffdb"]
        assert (await memory.profile(key)).facts["k\ufffd"].value == "v\ufffd"


async def test_sqlite_recent_walks_the_index_without_sorting(tmp_path: Any, tenant: str) -> None:
    # SQLite's planner is rule-based, so the plan is a stable fact worth pinning. (PostgreSQL
    # picks by statistics: on a table holding one customer a backward primary-key scan is as
    # good, so its plan is not asserted; the spy in the 5,000-line test covers every backend.)
    db = Database(f"sqlite:///{tmp_path / 'plan.db'}")
    await SqlMemoryStore(db).start()
    stmt = page_query(CustomerKey(tenant, "+1"), 0, 50, newest_first=True)
    sql = str(stmt.compile(db.engine, compile_kwargs={"literal_binds": True}))
    async with db.engine.connect() as conn:
        plan = " ".join(r[-1] for r in await conn.execute(text(f"EXPLAIN QUERY PLAN {sql}")))
    await db.close()
    assert "USING INDEX ix_memory_messages_customer_seq" in plan
    assert "TEMP B-TREE" not in plan  # no sort step: rows come off the index in order


async def _start_error(store: MongoMemoryStore) -> str:
    try:
        await store.start()
    except MemoryBackendUnavailable as exc:
        return str(exc)
    raise AssertionError("start() succeeded against a closed port")


# PyMongo 4.20 can leak a monitor socket when close() cancels it mid-connect (upstream
# PYTHON-5867, mongo-python-driver PR #2858). Only the message leaves `_start_error`, so no
# traceback keeps that socket alive past the gc.collect() below, which frees it here, under
# this filter, instead of in a later test.
@pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning")
async def test_unreachable_mongodb_fails_start_fast_and_clearly() -> None:
    store = MongoMemoryStore("mongodb://bob:s3cret@127.0.0.1:1/?serverSelectionTimeoutMS=300")
    started = time.perf_counter()
    message = await _start_error(store)
    assert time.perf_counter() - started < 3
    assert "mongodb://bob:***@127.0.0.1:1" in message and "s3cret" not in message
    assert "unreachable" in message and "WABOT_MONGODB_URL" in message
    await store.close()  # closing after a failed start is harmless
    gc.collect()


async def test_invalid_mongodb_url_is_reported_as_such() -> None:
    with pytest.raises(MemoryBackendUnavailable, match=r"invalid.*WABOT_MONGODB_URL"):
        await MongoMemoryStore("http://127.0.0.1:1").start()


def test_mask_url_hides_only_the_password() -> None:
    assert mask_url("mongodb+srv://u:p@ss@db.example.com/x?w=1") == (
        "mongodb+srv://u:***@db.example.com/x?w=1")
    assert mask_url("mongodb://127.0.0.1:27017") == "mongodb://127.0.0.1:27017"
    assert mask_url("mongodb://user@host/") == "mongodb://user@host/"
