"""Knowledge benchmark (not part of the test run): index time for a catalog of 10,000
products and 1,000 document pages, then search latency p50/p99.

    python tests/bench/bench_knowledge.py [--products 10000] [--pages 1000] [--queries 400]
                                          [--database-url postgresql://…]

SQLite always (a fresh file); PostgreSQL too when --database-url or $WABOT_TEST_POSTGRES_URL
is given (under a tenant of its own, erased at the end). A page is a Markdown section of
about 3,000 characters; documents hold 10 pages each. Queries mix product paraphrases
(plural, no accents) and policy questions; each search is what one `search_knowledge`
call runs (keywords only: no embeddings model).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from loguru import logger  # noqa: E402

from bot.clock import SystemClock  # noqa: E402
from bot.knowledge.index_base import KINDS  # noqa: E402
from bot.knowledge.library import Library, index_for  # noqa: E402
from bot.stores.db import Database  # noqa: E402
from tests.knowledge.data import COLORS, MATERIALS, TYPES, documents, products  # noqa: E402

PAGES_PER_DOC = 10


def queries(n: int) -> list[str]:
    rng = random.Random(11)
    out = []
    for i in range(n):
        if i % 2:
            out.append(f"{rng.choice(TYPES).lower()}s {rng.choice(COLORS).lower()}s de "
                       f"{rng.choice(MATERIALS).lower()}")
        else:
            out.append(rng.choice(["plazo para devolver", "programa de puntos clientes",
                                   "guia de tallas", "tarjetas de regalo opcion 7",
                                   "facturacion electronica", "envios nacionales grupo 3"]))
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def bench(url: str, n_products: int, n_pages: int, n_queries: int, folder: Path) -> None:
    db = Database(url)
    tenant = "bench-" + uuid.uuid4().hex[:8]
    catalog = products(n_products)
    only_catalog = Library(index_for(db), tenant, lambda: catalog, None, SystemClock())
    with_docs = Library(index_for(db), tenant, lambda: catalog, folder, SystemClock())
    try:
        await only_catalog.start()
        for note in only_catalog.index.notes:
            print(f"  note: {note}")
        t = time.perf_counter()
        report = await only_catalog.sync(full=True)
        t_products = time.perf_counter() - t
        t = time.perf_counter()
        docs = await with_docs.sync()  # the catalog is unchanged: documents only
        t_docs = time.perf_counter() - t
        chunks = docs.items
        latencies = []
        qs = queries(n_queries)
        for q in qs[:20]:  # warm the caches
            await with_docs.search(q, KINDS, 5)
        empty = 0
        for q in qs:
            t = time.perf_counter()
            hits = await with_docs.search(q, KINDS, 5)
            latencies.append((time.perf_counter() - t) * 1000)
            empty += not hits
        print(f"  index {n_products} products: {t_products:.2f} s ({report.items} items)")
        print(f"  index {n_pages} pages ({len(docs.indexed)} files, {chunks} chunks): "
              f"{t_docs:.2f} s")
        print(f"  search over {report.items + chunks} items, {len(qs)} queries: "
              f"p50 {statistics.median(latencies):.1f} ms, p99 {pct(latencies, 0.99):.1f} ms"
              f" ({empty} without results)")
    finally:
        await only_catalog.index.forget_tenant(tenant)
        await db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--pages", type=int, default=1_000)
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--database-url", default=os.environ.get("WABOT_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    logger.remove()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "knowledge"
        documents(folder, max(1, args.pages // PAGES_PER_DOC), pages=PAGES_PER_DOC,
                  sentences=40)
        targets = [("SQLite", f"sqlite:///{Path(tmp) / 'bench.db'}")]
        if args.database_url:
            targets.append(("PostgreSQL", args.database_url))
        for name, url in targets:
            print(f"{name}:")
            asyncio.run(bench(url, args.products, args.pages, args.queries, folder))


if __name__ == "__main__":
    main()
