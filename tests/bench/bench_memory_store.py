"""Memory store per turn, side by side with the peers (not part of the test run).

    python tests/bench/bench_memory_store.py [--customers 300] [--turns 10]
        [--database-url postgresql://…] [--peer-python /tmp/peer-venv/bin/python]

A turn is: append the customer's line and the agent's answer, read the last 20 messages.
300 customers run concurrently, 10 turns each, every store on a fresh SQLite file (and
wabot also on PostgreSQL when a URL is given). wabot is measured two ways:
- its memory store API (`SqlMemoryStore.append` + `recent(20)`), what any caller uses;
- its turn path: the cached agent already holds the window, so a turn reads nothing and
  writes both lines (plus the customer's counters, usage and journal status) in one
  transaction (`TurnWriter`).
The peers (OpenAI Agents SDK `SQLiteSession`, LangGraph `AsyncSqliteSaver` with a one-node
`MessagesState` graph, a checkpoint per turn) run in their own virtualenv and process
(`tests/bench/peers_memory.py`). CPU is process time (all threads), which a busy shared
machine disturbs less than wall time; turns/s is wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bot.agents.state import merge_window  # noqa: E402
from bot.models import CustomerKey, MemoryMessage, Role  # noqa: E402
from bot.stores.customers import Contact  # noqa: E402
from bot.stores.db import Database  # noqa: E402
from bot.stores.memory_sql import SqlMemoryStore  # noqa: E402
from bot.stores.turn_writer import TurnRecord, TurnWriter  # noqa: E402

Row = dict[str, float | str | int]


async def measure(name: str, customers: int, turns: int,
                  one: Callable[[int], Awaitable[None]]) -> Row:
    t0, c0 = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(i) for i in range(customers)))
    return {"name": name, "turns": customers * turns, "wall": time.perf_counter() - t0,
            "cpu": time.process_time() - c0}


async def wabot(url: str, label: str, customers: int, turns: int) -> list[Row]:
    # 300 customers at once queue for PostgreSQL's 30 pooled connections: let them wait.
    db = Database(url) if url.startswith("sqlite") else Database(url, pool_timeout=600)
    await db.create_all()
    store = SqlMemoryStore(db)
    await store.start()
    tenant = f"bench-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    keys = [CustomerKey(tenant, f"+1555{i:07d}") for i in range(customers)]

    async def api(i: int) -> None:
        for t in range(turns):
            await store.append(keys[i], [
                MemoryMessage(Role.CUSTOMER, f"message {t} from customer {i}", now,
                              msg_id=f"api-{i}-{t}"),
                MemoryMessage(Role.AGENT, f"answer {t} to customer {i}", now)])
            await store.recent(keys[i], 20)

    writer = TurnWriter(db, store)
    windows: list[list[MemoryMessage]] = [[] for _ in range(customers)]

    async def turn_path(i: int) -> None:
        key = CustomerKey(tenant + "t", keys[i].phone)
        for t in range(turns):
            lines = [MemoryMessage(Role.CUSTOMER, f"message {t} from customer {i}", now,
                                   msg_id=f"turn-{i}-{t}"),
                     MemoryMessage(Role.AGENT, f"answer {t} to customer {i}", now)]
            stored = await writer.write(TurnRecord(key, now, Contact(), 1, lines, 1, 10, 5))
            windows[i] = merge_window(windows[i], stored, 0, 2500)
            assert len(windows[i][-20:]) == min(20, 2 * (t + 1))

    rows = [await measure(f"wabot SqlMemoryStore API ({label})", customers, turns, api),
            await measure(f"wabot turn path, one write ({label})", customers, turns, turn_path)]
    await db.close()
    return rows


def peers(python: str, folder: Path, customers: int, turns: int) -> list[Row]:
    script = ROOT / "tests" / "bench" / "peers_memory.py"
    try:
        out = subprocess.run([python, str(script), str(folder), str(customers), str(turns)],
                             check=True, capture_output=True, text=True, timeout=3600).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"peers not run ({exc}); see {script} for their environment")
        return []
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=300)
    ap.add_argument("--turns", type=int, default=10)
    ap.add_argument("--database-url", default="")
    ap.add_argument("--peer-python", default="/tmp/peer-venv/bin/python")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rows = await wabot(f"sqlite:///{folder / 'wabot.db'}", "SQLite file",
                           args.customers, args.turns)
        if args.database_url:
            rows += await wabot(args.database_url, "PostgreSQL", args.customers, args.turns)
        others = peers(args.peer_python, folder, args.customers, args.turns)
    print(f"{args.customers} customers x {args.turns} turns, concurrently "
          "(append customer + agent line, read the last 20)")
    print(f"{'store':58} {'turns/s':>9} {'CPU ms/turn':>12}")
    for r in rows + others:
        print(f"{r['name']:58} {float(r['turns']) / float(r['wall']):9.0f} "
              f"{float(r['cpu']) / float(r['turns']) * 1000:12.2f}")
    if others:
        best = max(others, key=lambda r: float(r["turns"]) / float(r["wall"]))
        best_cpu = min(float(r["cpu"]) / float(r["turns"]) for r in others)
        for r in rows:
            rate = float(r["turns"]) / float(r["wall"])
            cpu = float(r["cpu"]) / float(r["turns"])
            print(f"{r['name']}: {rate / (float(best['turns']) / float(best['wall'])):.2f}x "
                  f"the best peer's turns/s ({best['name']}); CPU per turn "
                  f"{cpu / best_cpu:.2f}x the leanest peer's")


if __name__ == "__main__":
    asyncio.run(main())
