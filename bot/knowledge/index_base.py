"""The knowledge index seam: documents in, ranked hits out, everything keyed by tenant.

`SqlKnowledgeIndex` holds what both SQL backends share (the item, source and vector tables
in the same database as the rest of wabot); each backend adds its full-text index and its
ranking: `index_sqlite` (FTS5, BM25) and `index_postgres` (tsvector, trigram).
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import SQLModel

from bot.knowledge.terms import term_text, terms
from bot.stores.db import SCHEMA, Database, UTCDateTime

PRODUCT = "product"
DOCUMENT = "document"
KINDS = (PRODUCT, DOCUMENT)
MAX_VECTOR_SCAN = 50_000  # cosine in Python: past this, keyword search alone

ITEMS = Table(
    "knowledge_items", SQLModel.metadata,
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
           autoincrement=True),
    Column("tenant", String(128), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("source", String(512), nullable=False),
    Column("position", Integer, nullable=False),
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("facts", Text, nullable=False),  # JSON: price, currency, stock, sku, image …
    Column("title_terms", Text, nullable=False),
    Column("terms", Text, nullable=False),
    Index("ix_knowledge_items_source", "tenant", "source", "position"),
)
SOURCES = Table(
    "knowledge_sources", SQLModel.metadata,
    Column("tenant", String(128), primary_key=True),
    Column("source", String(512), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("items", Integer, nullable=False),
    Column("indexed_at", UTCDateTime, nullable=False),
)
VECTORS = Table(
    "knowledge_vectors", SQLModel.metadata,
    Column("item_id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("tenant", String(128), nullable=False, index=True),
    Column("model", String(128), nullable=False),
    Column("vector", Text, nullable=False),  # JSON list of floats
)
TABLES = [ITEMS, SOURCES, VECTORS]


@dataclass(frozen=True, slots=True)
class Doc:
    """One searchable unit: a product, or a chunk of a document."""

    kind: str
    source: str  # "catalog" or the document's path under knowledge_dir
    position: int  # order within the source
    title: str
    body: str
    facts: dict[str, Any] = field(default_factory=dict)
    keywords: str = ""  # searched with the title (sku, variants), not shown


@dataclass(frozen=True, slots=True)
class Hit:
    id: int
    kind: str
    source: str
    position: int
    title: str
    body: str
    facts: dict[str, Any]
    score: float


@dataclass(frozen=True, slots=True)
class SourceState:
    kind: str
    digest: str
    items: int
    indexed_at: datetime


def query_terms(query: str, limit: int = 16) -> list[str]:
    """Distinct search terms of a query, in order, at most `limit`."""
    return list(dict.fromkeys(terms(query)))[:limit]


class KnowledgeIndex(ABC):
    """Per-tenant storage and search of knowledge items."""

    name: str = ""
    notes: list[str]  # what this backend could not enable (a missing extension), for doctor

    @abstractmethod
    async def start(self) -> None:
        """Create what the backend needs (tables, full-text index); idempotent."""

    @abstractmethod
    async def replace_source(self, tenant: str, source: str, kind: str, digest: str,
                             docs: Sequence[Doc], now: datetime) -> list[int]:
        """Atomically replace everything a source contributed; returns the new item ids."""

    @abstractmethod
    async def remove_source(self, tenant: str, source: str) -> None: ...

    @abstractmethod
    async def sources(self, tenant: str) -> dict[str, SourceState]: ...

    @abstractmethod
    async def search(self, tenant: str, query: str, kinds: Iterable[str] = KINDS,
                     limit: int = 5) -> list[Hit]:
        """Keyword search, best first; an empty list when nothing matches."""

    @abstractmethod
    async def items(self, tenant: str, ids: Sequence[int]) -> list[Hit]: ...

    @abstractmethod
    async def find_product(self, tenant: str, ref: str) -> Hit | None:
        """The product whose SKU or name (ignoring case) is exactly `ref`."""

    @abstractmethod
    async def put_vectors(self, tenant: str, model: str,
                          vectors: Sequence[tuple[int, list[float]]]) -> None: ...

    @abstractmethod
    async def nearest(self, tenant: str, model: str, vector: list[float],
                      kinds: Iterable[str] = KINDS, limit: int = 20) -> list[tuple[int, float]]:
        """(item id, cosine similarity), best first."""

    @abstractmethod
    async def forget_tenant(self, tenant: str) -> None:
        """Everything of a tenant (a business leaving, or a simulation run's cleanup)."""


def _hit(row: Any, score: float = 0.0) -> Hit:
    return Hit(int(row.id), row.kind, row.source, int(row.position), row.title, row.body,
               json.loads(row.facts), score)


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0


class SqlKnowledgeIndex(KnowledgeIndex):
    """Shared SQL: items, sources and vectors; the backends add full text."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.notes = []

    async def start(self) -> None:
        async with self.db.begin(serial=SCHEMA) as conn:
            await conn.run_sync(SQLModel.metadata.create_all, tables=TABLES)
        await self._start_fulltext()

    @abstractmethod
    async def _start_fulltext(self) -> None: ...

    @abstractmethod
    async def _index_rows(self, conn: AsyncConnection, tenant: str, source: str) -> None:
        """Bring the full-text index up to date with the source's rows just inserted."""

    @abstractmethod
    async def _unindex_rows(self, conn: AsyncConnection, tenant: str,
                            source: str | None) -> None:
        """Drop the source's (None: the tenant's) rows from the full-text index."""

    async def replace_source(self, tenant: str, source: str, kind: str, digest: str,
                             docs: Sequence[Doc], now: datetime) -> list[int]:
        rows = [{"tenant": tenant, "kind": d.kind, "source": source, "position": d.position,
                 "title": d.title, "body": d.body,
                 "facts": json.dumps(d.facts, ensure_ascii=False, default=str),
                 "title_terms": term_text(f"{d.title} {d.keywords}"),
                 "terms": term_text(f"{d.title} {d.keywords} {d.body}")} for d in docs]
        # Every node indexes the profile it was started with: one source at a time.
        async with self.db.begin(serial=f"knowledge:{tenant}:{source}") as conn:
            await self._delete(conn, tenant, source)
            if rows:
                await conn.execute(insert(ITEMS), rows)
                await self._index_rows(conn, tenant, source)
            await conn.execute(insert(SOURCES).values(
                tenant=tenant, source=source, kind=kind, digest=digest, items=len(rows),
                indexed_at=now))
            result = await conn.execute(
                select(ITEMS.c.id).where(ITEMS.c.tenant == tenant, ITEMS.c.source == source)
                .order_by(ITEMS.c.position))
            return [int(r) for r in result.scalars()]

    async def _delete(self, conn: AsyncConnection, tenant: str, source: str) -> None:
        await self._unindex_rows(conn, tenant, source)
        ids = select(ITEMS.c.id).where(ITEMS.c.tenant == tenant, ITEMS.c.source == source)
        await conn.execute(delete(VECTORS).where(VECTORS.c.item_id.in_(ids)))
        await conn.execute(delete(ITEMS).where(ITEMS.c.tenant == tenant,
                                               ITEMS.c.source == source))
        await conn.execute(delete(SOURCES).where(SOURCES.c.tenant == tenant,
                                                 SOURCES.c.source == source))

    async def remove_source(self, tenant: str, source: str) -> None:
        async with self.db.begin(serial=f"knowledge:{tenant}:{source}") as conn:
            await self._delete(conn, tenant, source)

    async def sources(self, tenant: str) -> dict[str, SourceState]:
        async with self.db.connect() as conn:
            result = await conn.execute(select(SOURCES).where(SOURCES.c.tenant == tenant))
            return {r.source: SourceState(r.kind, r.digest, r.items, r.indexed_at)
                    for r in result}

    async def items(self, tenant: str, ids: Sequence[int]) -> list[Hit]:
        if not ids:
            return []
        async with self.db.connect() as conn:
            result = await conn.execute(
                select(ITEMS).where(ITEMS.c.tenant == tenant, ITEMS.c.id.in_(list(ids))))
            by_id = {int(r.id): _hit(r) for r in result}
        return [by_id[i] for i in ids if i in by_id]

    async def find_product(self, tenant: str, ref: str) -> Hit | None:
        ref = ref.strip()
        sku = json.dumps(ref, ensure_ascii=False)
        q = (select(ITEMS).where(ITEMS.c.tenant == tenant, ITEMS.c.kind == PRODUCT)
             .where(or_(func.lower(ITEMS.c.title) == ref.lower(),
                        ITEMS.c.facts.contains(f'"sku": {sku}', autoescape=True)))
             .order_by(ITEMS.c.position))
        async with self.db.connect() as conn:
            rows = [_hit(r) for r in await conn.execute(q.limit(20))]
        exact_sku = [h for h in rows if h.facts.get("sku") == ref]
        best = exact_sku or rows
        return best[0] if best else None

    async def put_vectors(self, tenant: str, model: str,
                          vectors: Sequence[tuple[int, list[float]]]) -> None:
        if not vectors:
            return
        async with self.db.begin() as conn:
            await conn.execute(delete(VECTORS).where(
                VECTORS.c.item_id.in_([i for i, _ in vectors])))
            await conn.execute(insert(VECTORS), [
                {"item_id": i, "tenant": tenant, "model": model, "vector": json.dumps(v)}
                for i, v in vectors])

    async def nearest(self, tenant: str, model: str, vector: list[float],
                      kinds: Iterable[str] = KINDS, limit: int = 20) -> list[tuple[int, float]]:
        q = (select(VECTORS.c.item_id, VECTORS.c.vector)
             .join(ITEMS, ITEMS.c.id == VECTORS.c.item_id)
             .where(VECTORS.c.tenant == tenant, VECTORS.c.model == model,
                    ITEMS.c.kind.in_(list(kinds)))
             .limit(MAX_VECTOR_SCAN))
        async with self.db.connect() as conn:
            rows = (await conn.execute(q)).all()
        scored = [(int(r.item_id), cosine(vector, json.loads(r.vector))) for r in rows]
        scored.sort(key=lambda p: p[1], reverse=True)
        return scored[:limit]

    async def forget_tenant(self, tenant: str) -> None:
        async with self.db.begin() as conn:
            await self._unindex_rows(conn, tenant, None)
            for table in (VECTORS, ITEMS, SOURCES):
                await conn.execute(delete(table).where(table.c.tenant == tenant))
