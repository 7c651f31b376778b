"""`wabot simulate` at scale (not part of the test run): `--customers` new customers each
writing once within `--seconds`, far more chats than `inbox.max_concurrent_turns` (64).

    python -m tests.bench.bench_simulate [--customers 2000] [--seconds 60]

Prints the real time the replay took and how many customers were answered and got an agent
of their own; exits 1 unless every one did. The regression test
`tests/regressions/test_simulate_hangs_with_more_chats_than_turn_slots.py` replays the same
scenario at a small size.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.cli.simulate import simulate
from bot.settings import Settings

START = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)


def scenario(customers: int, seconds: float) -> list[str]:
    """One `hola` from each of `customers` new customers, evenly spread over `seconds`."""
    step = seconds / customers
    return [json.dumps({"op": "message", "at": round(i * step, 3), "from": f"+1555{i:07d}",
                        "name": "Ana", "text": f"hola, soy el cliente {i}"})
            for i in range(customers)]


async def replay(settings: Settings, lines: list[str]) -> list[dict[str, Any]]:
    out = io.StringIO()
    # A guard, not a wait: with the bug this never returns.
    await asyncio.wait_for(simulate(settings, lines, out, start=START), timeout=600)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()

    from loguru import logger

    from tests.fakes.openai_server import FakeOpenAI
    from tests.fakes.pipeline import make_settings

    logger.remove()
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAI() as server:
        settings = make_settings(f"sqlite:///{Path(tmp) / 'w.db'}", Path(tmp), server, "bench")
        began = time.perf_counter()
        records = asyncio.run(replay(settings, scenario(args.customers, args.seconds)))
        took = time.perf_counter() - began
    answered = {r["to"] for r in records if r.get("kind") == "reply"}
    agents = {r["customer"] for r in records if r.get("event") == "agent_created"}
    print(f"customers   {args.customers} in {args.seconds:g} s "
          f"({settings.inbox.max_concurrent_turns} turn slots)")
    print(f"answered    {len(answered)}, agents created {len(agents)}")
    print(f"real time   {took:.1f} s")
    return 0 if len(answered) == args.customers and agents == answered else 1


if __name__ == "__main__":
    sys.exit(main())
