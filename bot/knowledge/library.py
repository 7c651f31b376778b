"""The business's knowledge for one tenant: keeps the index in step with its sources and
answers searches (keywords, fused with embeddings when a model is configured).

`sync()` re-indexes only what changed (by content digest) and drops sources that vanished;
the daemon runs it at start and on SIGHUP, `wabot knowledge reindex` with `full=True`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from loguru import logger

from bot.business import BusinessError, Product
from bot.clock import Clock
from bot.knowledge.embeddings import Embedder, EmbeddingError, rrf
from bot.knowledge.index_base import KINDS, PRODUCT, Doc, Hit, KnowledgeIndex, SourceState
from bot.knowledge.sources import (
    CATALOG,
    SourceError,
    catalog,
    document_docs,
    document_files,
    file_digest,
)
from bot.stores.db import Database

Catalog = Callable[[], Sequence[Product]]


@dataclass(slots=True)
class SyncReport:
    indexed: list[str] = field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    items: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        text = (f"{len(self.indexed)} source(s) indexed ({self.items} items), "
                f"{self.unchanged} unchanged, {len(self.removed)} removed "
                f"in {self.seconds:.2f} s")
        return text + (f"; {len(self.errors)} error(s)" if self.errors else "")


class Library:
    def __init__(self, index: KnowledgeIndex, tenant: str, products: Catalog,
                 folder: Path | None, clock: Clock, *, chunk_chars: int = 1200,
                 embedder: Embedder | None = None,
                 on_catalog: Callable[[list[Product]], None] | None = None) -> None:
        self.index = index
        self.tenant = tenant
        self.products = products
        self.folder = folder
        self.clock = clock
        self.chunk_chars = chunk_chars
        self.embedder = embedder
        self.on_catalog = on_catalog  # told the products each sync read (the prompt's list)
        self._lock = asyncio.Lock()  # one sync at a time (start and SIGHUP may overlap)

    async def start(self) -> None:
        await self.index.start()

    async def sync(self, full: bool = False) -> SyncReport:
        async with self._lock:
            return await self._sync(full)

    async def _sync(self, full: bool) -> SyncReport:
        began = time.perf_counter()
        report = SyncReport()
        known = await self.index.sources(self.tenant)
        try:
            products = list(self.products())
        except BusinessError as exc:  # a broken profile on SIGHUP: the last catalog stays
            report.errors.append(f"catalog: {exc}")
        else:
            digest, docs = catalog(products)
            await self._put(CATALOG, PRODUCT, digest, docs, known, full, report)
            if self.on_catalog is not None:
                self.on_catalog(products)
        files = document_files(self.folder)
        for rel, path in files.items():
            try:
                digest = file_digest(path)
                state = known.get(rel)
                if not full and state is not None and state.digest == digest:
                    report.unchanged += 1
                    continue
                docs = await asyncio.to_thread(document_docs, rel, path, self.chunk_chars)
            except (SourceError, OSError) as exc:
                # The last good index of this file stays searchable.
                report.errors.append(f"{rel}: {exc}")
                continue
            await self._put(rel, "document", digest, docs, known, True, report)
        for source in set(known) - set(files) - {CATALOG}:
            await self.index.remove_source(self.tenant, source)
            report.removed.append(source)
        report.seconds = time.perf_counter() - began
        return report

    async def _put(self, source: str, kind: str, digest: str, docs: list[Doc],
                   known: dict[str, SourceState], force: bool, report: SyncReport) -> None:
        state = known.get(source)
        if not force and state is not None and state.digest == digest:
            report.unchanged += 1
            return
        ids = await self.index.replace_source(self.tenant, source, kind, digest, docs,
                                              self.clock.now())
        report.indexed.append(source)
        report.items += len(ids)
        if self.embedder is not None and ids:
            try:
                texts = [f"{d.title}\n{d.keywords}\n{d.body}" for d in docs]
                vectors = await self.embedder.embed(texts)
                await self.index.put_vectors(self.tenant, self.embedder.model,
                                             list(zip(ids, vectors, strict=True)))
            except EmbeddingError as exc:
                report.errors.append(f"{source}: {exc} (keyword search still works)")

    async def search(self, query: str, kinds: Iterable[str] = KINDS,
                     limit: int = 5) -> list[Hit]:
        kinds = list(kinds)
        if self.embedder is None:
            return await self.index.search(self.tenant, query, kinds, limit)
        keyword = await self.index.search(self.tenant, query, kinds, limit * 4)
        try:
            [vector] = await self.embedder.embed([query])
        except EmbeddingError as exc:
            logger.warning("knowledge: {}; answering from keywords alone", exc)
            return keyword[:limit]
        near = await self.index.nearest(self.tenant, self.embedder.model, vector, kinds,
                                        limit * 4)
        order = rrf([h.id for h in keyword], [i for i, _ in near])[:limit]
        known = {h.id: h for h in keyword}
        missing = [i for i in order if i not in known]
        known.update({h.id: h for h in await self.index.items(self.tenant, missing)})
        return [known[i] for i in order if i in known]

    async def product(self, ref: str) -> Hit | None:
        """The product a model names: by SKU or exact name, else the best search hit."""
        found = await self.index.find_product(self.tenant, ref)
        if found is not None:
            return found
        hits = await self.index.search(self.tenant, ref, [PRODUCT], 1)
        return hits[0] if hits else None

    async def idle(self) -> None:
        """Wait for a sync under way to finish (before the database closes)."""
        async with self._lock:
            return

    def document_path(self, source: str) -> Path | None:
        """A document file by its indexed name; only files inside the knowledge folder."""
        return document_files(self.folder).get(source.strip())


def index_for(db: Database) -> KnowledgeIndex:
    """The backend that fits the database: FTS5 on SQLite, full-text search on PostgreSQL."""
    if db.is_sqlite:
        from bot.knowledge.index_sqlite import SqliteKnowledgeIndex

        return SqliteKnowledgeIndex(db)
    from bot.knowledge.index_postgres import PostgresKnowledgeIndex

    return PostgresKnowledgeIndex(db)


def log_report(report: SyncReport) -> None:
    for error in report.errors:
        logger.warning("knowledge: {}", error)
    if report.indexed or report.removed:
        logger.info("knowledge: {}", report.summary())


async def reindex_on(library: Library, reindex: asyncio.Event) -> None:
    """Re-index what changed whenever `reindex` is set (SIGHUP)."""
    while True:
        await reindex.wait()
        reindex.clear()
        log_report(await library.sync())
