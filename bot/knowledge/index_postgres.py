"""Knowledge search on PostgreSQL: a tsvector column on the items (the `simple` config over
the terms wabot already folded and stemmed, so no language dictionary and no `unaccent` is
needed), a GIN index, `ts_rank` with the title weighted A; and, when the `pg_trgm` extension
is available, trigram similarity on titles for queries full-text search misses (typos).

A missing `pg_trgm` is not an error: keyword search works without it and the index says so
in `notes` (shown by `wabot knowledge search` and at start).
"""

from __future__ import annotations

from collections.abc import Iterable

from loguru import logger
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.knowledge.index_base import KINDS, Hit, SqlKnowledgeIndex, _hit, query_terms
from bot.stores.db import SCHEMA

_DDL = [
    "ALTER TABLE knowledge_items ADD COLUMN IF NOT EXISTS tsv tsvector",
    "CREATE INDEX IF NOT EXISTS ix_knowledge_items_tsv ON knowledge_items USING gin (tsv)",
    "CREATE INDEX IF NOT EXISTS ix_knowledge_items_tenant_kind "
    "ON knowledge_items (tenant, kind)",
]
_TRGM_INDEX = ("CREATE INDEX IF NOT EXISTS ix_knowledge_items_title_trgm "
               "ON knowledge_items USING gin (title_terms gin_trgm_ops)")
_SELECT = "SELECT id, kind, source, position, title, body, facts, "


class PostgresKnowledgeIndex(SqlKnowledgeIndex):
    name = "postgresql-fts"
    trigram = False
    trigram_extension = "pg_trgm"

    async def _start_fulltext(self) -> None:
        async with self.db.begin(serial=SCHEMA) as conn:
            for ddl in _DDL:
                await conn.execute(text(ddl))
        self.trigram = await self._enable_trigram()

    async def _enable_trigram(self) -> bool:
        try:
            async with self.db.begin(serial=SCHEMA) as conn:
                have = (await conn.execute(text(
                    "SELECT 1 FROM pg_extension WHERE extname = :name"),
                    {"name": self.trigram_extension})).first()
                if have is None:
                    await conn.execute(text(
                        f'CREATE EXTENSION IF NOT EXISTS "{self.trigram_extension}"'))
                await conn.execute(text(_TRGM_INDEX))
            return True
        except DBAPIError as exc:
            note = ("pg_trgm is not available, so typo-tolerant matching is off (keyword "
                    "search still works); to enable it run `CREATE EXTENSION pg_trgm;` as a "
                    f"superuser in this database ({type(exc.orig).__name__})")
            self.notes.append(note)
            logger.warning("knowledge: {}", note)
            return False

    async def _index_rows(self, conn: AsyncConnection, tenant: str, source: str) -> None:
        await conn.execute(text(
            "UPDATE knowledge_items SET tsv = "
            "setweight(to_tsvector('simple', title_terms), 'A') || "
            "setweight(to_tsvector('simple', terms), 'B') "
            "WHERE tenant = :tenant AND source = :source"),
            {"tenant": tenant, "source": source})

    async def _unindex_rows(self, conn: AsyncConnection, tenant: str,
                            source: str | None) -> None:
        """The tsvector lives on the row: deleting the row unindexes it."""

    async def search(self, tenant: str, query: str, kinds: Iterable[str] = KINDS,
                     limit: int = 5) -> list[Hit]:
        words = query_terms(query)
        kinds = [k for k in kinds if k in KINDS]
        if not words or not kinds:
            return []
        params = {"tenant": tenant, "kinds": kinds, "limit": limit}
        async with self.db.connect() as conn:
            hits = await self._match(conn, " | ".join(words), params)
            if not hits:
                hits = await self._match(conn, " | ".join(f"{w}:*" for w in words), params)
            if not hits and self.trigram:
                hits = await self._similar(conn, " ".join(words), params)
        return hits

    async def _match(self, conn: AsyncConnection, tsquery: str,
                     params: dict[str, object]) -> list[Hit]:
        result = await conn.execute(text(
            _SELECT + "ts_rank(tsv, q) AS rank "
            "FROM knowledge_items, to_tsquery('simple', :q) AS q "
            "WHERE tenant = :tenant AND kind = ANY(:kinds) AND tsv @@ q "
            "ORDER BY rank DESC, id LIMIT :limit"), {**params, "q": tsquery})
        return [_hit(r, float(r.rank)) for r in result]

    async def _similar(self, conn: AsyncConnection, words: str,
                       params: dict[str, object]) -> list[Hit]:
        result = await conn.execute(text(
            _SELECT + "word_similarity(:words, title_terms) AS rank "
            "FROM knowledge_items WHERE tenant = :tenant AND kind = ANY(:kinds) "
            "AND :words <% title_terms ORDER BY rank DESC, id LIMIT :limit"),
            {**params, "words": words})
        return [_hit(r, float(r.rank)) for r in result]
