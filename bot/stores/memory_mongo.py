"""Agent memory in MongoDB: Beanie 2 documents on PyMongo's native async client.

One `AgentMemory` document per customer (summary, facts, stages and the seq counter) and one
`MemoryMessageDoc` per line of history, so no customer document grows toward the 16 MB limit.
Every write is a single atomic update or insert guarded by a unique index; nothing is read,
changed in Python and written back.

Beanie binds document classes to one database per process (`init_beanie` sets class-level
collections), so a process runs one `MongoMemoryStore` at a time.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from beanie import Document, UpdateResponse, init_beanie
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

MSG_ID_INDEX = "customer_msg_id"
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
            IndexModel([*_CUSTOMER, ("seq", ASCENDING)], unique=True, name="customer_seq"),
            # Partial indexes cannot say `$ne: ""`; `$gt: ""` matches every non-empty string.
            IndexModel([*_CUSTOMER, ("msg_id", ASCENDING)], unique=True, name=MSG_ID_INDEX,
                       partialFilterExpression={"msg_id": {"$gt": ""}}),
        ]


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


def scrub(text: str) -> str:
    # NUL is replaced as in the SQL store (PostgreSQL refuses it), so every backend returns
    # the same text; BSON field names could not hold it at all.
    return text.replace("\x00", "\ufffd")


def _slot(fact_key: str) -> str:
    # A fact key becomes a field name: escape what MongoDB reads as path syntax ('.', '$').
    return fact_key.replace("%", "%25").replace(".", "%2E").replace("$", "%24") or "%"


def _customer(key: CustomerKey) -> dict[str, Any]:
    return {"tenant": key.tenant, "phone": key.phone}


def _message(doc: MemoryMessageDoc) -> MemoryMessage:
    return MemoryMessage(role=ROLES[doc.role], text=doc.text, at=_as_utc(doc.at), kind=doc.kind,
                         msg_id=doc.msg_id, seq=doc.seq)


def _duplicates(exc: BulkWriteError) -> set[int]:
    """Positions refused only because their msg_id is already stored; re-raise anything else."""
    errors = exc.details.get("writeErrors", [])
    dup = {e["index"] for e in errors if e.get("code") == 11000 and (
        "msg_id" in e.get("keyPattern", {}) or MSG_ID_INDEX in e.get("errmsg", ""))}
    if len(dup) != len(errors) or exc.details.get("writeConcernErrors"):
        raise exc
    return dup


class MongoMemoryStore(MemoryStore):
    def __init__(self, url: str, database: str | None = None, *, max_pool_size: int = 50,
                 server_selection_timeout_ms: int = 5000, connect_timeout_ms: int = 5000,
                 socket_timeout_ms: int = 30000) -> None:
        self._url = url
        self._database = database  # None: the URL's database, else "wabot"
        self._options = {"maxPoolSize": max_pool_size, "connectTimeoutMS": connect_timeout_ms,
                         "serverSelectionTimeoutMS": server_selection_timeout_ms,
                         "socketTimeoutMS": socket_timeout_ms}
        self._client: AsyncMongoClient[dict[str, Any]] | None = None

    def _client_options(self) -> dict[str, Any]:
        # PyMongo lets keyword options override the URL; here the operator's URL wins.
        in_url = {k.lower() for k in parse_qs(urlsplit(self._url).query)}
        return {k: v for k, v in self._options.items() if k.lower() not in in_url}

    async def start(self) -> None:
        if self._client is not None:
            return
        where = mask_url(self._url)
        try:
            # tz_aware: without it PyMongo hands back naive datetimes.
            self._client = AsyncMongoClient(self._url, tz_aware=True, appname="wabot",
                                            **self._client_options())
        except (ConfigurationError, ValueError, TypeError) as exc:
            raise MemoryBackendUnavailable(
                f"MongoDB URL {where} is invalid: {exc} — check WABOT_MONGODB_URL") from exc
        try:
            # Ping first: the client connects lazily, so this is where "unreachable" shows.
            await self._client.admin.command("ping")
            db = (self._client[self._database] if self._database
                  else self._client.get_default_database("wabot"))
            await init_beanie(database=db, document_models=[AgentMemory, MemoryMessageDoc])
        except OperationFailure as exc:  # reached, but said no: credentials, rights, indexes
            await self.close()
            raise MemoryBackendUnavailable(
                f"MongoDB at {where} refused wabot: {exc} — check the user, its rights and "
                "the database in WABOT_MONGODB_URL") from exc
        except PyMongoError as exc:
            await self.close()
            raise MemoryBackendUnavailable(
                f"MongoDB at {where} is unreachable: {exc} — check WABOT_MONGODB_URL") from exc

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
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
        # One $inc reserves a block of seqs for the batch; a skipped duplicate leaves a gap.
        doc = await self._upsert(key, {"$inc": {"next_seq": len(messages)}})
        first = doc.next_seq - len(messages) + 1
        docs = [MemoryMessageDoc(tenant=key.tenant, phone=key.phone, seq=first + i,
                                 role=m.role.value, text=scrub(m.text), at=_bson_time(m.at),
                                 kind=m.kind, msg_id=m.msg_id)
                for i, m in enumerate(messages)]
        skipped: set[int] = set()
        try:
            # Unordered: a redelivered msg_id is refused alone, the rest still land.
            await MemoryMessageDoc.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            skipped = _duplicates(exc)
        return [_message(d) for i, d in enumerate(docs) if i not in skipped]

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
        doc = await AgentMemory.find_one(_customer(key))
        if doc is None:
            return Profile()
        facts = {f.key: Fact(f.key, f.value, f.category,
                             _as_utc(f.updated_at) if f.updated_at else None)
                 for f in doc.facts.values()}
        stages = [StageChange(Stage(s.from_stage) if s.from_stage else None, Stage(s.to_stage),
                              s.reason, _as_utc(s.at)) for s in doc.stages] if with_stages else []
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
        await MemoryMessageDoc.find(_customer(key)).delete()
        await AgentMemory.find(_customer(key)).delete()
