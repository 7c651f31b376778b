"""Knowledge search on SQLite: an FTS5 table beside the items, ranked by BM25.

The FTS5 table holds the stemmed, accent-folded terms (`bot.knowledge.terms`), tokenized by
`unicode61 remove_diacritics 2`; rowid is the item's id. A tenant is a token of its own in
an indexed column, so the match itself never leaves the tenant.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.knowledge.index_base import KINDS, Hit, SqlKnowledgeIndex, _hit, query_terms

TITLE_WEIGHT = 4.0  # a word in the product name or heading counts four times one in the body

_CREATE = """
CREATE VIRTUAL TABLE IF NOT EXISTS knowledge_fts USING fts5(
    tenant_tok, kind, title, body, tokenize = 'unicode61 remove_diacritics 2')
"""


def tenant_token(tenant: str) -> str:
    """A single FTS token for a tenant id (ids may hold `.`, `+`, `-`)."""
    return "t" + hashlib.sha1(tenant.encode()).hexdigest()[:20]


def match_expression(tenant: str, words: list[str], kinds: Iterable[str],
                     prefix: bool = False) -> str:
    """`tenant_tok:tXXX AND kind:(product) AND {title body}:("a" OR "b")`. Terms are
    [a-z0-9]+ (from `terms`), so quoting them is enough."""
    star = "*" if prefix else ""
    any_word = " OR ".join(f'"{w}"{star}' for w in words)
    kind_list = " OR ".join(f'"{k}"' for k in kinds)
    return (f'tenant_tok:"{tenant_token(tenant)}" AND kind:({kind_list}) '
            f"AND {{title body}}:({any_word})")


class SqliteKnowledgeIndex(SqlKnowledgeIndex):
    name = "sqlite-fts5"

    async def _start_fulltext(self) -> None:
        async with self.db.begin() as conn:
            await conn.execute(text(_CREATE))

    async def _index_rows(self, conn: AsyncConnection, tenant: str, source: str) -> None:
        await conn.execute(text(
            "INSERT INTO knowledge_fts (rowid, tenant_tok, kind, title, body) "
            "SELECT id, :tok, kind, title_terms, terms FROM knowledge_items "
            "WHERE tenant = :tenant AND source = :source"),
            {"tok": tenant_token(tenant), "tenant": tenant, "source": source})

    async def _unindex_rows(self, conn: AsyncConnection, tenant: str,
                            source: str | None) -> None:
        where = "tenant = :tenant" + (" AND source = :source" if source is not None else "")
        await conn.execute(text(
            f"DELETE FROM knowledge_fts WHERE rowid IN "
            f"(SELECT id FROM knowledge_items WHERE {where})"),
            {"tenant": tenant, "source": source})

    async def search(self, tenant: str, query: str, kinds: Iterable[str] = KINDS,
                     limit: int = 5) -> list[Hit]:
        words = query_terms(query)
        kinds = [k for k in kinds if k in KINDS]
        if not words or not kinds:
            return []
        async with self.db.connect() as conn:
            hits = await self._match(conn, match_expression(tenant, words, kinds), limit)
            if not hits:  # a word cut short ("zapatill", "devol") still finds its item
                hits = await self._match(
                    conn, match_expression(tenant, words, kinds, prefix=True), limit)
        return hits

    async def _match(self, conn: AsyncConnection, expression: str, limit: int) -> list[Hit]:
        result = await conn.execute(text(
            "SELECT i.id, i.kind, i.source, i.position, i.title, i.body, i.facts, "
            f"bm25(knowledge_fts, 0.0, 0.0, {TITLE_WEIGHT}, 1.0) AS rank "
            "FROM knowledge_fts JOIN knowledge_items i ON i.id = knowledge_fts.rowid "
            "WHERE knowledge_fts MATCH :expr ORDER BY rank LIMIT :limit"),
            {"expr": expression, "limit": limit})
        return [_hit(r, -float(r.rank)) for r in result]
