"""Agent memory in MongoDB: Beanie 2 documents on PyMongo's native async client.

One `AgentMemory` document per customer (summary, facts, stages and the seq counter) and one
`MemoryMessageDoc` per line of history, so no customer document grows toward the 16 MB limit.
Every write is a single atomic update or insert guarded by a unique index; nothing is read,
changed in Python and written back.

Beanie binds document classes to one database per process (`init_beanie` sets class-level
collections), so a process runs one `MongoMemoryStore` at a time: starting a second one while
the first is open is refused.

Seqs are reserved with `$inc` on the customer's document, then the lines are inserted. Appends
for one customer are serialized in the process (every append comes from the daemon), so a
reader never sees a later batch before an earlier one. Seqs are never handed out twice: if a
seq is found taken (a `wabot forget` in another process raced an append and reset the
counter) the counter moves past the highest stored seq and the batch is inserted again.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from beanie import Document, UpdateResponse, init_beanie
from bson import ObjectId
from pydantic import BaseModel, Field
from pymongo import ASCENDING, AsyncMongoClient, IndexModel
from pymongo.errors import (
    BulkWriteError,
    ConfigurationError,
    DuplicateKeyError,
    OperationFailure,
    PyMongoError,
)

from bot.models import CustomerKey, MemoryMessage, Stage
from bot.stores.memory_base import ROLES, Fact, MemoryStore, Profile, StageChange
from bot.text import scrub  # also for BSON field names, which could not hold NUL at all

MSG_ID_INDEX = "customer_msg_id"
SEQ_INDEX = "customer_seq"
INDEX_CONFLICT = {85, 86}  # IndexOptionsConflict, IndexKeySpecsConflict
MAX_STAGES = 1000  # a runaway loop must not bloat the document that also allocates seqs
_CUSTOMER = [("tenant", ASCENDING), ("phone", ASCENDING)]


class MemoryBackendUnavailable(RuntimeError):
    """The memory database cannot be used; the message says what to check."""


class FactDoc(BaseModel):
    key: str
    value: str
    category: str = "detail"
    updated_at: datetime | None = None


class StageDoc(BaseModel):
    from_stage: str | None = None
    to_stage: str
    reason: str = ""
    at: datetime


class AgentMemory(Document):
    tenant: str
    phone: str
    summary: str = ""
    summarized_upto: int = 0
    facts: dict[str, FactDoc] = Field(default_factory=dict)  # slot(fact.key) → fact
    stages: list[StageDoc] = Field(default_factory=list)
    next_seq: int = 0  # the last seq handed out

    class Settings:
        name = "agent_memory"
        indexes: ClassVar[list[IndexModel]] = [IndexModel(_CUSTOMER, unique=True, name="customer")]


class MemoryMessageDoc(Document):
    tenant: str
    phone: str
    seq: int
    role: str
    text: str
    at: datetime
    kind: str = "chat"
    msg_id: str = ""

    class Settings:
        name = "memory_messages"
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([*_CUSTOMER, ("seq", ASCENDING)], unique=True, name=SEQ_INDEX),
            # Partial indexes cannot say `$ne: ""`; `$gt: ""` matches every non-empty string.
            IndexModel([*_CUSTOMER, ("msg_id", ASCENDING)], unique=True, name=MSG_ID_INDEX,
                       partialFilterExpression={"msg_id": {"$gt": ""}}),
        ]


class ProfileView(BaseModel):
    """The customer's document without its stages (a turn does not need them)."""

    summary: str = ""
    summarized_upto: int = 0
    facts: dict[str, FactDoc] = Field(default_factory=dict)


# What a customer's document holds before anything is known; `$setOnInsert` writes the
# fields that the same update does not already touch (MongoDB refuses both on one path).
_DEFAULTS: dict[str, Any] = {"summary": "", "summarized_upto": 0, "facts": {}, "stages": [],
                             "next_seq": 0}


def mask_url(url: str) -> str:
    """The URL with its password replaced, fit for logs and error messages."""
    # Greedy up to the last '@': a password typed with a raw '@' or '/' (an invalid URL, the
    # very case that ends up in an error message) is still hidden whole.
    return re.sub(r"://([^:/@]*):.*@", r"://\1:***@", url)


def _as_utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _bson_time(at: datetime) -> datetime:
    # BSON dates hold milliseconds: trim up front so what `append` returns equals what is read.
    at = _as_utc(at)
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def _slot(fact_key: str) -> str:
    # A fact key becomes a field name: escape what MongoDB reads as path syntax ('.', '$').
    return fact_key.replace("%", "%25").replace(".", "%2E").replace("$", "%24") or "%"


def _customer(key: CustomerKey) -> dict[str, Any]:
    return {"tenant": key.tenant, "phone": key.phone}


def _message(doc: MemoryMessageDoc) -> MemoryMessage:
    return MemoryMessage(role=ROLES[doc.role], text=doc.text, at=_as_utc(doc.at), kind=doc.kind,
                         msg_id=doc.msg_id, seq=doc.seq)


def _on_index(error: dict[str, Any], index: str, field: str) -> bool:
    """Whether a write error is a duplicate key on `index` (named in the message, or its
    last key field in `keyPattern`)."""
    return error.get("code") == 11000 and (
        field in error.get("keyPattern", {}) or index in error.get("errmsg", ""))


class _SeqTaken(Exception):
    """A reserved seq was already stored: the counter is behind the messages."""


class _Serial:
    """One holder at a time per customer; the lock is dropped when nobody holds or wants it."""

    def __init__(self) -> None:
        self._locks: dict[CustomerKey, tuple[asyncio.Lock, int]] = {}

    def waiting(self, key: CustomerKey) -> int:
        """How many callers hold or wait for this customer's turn."""
        return self._locks.get(key, (None, 0))[1]

    @asynccontextmanager
    async def hold(self, key: CustomerKey) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class MongoMemoryStore(MemoryStore):
    _open: ClassVar[MongoMemoryStore | None] = None  # the one started store of this process

    def __init__(self, url: str, database: str | None = None, *, max_pool_size: int = 50,
                 server_selection_timeout_ms: int = 5000, connect_timeout_ms: int = 5000,
                 socket_timeout_ms: int = 30000) -> None:
        self._url = url
        self._database = database  # None: the URL's database, else "wabot"
        self._options = {"maxPoolSize": max_pool_size, "connectTimeoutMS": connect_timeout_ms,
                         "serverSelectionTimeoutMS": server_selection_timeout_ms,
                         "socketTimeoutMS": socket_timeout_ms, "appName": "wabot"}
        self._client: AsyncMongoClient[dict[str, Any]] | None = None
        self.serial = _Serial()  # appends, one at a time per customer

    def _client_options(self) -> dict[str, Any]:
        # PyMongo lets keyword options override the URL; here the operator's URL wins.
        in_url = {k.lower() for k in parse_qs(urlsplit(self._url).query)}
        return {k: v for k, v in self._options.items() if k.lower() not in in_url}

    async def start(self) -> None:
        if self._client is not None:
            return
        if MongoMemoryStore._open is not None:
            raise RuntimeError(
                "a MongoDB memory store is already open in this process (Beanie binds its "
                "documents to one database per process): close it before starting another")
        where = mask_url(self._url)
        try:
            # tz_aware: without it PyMongo hands back naive datetimes.
            client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
                self._url, tz_aware=True, **self._client_options())
        except (ConfigurationError, ValueError, TypeError) as exc:
            raise MemoryBackendUnavailable(
                f"MongoDB URL {where} is invalid: {exc} — check WABOT_MONGODB_URL") from exc
        MongoMemoryStore._open, self._client = self, client
        try:
            # Ping first: the client connects lazily, so this is where "unreachable" shows.
            await client.admin.command("ping")
            db = (client[self._database] if self._database
                  else client.get_default_database("wabot"))
            await init_beanie(database=db, document_models=[AgentMemory, MemoryMessageDoc])
        except OperationFailure as exc:  # reached, but said no
            await self.close()
            if exc.code in INDEX_CONFLICT:
                raise MemoryBackendUnavailable(
                    f"MongoDB at {where}: an index wabot needs exists with other keys or "
                    f"options: {exc} — drop that index (wabot recreates it) or use another "
                    "database") from exc
            raise MemoryBackendUnavailable(
                f"MongoDB at {where} refused wabot: {exc} — check the user, its rights and "
                "the database in WABOT_MONGODB_URL") from exc
        except PyMongoError as exc:
            await self.close()
            raise MemoryBackendUnavailable(
                f"MongoDB at {where} is unreachable: {exc} — check WABOT_MONGODB_URL") from exc
        except BaseException:
            await self.close()  # anything else (a bug, a cancelled start) must not leak the client
            raise

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            if MongoMemoryStore._open is self:
                MongoMemoryStore._open = None
            await client.close()

    async def _upsert(self, key: CustomerKey, update: dict[str, Any]) -> AgentMemory:
        """Apply `update` to the customer's document, creating it if missing, atomically."""
        touched = {path.split(".")[0] for op in update.values() for path in op}
        on_insert = {k: v for k, v in _DEFAULTS.items() if k not in touched}
        for attempt in (1, 2):
            try:
                doc = await AgentMemory.find_one(_customer(key)).update(
                    {**update, "$setOnInsert": on_insert},
                    upsert=True, response_type=UpdateResponse.NEW_DOCUMENT)
            except DuplicateKeyError:
                # Two upserts of a new customer both tried to insert; the loser now matches.
                if attempt == 2:
                    raise
                continue
            if isinstance(doc, AgentMemory):
                return doc
        raise AssertionError("upsert with NEW_DOCUMENT returned no document")

    async def append(self, key: CustomerKey, messages: list[MemoryMessage]) -> list[MemoryMessage]:
        if not messages:
            return []
        async with self.serial.hold(key):
            try:
                return await self._insert(key, messages)
            except _SeqTaken:
                await self._catch_up(key)
            try:
                return await self._insert(key, messages)
            except _SeqTaken as again:  # still behind: something else writes seqs; say so
                raise again.__cause__ or again from None

    async def _insert(self, key: CustomerKey, messages: list[MemoryMessage]) -> list[MemoryMessage]:
        """Reserve seqs and insert the batch, all or nothing (bar msg_ids already stored)."""
        # One $inc reserves a block of seqs for the batch; a skipped duplicate leaves a gap.
        doc = await self._upsert(key, {"$inc": {"next_seq": len(messages)}})
        first = doc.next_seq - len(messages) + 1
        docs = [MemoryMessageDoc(tenant=key.tenant, phone=key.phone, seq=first + i,
                                 role=m.role.value, text=scrub(m.text), at=_bson_time(m.at),
                                 kind=m.kind, msg_id=m.msg_id)
                for i, m in enumerate(messages)]
        ids = [ObjectId() for _ in docs]
        rows = [{"_id": i, **d.model_dump(exclude={"id", "revision_id"})}
                for i, d in zip(ids, docs, strict=True)]
        try:
            # Unordered: a redelivered msg_id is refused alone, the rest still land.
            await MemoryMessageDoc.get_pymongo_collection().insert_many(rows, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            skipped = {e["index"] for e in errors if _on_index(e, MSG_ID_INDEX, "msg_id")}
            if len(skipped) == len(errors) and not exc.details.get("writeConcernErrors"):
                return [_message(d) for i, d in enumerate(docs) if i not in skipped]
            # Anything else: take back what landed, so a retry stores every line once.
            failed = {e["index"] for e in errors}
            landed = [ids[i] for i in range(len(ids)) if i not in failed]
            await MemoryMessageDoc.get_pymongo_collection().delete_many({"_id": {"$in": landed}})
            if all(_on_index(e, SEQ_INDEX, "seq") or _on_index(e, MSG_ID_INDEX, "msg_id")
                   for e in errors):
                raise _SeqTaken from exc
            raise
        return [_message(d) for d in docs]

    async def _catch_up(self, key: CustomerKey) -> None:
        """Move the customer's counter past the highest stored seq."""
        last = await MemoryMessageDoc.find(_customer(key)).sort("-seq").limit(1).to_list()
        if last:
            await self._upsert(key, {"$max": {"next_seq": last[0].seq}})

    def _after(self, key: CustomerKey, after_seq: int) -> dict[str, Any]:
        return {**_customer(key), "seq": {"$gt": after_seq}}

    async def recent(self, key: CustomerKey, limit: int, after_seq: int = 0) -> list[MemoryMessage]:
        if limit <= 0:  # MongoDB reads limit 0 as "no limit"
            return []
        docs = await (MemoryMessageDoc.find(self._after(key, after_seq))
                      .sort("-seq").limit(limit).to_list())
        return [_message(d) for d in reversed(docs)]

    async def oldest(self, key: CustomerKey, after_seq: int, limit: int) -> list[MemoryMessage]:
        if limit <= 0:
            return []
        docs = await (MemoryMessageDoc.find(self._after(key, after_seq))
                      .sort("+seq").limit(limit).to_list())
        return [_message(d) for d in docs]

    async def count(self, key: CustomerKey, after_seq: int = 0) -> int:
        return await MemoryMessageDoc.find(self._after(key, after_seq)).count()

    async def profile(self, key: CustomerKey, *, with_stages: bool = True) -> Profile:
        doc: AgentMemory | ProfileView | None
        if with_stages:
            doc = await AgentMemory.find_one(_customer(key))
        else:  # projected: up to MAX_STAGES stages stay on the server
            doc = await AgentMemory.find_one(_customer(key), projection_model=ProfileView)
        if doc is None:
            return Profile()
        facts = {f.key: Fact(f.key, f.value, f.category,
                             _as_utc(f.updated_at) if f.updated_at else None)
                 for f in doc.facts.values()}
        stages = [StageChange(Stage(s.from_stage) if s.from_stage else None, Stage(s.to_stage),
                              s.reason, _as_utc(s.at))
                  for s in doc.stages] if isinstance(doc, AgentMemory) else []
        return Profile(doc.summary, doc.summarized_upto, facts, stages)

    async def save_summary(self, key: CustomerKey, summary: str, upto_seq: int) -> None:
        await self._upsert(key, {})
        # The filter makes a stale summarizer a no-op instead of rewinding the summary.
        await AgentMemory.find_one({**_customer(key), "summarized_upto": {"$lte": upto_seq}}
                                   ).update({"$set": {"summary": scrub(summary),
                                                      "summarized_upto": upto_seq}})

    async def merge_facts(self, key: CustomerKey, facts: list[Fact]) -> None:
        if not facts:
            return
        now = datetime.now(UTC)
        # One $set per fact field: concurrent merges of other keys are never overwritten.
        fields = {f"facts.{_slot(scrub(f.key))}": {
            "key": scrub(f.key), "value": scrub(f.value), "category": scrub(f.category),
            "updated_at": _bson_time(f.updated_at or now)} for f in facts}
        await self._upsert(key, {"$set": fields})

    async def add_stage_change(self, key: CustomerKey, change: StageChange) -> None:
        stage = {"from_stage": change.from_stage.value if change.from_stage else None,
                 "to_stage": change.to_stage.value, "reason": scrub(change.reason),
                 "at": _bson_time(change.at)}
        await self._upsert(key, {"$push": {"stages": {"$each": [stage], "$slice": -MAX_STAGES}}})

    async def forget(self, key: CustomerKey) -> None:
        # Profile (and counter) first, then the lines: an append racing this (from the daemon,
        # while `wabot forget` runs in another process) either lands before the lines go and
        # is erased, or after and is kept; a seq it took that a new counter hands out again
        # is caught by `append` (the counter catches up), so no line is lost either way.
        await AgentMemory.find(_customer(key)).delete()
        await MemoryMessageDoc.find(_customer(key)).delete()
