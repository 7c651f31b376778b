"""Optional semantic search: vectors from the endpoint's /v1/embeddings, fused with keywords."""

from __future__ import annotations

from datetime import UTC, datetime

from openai import AsyncOpenAI

from bot.business import Product
from bot.clock import VirtualClock
from bot.knowledge.embeddings import Embedder, rrf
from bot.knowledge.index_base import PRODUCT, KnowledgeIndex
from bot.knowledge.library import Library
from tests.fakes.openai_server import Error, FakeOpenAI

SHOP = [Product(name="Chamarra de Mezclilla", price=1500, currency="MXN"),
        Product(name="Gorra Negra", price=300, currency="MXN"),
        Product(name="Jacket Pin", price=80, currency="MXN", description="a small enamel pin")]
# Two concepts: outerwear (axis 0) and everything else (axis 1).
OUTERWEAR = {"chamarra", "jacket", "coat", "abrigo"}


def concept(text: str) -> list[float]:
    words = set(text.lower().split())
    return [1.0 if words & OUTERWEAR else 0.0, 0.2 if "pin" in words else 1.0]


def test_rrf_rewards_items_both_rankings_agree_on() -> None:
    assert rrf([1, 2, 3], [3, 4, 1]) == [1, 3, 2, 4]


async def test_a_synonym_is_found_only_through_embeddings(
        index: KnowledgeIndex, tenant: str, openai_server: FakeOpenAI) -> None:
    openai_server.embed = concept
    client = AsyncOpenAI(api_key="test", base_url=openai_server.base_url, max_retries=0)
    clock = VirtualClock(datetime(2026, 3, 2, tzinfo=UTC))
    keyword = Library(index, tenant, lambda: SHOP, None, clock)
    semantic = Library(index, tenant, lambda: SHOP, None, clock,
                       embedder=Embedder(client, "embed-small"))
    try:
        await semantic.sync()
        # "coat" is no word of any product: keywords alone find nothing
        assert await keyword.search("warm coat", [PRODUCT], 2) == []
        hits = await semantic.search("warm coat", [PRODUCT], 2)
        assert hits[0].title == "Chamarra de Mezclilla"
        # a keyword match and a semantic one fuse: the real jacket outranks the pin
        fused = [h.title for h in await semantic.search("jacket", [PRODUCT], 3)]
        assert fused.index("Chamarra de Mezclilla") < fused.index("Gorra Negra")
        assert "Jacket Pin" in fused
        bodies = [r.body for r in openai_server.requests if r.path == "/v1/embeddings"]
        assert bodies and all(b["model"] == "embed-small" for b in bodies)

        openai_server.embeddings_error = Error(503, "embeddings down")
        [hit] = await semantic.search("jacket", [PRODUCT], 1)  # keywords still answer
        assert hit.title == "Jacket Pin"
    finally:
        await client.close()
