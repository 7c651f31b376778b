"""What an extra idle number costs one `wabot run`: resident memory with 1, then N, Cloud API
numbers in one process (rows of the numbers table on a fresh PostgreSQL database, the
loopback Graph API, follow-ups on as by default), each measured once every number is served.

    WABOT_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/test \\
        python -m tests.bench.bench_density [--numbers 1 26 51]

Prints numbers, resident MB, MB per extra number against the first row, and PostgreSQL
connections the process holds. WhatsApp Web numbers (neonize's Go clients) are not in it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg2
from sqlalchemy.engine import make_url

from bot.clock import SystemClock
from bot.fleet.numbers import NumberStore
from bot.stores.db import Database
from tests.fakes.chaos import Daemon, daemon_env
from tests.fakes.graph_server import FakeGraph
from tests.fakes.openai_server import FakeOpenAI


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _connections(admin: str, name: str) -> int:
    conn = psycopg2.connect(admin)
    try:
        cur = conn.cursor()
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,))
        return int(cur.fetchone()[0])
    finally:
        conn.close()


async def measure(total: int, graph: FakeGraph, llm: FakeOpenAI, admin: str) -> tuple[float, int]:
    name = f"density_{uuid.uuid4().hex[:10]}"
    conn = psycopg2.connect(admin)
    conn.autocommit = True
    conn.cursor().execute(f'CREATE DATABASE "{name}"')
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    try:
        import bot.wiring  # noqa: F401  (every table)

        db = Database(url)
        await db.create_all()
        store = NumberStore(db, SystemClock())
        for i in range(1, total):
            number_id = f"9{i:014d}"
            graph.numbers.add(number_id)
            await store.add(f"n{i}", "cloud", {"cloud": {
                "phone_number_id": number_id, "access_token_env": "DENSITY_TOKEN"}})
        await db.close()
        with tempfile.TemporaryDirectory(prefix="wabot-density-") as tmp:
            env = daemon_env(Path(tmp), llm, graph)
            env.update({"WABOT_DATABASE_URL": url, "WABOT_TENANT": "home",
                        "WABOT_FOLLOWUPS__ENABLED": "true", "DENSITY_TOKEN": graph.token})
            daemon = Daemon(Path(tmp), env)
            daemon.start()
            try:
                await daemon.ready()
                deadline = time.monotonic() + 120
                while daemon.logfile.read_text().count("serves number") < total:
                    if time.monotonic() > deadline:
                        raise TimeoutError("not every number was served in 120 s")
                    await asyncio.sleep(0.2)
                await asyncio.sleep(3)  # settled: nothing starting any more
                assert daemon.proc is not None
                return _rss_mb(daemon.proc.pid), _connections(admin, name)
            finally:
                daemon.stop()
    finally:
        conn.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


async def run(counts: list[int]) -> None:
    base = make_url(os.environ["WABOT_TEST_POSTGRES_URL"]).set(drivername="postgresql")
    admin = base.render_as_string(hide_password=False)
    print(f"{'numbers':>8} {'RSS MB':>8} {'MB/extra':>9} {'PG conns':>9}")
    first: tuple[int, float] | None = None
    with FakeOpenAI() as llm, FakeGraph() as graph:
        for total in counts:
            rss, conns = await measure(total, graph, llm, admin)
            if first is None:
                first = (total, rss)
            extra = ((rss - first[1]) / (total - first[0])) if total > first[0] else 0.0
            print(f"{total:>8} {rss:>8.1f} {extra:>9.2f} {conns:>9}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--numbers", type=int, nargs="+", default=[1, 26, 51])
    args = parser.parse_args()
    if not os.environ.get("WABOT_TEST_POSTGRES_URL"):
        print("set WABOT_TEST_POSTGRES_URL (the numbers share a PostgreSQL database)")
        return 2
    asyncio.run(run(args.numbers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
