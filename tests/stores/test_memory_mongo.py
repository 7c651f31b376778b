"""The MongoDB store's own hazards, each induced rather than hoped for: appends racing a
summarizer or a `wabot forget`, a second store in one process, failed starts, an index
conflict, a batch failing midway, stages read for nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring
from pymongo.errors import BulkWriteError

import bot.stores.memory_mongo as memory_mongo
from bot.models import CustomerKey, Stage
from bot.stores.memory_base import StageChange
from bot.stores.memory_mongo import (
    MemoryBackendUnavailable,
    MemoryMessageDoc,
    MongoMemoryStore,
)
from tests.fakes.pipeline import eventually
from tests.stores.test_memory_contract import T0, line, lines, texts

pytestmark = pytest.mark.mongo


@pytest.fixture
async def database(mongodb_url: str) -> AsyncIterator[str]:
    """A database of this test's own, dropped after."""
    name = "wabot_test_" + uuid.uuid4().hex[:12]
    yield name
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url)
    await client.drop_database(name)
    await client.close()


@pytest.fixture
async def store(mongodb_url: str, database: str) -> AsyncIterator[MongoMemoryStore]:
    s = MongoMemoryStore(mongodb_url, database)
    await s.start()
    yield s
    await s.close()


@pytest.fixture
def key(tenant: str) -> CustomerKey:
    return CustomerKey(tenant, "+5215512345678")


class HeldInserts:
    """The messages collection, with the first `insert_many` held until `release` is set."""

    def __init__(self) -> None:
        self.real = MemoryMessageDoc.get_pymongo_collection()
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    async def insert_many(self, rows: list[dict[str, Any]], **kw: Any) -> Any:
        self.calls += 1
        if self.calls == 1:
            self.arrived.set()
            await self.release.wait()
        return await self.real.insert_many(rows, **kw)


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch, store: MongoMemoryStore) -> HeldInserts:
    held = HeldInserts()
    monkeypatch.setattr(MemoryMessageDoc, "get_pymongo_collection", classmethod(lambda cls: held))
    return held


async def test_a_later_append_never_lands_before_an_earlier_one_reaches_the_summarizer(
        store: MongoMemoryStore, held: HeldInserts, key: CustomerKey) -> None:
    first = asyncio.create_task(store.append(key, lines("a", 2)))
    await held.arrived.wait()  # seqs reserved, lines not stored yet
    second = asyncio.create_task(store.append(key, lines("b", 2)))
    # The second append either finishes (the bug) or waits its turn behind the first.
    await eventually(lambda: second.done() or store.serial.waiting(key) == 2)
    seen = await store.oldest(key, 0, 100)  # what the memory keeper would fold now
    held.release.set()
    stored = await first + await second
    # Had it seen b0, b1 alone it would set summarized_upto past a0, a1: lost for good.
    assert seen == []
    assert texts(await store.oldest(key, 0, 100)) == ["a0", "a1", "b0", "b1"]
    assert [m.seq for m in stored] == sorted(m.seq for m in stored)


async def test_a_line_appended_while_another_process_forgets_is_never_lost(
        store: MongoMemoryStore, held: HeldInserts, key: CustomerKey) -> None:
    held.calls = 1  # let the first batch through; hold the next one
    await store.append(key, lines("old", 4))
    held.calls, held.arrived, held.release = 0, asyncio.Event(), asyncio.Event()
    racing = asyncio.create_task(store.append(key, [line("during")]))  # takes seq 5
    await held.arrived.wait()
    await store.forget(key)  # as `wabot forget` would, from its own process
    held.release.set()
    await racing
    after = [await store.append(key, [line(f"new{i}")]) for i in range(6)]
    # The reset counter hands out 1..5 again; seq 5 is taken, and the line must still land.
    assert all(len(stored) == 1 for stored in after)
    assert sorted(texts(await store.oldest(key, 0, 100))) == sorted(
        ["during", *(f"new{i}" for i in range(6))])
    seqs = [m.seq for m in await store.oldest(key, 0, 100)]
    assert len(seqs) == len(set(seqs)) == 7


async def test_a_counter_behind_the_stored_lines_catches_up_without_losing_a_line(
        store: MongoMemoryStore, key: CustomerKey) -> None:
    await store.append(key, lines("x", 3))
    # What a forget racing an append in another process leaves: lines above the counter.
    await memory_mongo.AgentMemory.find({"tenant": key.tenant, "phone": key.phone}).delete()
    stored = await store.append(key, lines("y", 2))
    assert [m.seq for m in stored] == [4, 5]
    assert texts(await store.oldest(key, 0, 10)) == ["x0", "x1", "x2", "y0", "y1"]


async def test_a_second_store_in_one_process_is_refused_not_silently_redirected(
        store: MongoMemoryStore, mongodb_url: str, database: str, key: CustomerKey) -> None:
    await store.append(key, [line("kept here")])
    other = MongoMemoryStore(mongodb_url, database + "_other")
    with pytest.raises(RuntimeError, match="already open in this process"):
        await other.start()
    assert texts(await store.recent(key, 5)) == ["kept here"]  # still the first database
    await store.close()
    await other.start()  # once the first is closed, another may start
    try:
        assert await other.recent(key, 5) == []
    finally:
        await other.close()
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url)
        await client.drop_database(database + "_other")
        await client.close()


async def test_an_index_conflict_at_start_is_reported_as_such_not_as_credentials(
        mongodb_url: str, database: str) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url)
    await client[database]["memory_messages"].create_index([("seq", 1)], name="customer_seq")
    await client.close()
    store = MongoMemoryStore(mongodb_url, database)
    with pytest.raises(MemoryBackendUnavailable) as caught:
        await store.start()
    message = str(caught.value)
    assert "index" in message and "drop that index" in message
    assert "user" not in message and "rights" not in message
    assert MongoMemoryStore._open is None  # the failed store let go of the process slot


async def test_a_start_failing_for_any_reason_closes_its_client(
        monkeypatch: pytest.MonkeyPatch, mongodb_url: str, database: str) -> None:
    closed: list[object] = []
    real_close = AsyncMongoClient.close

    async def spy_close(self: AsyncMongoClient[Any]) -> None:
        closed.append(self)
        await real_close(self)

    async def broken_init(**kw: Any) -> None:
        raise ValueError("a document model Beanie cannot bind")

    monkeypatch.setattr(AsyncMongoClient, "close", spy_close)
    monkeypatch.setattr(memory_mongo, "init_beanie", broken_init)
    store = MongoMemoryStore(mongodb_url, database)
    with pytest.raises(ValueError, match="cannot bind"):
        await store.start()
    assert len(closed) == 1
    assert MongoMemoryStore._open is None


async def test_the_urls_appname_is_kept(mongodb_url: str, database: str) -> None:
    store = MongoMemoryStore(mongodb_url.rstrip("/") + "/?appName=shop-7", database)
    await store.start()
    try:
        assert store._client is not None
        assert store._client.options.pool_options.metadata["application"] == {"name": "shop-7"}
    finally:
        await store.close()
    plain = MongoMemoryStore(mongodb_url, database)
    await plain.start()
    try:
        assert plain._client is not None
        assert plain._client.options.pool_options.metadata["application"] == {"name": "wabot"}
    finally:
        await plain.close()


async def test_a_batch_failing_midway_stores_nothing_and_a_retry_stores_each_line_once(
        store: MongoMemoryStore, mongodb_url: str, database: str, key: CustomerKey) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url)
    db = client[database]
    await store.append(key, [line("before")])
    # A server-side refusal of one line (not a duplicate): a validator.
    await db.command("collMod", "memory_messages", validator={"text": {"$ne": "poison"}})
    batch = [line("a"), line("poison"), line("c", msg_id="WA-C"), line("d")]
    with pytest.raises(BulkWriteError):
        await store.append(key, batch)
    assert texts(await store.oldest(key, 0, 10)) == ["before"]
    await db.command("collMod", "memory_messages", validator={})
    await client.close()
    retried = await store.append(key, batch)
    assert texts(retried) == ["a", "poison", "c", "d"]
    assert texts(await store.oldest(key, 0, 10)) == ["before", "a", "poison", "c", "d"]


class FindReplies(monitoring.CommandListener):
    """The documents each `find` on the customers' collection brought back."""

    def __init__(self) -> None:
        self.docs: list[dict[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        pass

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        cursor = event.reply.get("cursor", {}) if event.command_name == "find" else {}
        if cursor.get("ns", "").endswith(".agent_memory"):
            self.docs.extend(cursor.get("firstBatch", []))

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_a_turns_profile_leaves_the_stages_on_the_server(
        mongodb_url: str, database: str, key: CustomerKey) -> None:
    replies = FindReplies()
    store = MongoMemoryStore(mongodb_url, database)
    store._options["event_listeners"] = [replies]
    await store.start()
    try:
        for i in range(50):
            await store.add_stage_change(key, StageChange(None, Stage.LEAD, f"loop {i}", T0))
        await store.save_summary(key, "likes blue", 3)
        replies.docs.clear()
        turn = await store.profile(key, with_stages=False)
        assert (turn.summary, turn.stages) == ("likes blue", [])
        assert len(replies.docs) == 1 and "stages" not in replies.docs[0]
        assert len((await store.profile(key)).stages) == 50
    finally:
        await store.close()


