"""One contract for every knowledge index backend (SQLite FTS5, PostgreSQL full text)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.business import Product
from bot.clock import VirtualClock
from bot.knowledge.index_base import DOCUMENT, PRODUCT, KnowledgeIndex
from bot.knowledge.library import Library
from bot.knowledge.sources import catalog

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SHOP = [
    Product(name="Zapato Rojo Clásico", price=1200, currency="MXN", sku="ZR-1", stock=5),
    Product(name="Zapatilla Azul Running", price=950, currency="MXN", sku="ZA-2", stock=2),
    Product(name="Camisa de Lino Blanca", price=650, currency="MXN", sku="CL-3", stock=0),
    Product(name="Leather Wallet", price=40, currency="USD", sku="LW-4",
            description="Slim wallet with six card slots"),
    Product(name="Wool Sweaters Pack", price=90, currency="USD", sku="WS-5"),
    Product(name="Pantalón Vaquero Niño", price=400, currency="MXN", sku="PV-6",
            variants=["talla 8", "talla 10"]),
]


def library(index: KnowledgeIndex, tenant: str, products: list[Product],
            folder: Path | None = None) -> Library:
    return Library(index, tenant, lambda: products, folder, VirtualClock(NOW))


async def names(index: KnowledgeIndex, tenant: str, query: str, kind: str = PRODUCT) -> list[str]:
    return [h.title for h in await index.search(tenant, query, [kind], 5)]


@pytest.mark.parametrize(("query", "expected"), [
    ("zapatos rojos", "Zapato Rojo Clásico"),          # Spanish plural, gender
    ("ZAPATO ROJO clasico", "Zapato Rojo Clásico"),    # case, missing accent
    ("camisas de lino blancas", "Camisa de Lino Blanca"),
    ("pantalon vaquero nino", "Pantalón Vaquero Niño"),  # ó and ñ typed plain
    ("leather wallets", "Leather Wallet"),              # English plural
    ("wool sweater", "Wool Sweaters Pack"),             # English singular finds plural
    ("card slots", "Leather Wallet"),                   # the description is searched
    ("ZA-2", "Zapatilla Azul Running"),                 # by SKU
    ("talla 10 vaquero", "Pantalón Vaquero Niño"),      # by variant
    ("zapatill", "Zapatilla Azul Running"),             # a word cut short (prefix fallback)
])
async def test_accents_case_and_plurals_in_both_languages(
        index: KnowledgeIndex, tenant: str, query: str, expected: str) -> None:
    await library(index, tenant, SHOP).sync()
    found = await names(index, tenant, query)
    assert found and found[0] == expected, found


async def test_out_of_stock_product_is_found_with_its_stock(index: KnowledgeIndex,
                                                            tenant: str) -> None:
    await library(index, tenant, SHOP).sync()
    [hit] = await index.search(tenant, "camisa lino", [PRODUCT], 1)
    assert hit.facts["stock"] == 0 and hit.facts["price"] == 650


async def test_product_removed_by_a_reimport_is_no_longer_found(index: KnowledgeIndex,
                                                                tenant: str) -> None:
    products = list(SHOP)
    lib = library(index, tenant, products)
    await lib.sync()
    assert await names(index, tenant, "leather wallet")
    products[:] = [p for p in SHOP if p.sku != "LW-4"]  # what a new import wrote
    report = await lib.sync()
    assert report.indexed == ["catalog"]
    assert "Leather Wallet" not in await names(index, tenant, "leather wallet")
    assert await names(index, tenant, "zapato rojo") == ["Zapato Rojo Clásico"]


async def test_unchanged_sources_are_not_reindexed(index: KnowledgeIndex, tenant: str,
                                                   tmp_path: Path) -> None:
    folder = tmp_path / "kb"
    folder.mkdir()
    (folder / "envios.md").write_text("# Envíos\n\nEnviamos a todo México en 3 días.\n")
    lib = library(index, tenant, SHOP, folder)
    first = await lib.sync()
    assert sorted(first.indexed) == ["catalog", "envios.md"]
    again = await lib.sync()
    assert again.indexed == [] and again.unchanged == 2
    (folder / "envios.md").unlink()
    gone = await lib.sync()
    assert gone.removed == ["envios.md"]
    assert await names(index, tenant, "envios", DOCUMENT) == []


async def test_one_business_never_finds_another_s_catalog(index: KnowledgeIndex,
                                                          tenant: str) -> None:
    other = tenant + "-other"
    await library(index, tenant, SHOP[:2]).sync()
    await library(index, other, [Product(name="Bicicleta de Montaña", price=9000)]).sync()
    assert await names(index, tenant, "bicicleta montaña") == []
    assert await names(index, other, "zapato rojo") == []
    assert await names(index, other, "bicicleta") == ["Bicicleta de Montaña"]
    assert (await index.find_product(other, "ZR-1")) is None
    await index.forget_tenant(other)
    assert await names(index, other, "bicicleta") == []
    assert await names(index, tenant, "zapato rojo") == ["Zapato Rojo Clásico"]


async def test_documents_are_chunked_with_source_and_position(index: KnowledgeIndex,
                                                               tenant: str,
                                                               tmp_path: Path) -> None:
    folder = tmp_path / "kb"
    (folder / "policies").mkdir(parents=True)
    (folder / "policies" / "returns.md").write_text(
        "# Returns\n\n## Refunds\n\nRefunds reach your card within 10 business days.\n\n"
        "## Exchanges\n\nExchanges of size are free within 30 days.\n")
    await library(index, tenant, [], folder).sync()
    [hit] = await index.search(tenant, "how long does a refund take", [DOCUMENT], 1)
    assert hit.source == "policies/returns.md" and hit.position == 0
    assert hit.facts["section"] == "Returns › Refunds"
    assert "10 business days" in hit.body
    [hit] = await index.search(tenant, "exchange sizes", [DOCUMENT], 1)
    assert hit.facts["section"] == "Returns › Exchanges" and hit.position == 1


async def test_find_product_by_sku_or_exact_name(index: KnowledgeIndex, tenant: str) -> None:
    await library(index, tenant, SHOP).sync()
    by_sku = await index.find_product(tenant, "CL-3")
    by_name = await index.find_product(tenant, "zapato rojo clásico")
    assert by_sku is not None and by_sku.title == "Camisa de Lino Blanca"
    assert by_name is not None and by_name.facts["sku"] == "ZR-1"


async def test_a_query_of_stop_words_only_finds_nothing(index: KnowledgeIndex,
                                                        tenant: str) -> None:
    await library(index, tenant, SHOP).sync()
    assert await index.search(tenant, "de la the of", [PRODUCT], 5) == []
    assert await index.search(tenant, "", [PRODUCT], 5) == []


def test_catalog_digest_changes_with_any_product() -> None:
    a, _ = catalog(SHOP)
    b, _ = catalog([*SHOP[:-1], SHOP[-1].model_copy(update={"stock": 1})])
    assert a != b and a == catalog(list(SHOP))[0]


async def test_a_misspelled_word_matches_by_trigram_where_pg_trgm_is_available(
        index: KnowledgeIndex, tenant: str) -> None:
    await library(index, tenant, SHOP).sync()
    found = await names(index, tenant, "walet")
    if getattr(index, "trigram", False):
        assert found[:1] == ["Leather Wallet"]
    else:  # SQLite, or PostgreSQL without pg_trgm: keywords and prefixes only
        assert found == [] and (index.name == "sqlite-fts5" or index.notes)


@pytest.mark.postgres
async def test_without_pg_trgm_postgres_says_so_and_keyword_search_works(
        tenant: str) -> None:
    from bot.knowledge.index_postgres import PostgresKnowledgeIndex
    from bot.stores.db import Database
    from tests.conftest import _postgres_url

    class NoTrigram(PostgresKnowledgeIndex):
        trigram_extension = "pg_trgm_not_installed_here"

    db = Database(_postgres_url())
    index = NoTrigram(db)
    try:
        await index.start()
        assert index.trigram is False
        [note] = index.notes
        assert "pg_trgm is not available" in note and "CREATE EXTENSION pg_trgm" in note
        await library(index, tenant, SHOP).sync()
        assert await names(index, tenant, "zapatos rojos") == ["Zapato Rojo Clásico"]
        assert await names(index, tenant, "walet") == []
    finally:
        await index.forget_tenant(tenant)
        await db.close()
