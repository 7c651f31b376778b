"""What an extra idle number costs one `wabot run`: resident memory with 1, then N numbers
in one process (rows of the numbers table on a fresh PostgreSQL database, follow-ups on as
by default), each measured once every number is served; and the CPU of a warm turn on the
configured number, measured in the same process, so a crowd of idle numbers that slowed
every turn would show.

    WABOT_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/test \\
        python -m tests.bench.bench_density [--numbers 1 26 51 101] [--web] [--turns 200]

The extra numbers are Cloud API numbers against the loopback Graph API, or with `--web`
WhatsApp Web numbers linked through the stand-in Go layer (each a connected client of the
fake WhatsApp servers; neonize's real Go clients cannot link offline, so whatsmeow's own
per-session memory is not in the figure). Prints numbers, resident MB, MB per extra number
against the first row, PostgreSQL connections the process holds, and CPU ms per warm turn.
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

import httpx
import psycopg2
from sqlalchemy.engine import make_url

from bot.clock import SystemClock
from bot.fleet.numbers import NumberStore
from bot.stores.db import Database
from tests.fakes import meta_webhooks as meta
from tests.fakes.chaos import Daemon, daemon_env
from tests.fakes.graph_server import FakeGraph
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.whatsapp_server import FakeWhatsApp

ROOT = Path(__file__).resolve().parents[2]


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


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _warm_turn_ms(daemon: Daemon, graph: FakeGraph, turns: int) -> float:
    """CPU of the daemon per warm turn on the configured number: ten customers write once
    (their agents are built), then `turns` more messages among them, one at a time."""
    assert daemon.proc is not None
    customers = [f"5215500{i:06d}" for i in range(10)]

    async def say(http: httpx.AsyncClient, wa_id: str, n: int) -> None:
        before = len(graph.sends("text"))
        await meta.deliver(http, daemon.url, meta.text(wa_id, f"hola {n}", msg_id=f"wamid.D{n}"))
        deadline = time.monotonic() + 30
        while len(graph.sends("text")) <= before:
            if time.monotonic() > deadline:
                raise TimeoutError("no reply in 30 s")
            await asyncio.sleep(0.005)

    async with httpx.AsyncClient(timeout=30) as http:
        for i, wa_id in enumerate(customers):
            await say(http, wa_id, i)
        began = _cpu_seconds(daemon.proc.pid)
        for n in range(turns):
            await say(http, customers[n % len(customers)], 1000 + n)
        return (_cpu_seconds(daemon.proc.pid) - began) * 1000 / turns


async def measure(total: int, graph: FakeGraph, llm: FakeOpenAI, admin: str, web: bool,
                  turns: int, wa: FakeWhatsApp) -> tuple[float, int, float]:
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
            if web:
                await store.add(f"n{i}", "web", {})
                continue
            number_id = f"9{i:014d}"
            graph.numbers.add(number_id)
            await store.add(f"n{i}", "cloud", {"cloud": {
                "phone_number_id": number_id, "access_token_env": "DENSITY_TOKEN"}})
        await db.close()
        with tempfile.TemporaryDirectory(prefix="wabot-density-") as tmp:
            env = daemon_env(Path(tmp), llm, graph)
            env.update({"WABOT_DATABASE_URL": url, "WABOT_TENANT": "home",
                        "WABOT_FOLLOWUPS__ENABLED": "true", "DENSITY_TOKEN": graph.token,
                        "WABOT_STANDIN_WHATSAPP": wa.address, "PYTHONPATH": str(ROOT),
                        "WABOT_WHATSAPP__PROBE_HOST": "127.0.0.1",
                        "WABOT_WHATSAPP__PROBE_PORT": str(wa.port),
                        # the warm turns come faster than a person writes: no cap holds them
                        "WABOT_LIMITS__TURNS_PER_MINUTE": "1000"})
            daemon = Daemon(Path(tmp), env)
            daemon.command = [sys.executable, "-m", "tests.fakes.standin_go", "run"]
            daemon.start()
            try:
                await daemon.ready()
                deadline = time.monotonic() + 120
                while daemon.logfile.read_text().count("serves number") < total:
                    if time.monotonic() > deadline:
                        raise TimeoutError("not every number was served in 120 s")
                    await asyncio.sleep(0.2)
                if web:
                    while daemon.logfile.read_text().count("connected as") < total - 1:
                        if time.monotonic() > deadline:
                            raise TimeoutError("not every number linked in 120 s")
                        await asyncio.sleep(0.2)
                await asyncio.sleep(3)  # settled: nothing starting any more
                assert daemon.proc is not None
                rss, conns = _rss_mb(daemon.proc.pid), _connections(admin, name)
                return rss, conns, await _warm_turn_ms(daemon, graph, turns)
            finally:
                daemon.stop()
    finally:
        conn.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


async def run(counts: list[int], web: bool, turns: int) -> None:
    base = make_url(os.environ["WABOT_TEST_POSTGRES_URL"]).set(drivername="postgresql")
    admin = base.render_as_string(hide_password=False)
    kind = "WhatsApp Web (stand-in Go layer)" if web else "Cloud API"
    print(f"extra numbers: {kind}")
    print(f"{'numbers':>8} {'RSS MB':>8} {'MB/extra':>9} {'PG conns':>9} {'CPU ms/warm turn':>17}")
    first: tuple[int, float] | None = None
    with FakeOpenAI() as llm, FakeGraph() as graph, FakeWhatsApp() as wa:
        for total in counts:
            rss, conns, cpu = await measure(total, graph, llm, admin, web, turns, wa)
            if first is None:
                first = (total, rss)
            extra = ((rss - first[1]) / (total - first[0])) if total > first[0] else 0.0
            print(f"{total:>8} {rss:>8.1f} {extra:>9.2f} {conns:>9} {cpu:>17.2f}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--numbers", type=int, nargs="+", default=[1, 26, 51])
    parser.add_argument("--web", action="store_true",
                        help="the extra numbers on WhatsApp Web (stand-in Go layer)")
    parser.add_argument("--turns", type=int, default=200, help="warm turns measured")
    args = parser.parse_args()
    if not os.environ.get("WABOT_TEST_POSTGRES_URL"):
        print("set WABOT_TEST_POSTGRES_URL (the numbers share a PostgreSQL database)")
        return 2
    asyncio.run(run(args.numbers, args.web, args.turns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
