"""Console benchmark (not part of the test run): the API and the page with 10,000 customers.

    python tests/bench/bench_console.py [--customers 10000] [--requests 300]
                                        [--database-url postgresql://…]

Seeds the customers (with 30 days of usage rows) in a fresh SQLite file, or in PostgreSQL
under a tenant of its own (removed afterwards), starts the daemon's App with the console on
127.0.0.1 (ephemeral port) and times, over real HTTP with keep-alive:
`GET /api/v1/customers` (first page of 50), the same with a search and a stage filter,
`GET /api/v1/customers/{phone}`, and the dashboard page `GET /`.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from loguru import logger  # noqa: E402
from sqlalchemy import delete, insert  # noqa: E402

from bot.app import App  # noqa: E402
from bot.business import Business  # noqa: E402
from bot.gateway.memory import MemoryGateway  # noqa: E402
from bot.settings import load_settings  # noqa: E402
from bot.stores.customers import CUSTOMERS, USAGE  # noqa: E402

TOKEN = "bench-token"
STAGES = ["lead", "customer", "active_user", "churned"]


async def seed(app: App, tenant: str, n: int) -> None:
    now = datetime.now(UTC)
    rng = random.Random(7)
    rows = []
    for i in range(n):
        at = now - timedelta(minutes=rng.randrange(60 * 24 * 60))
        rows.append({"tenant": tenant, "phone": f"+52155{i:08d}", "wa_jid": "", "lid": "",
                     "name": f"Customer {i}", "stage": rng.choice(STAGES), "opted_out": False,
                     "paused_until": None, "first_contact": at, "last_contact": at,
                     "last_inbound": at, "msgs_in": 3, "msgs_out": 3, "tokens_in": 900,
                     "tokens_out": 200})
    usage = [{"tenant": tenant, "day": (now - timedelta(days=d)).date().isoformat(),
              "phone": f"+52155{i:08d}", "msgs_out": 2, "tokens_in": 600, "tokens_out": 100}
             for i in range(0, n, 10) for d in range(30)]
    async with app.unit.db.begin() as conn:
        for chunk in range(0, len(rows), 2000):
            await conn.execute(insert(CUSTOMERS), rows[chunk:chunk + 2000])
        for chunk in range(0, len(usage), 2000):
            await conn.execute(insert(USAGE), usage[chunk:chunk + 2000])


async def timed(client: httpx.AsyncClient, path: str, n: int, **kw: object) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        resp = await client.get(path, **kw)  # type: ignore[arg-type]
        out.append((time.perf_counter() - t0) * 1000)
        assert resp.status_code == 200, resp.text[:200]
    return out


def line(name: str, ms: list[float]) -> str:
    ms = sorted(ms)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return f"  {name:<44} p50 {statistics.median(ms):7.1f} ms   p99 {p99:7.1f} ms"


async def run(database_url: str | None, customers: int, requests: int) -> None:
    tenant = "bench" + uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(None, tenant=tenant, state_dir=Path(tmp),
                                 database_url=database_url,
                                 llm={"base_url": "http://127.0.0.1:9/v1", "api_key": "x"},
                                 http={"port": 0, "api_token": TOKEN},
                                 followups={"enabled": False})
        app = App(settings, MemoryGateway(), business=Business(name="Bench"), heartbeat=False,
                  serve_http=True)
        await app.start()
        try:
            t0 = time.perf_counter()
            await seed(app, tenant, customers)
            print(f"{'SQLite' if app.unit.db.is_sqlite else 'PostgreSQL'}: {customers:,} customers "
                  f"seeded in {time.perf_counter() - t0:.1f} s; {requests} requests each")
            assert app.web is not None
            async with httpx.AsyncClient(base_url=app.web.url, timeout=30,
                                         headers={"Authorization": f"Bearer {TOKEN}"}) as api:
                await timed(api, "/api/v1/customers", 5)  # warm up
                print(line("GET /healthz (the floor: HTTP on this machine)",
                           await timed(api, "/healthz", requests)))
                print(line("GET /api/v1/customers (page of 50)",
                           await timed(api, "/api/v1/customers", requests)))
                print(line("GET /api/v1/customers?q=Customer 12&limit=50",
                           await timed(api, "/api/v1/customers", requests,
                                       params={"q": "Customer 12"})))
                print(line("GET /api/v1/customers?stage=churned&offset=2000",
                           await timed(api, "/api/v1/customers", requests,
                                       params={"stage": "churned", "offset": 2000})))
                print(line("GET /api/v1/customers/{phone}",
                           await timed(api, "/api/v1/customers/5215500004242", requests)))
            async with httpx.AsyncClient(base_url=app.web.url, timeout=30,
                                         headers={"Accept": "text/html"}) as page:
                await page.post("/login", data={"token": TOKEN})
                await timed(page, "/", 3)
                print(line("GET / (dashboard page, 30-day charts)",
                           await timed(page, "/", max(20, requests // 5))))
        finally:
            if not app.unit.db.is_sqlite:
                async with app.unit.db.begin() as conn:
                    await conn.execute(delete(CUSTOMERS).where(CUSTOMERS.c.tenant == tenant))
                    await conn.execute(delete(USAGE).where(USAGE.c.tenant == tenant))
            await app.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    asyncio.run(run(args.database_url, args.customers, args.requests))


if __name__ == "__main__":
    main()
