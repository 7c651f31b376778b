"""Profile warm turns end to end (not part of the test run): the top entries by own time.

    python tests/bench/profile_turn.py [--customers 300] [--database-url postgresql://…]

The fake model answers at once in another process; presentation and debounce are off.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pipeline import Timing, feed_round, make_app, start_fake_llm


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=300)
    ap.add_argument("--database-url", default="")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--dump", action="store_true", help="also write /tmp/turn.prof")
    args = ap.parse_args()
    proc, base_url = start_fake_llm(0.0)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            db_url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
            tenant = f"prof-{int(time.time())}"
            app = make_app(base_url, db_url, Path(tmp), tenant, 64)
            await app.start()
            timing = Timing(app)
            phones = [f"+1999{i:07d}" for i in range(args.customers)]
            await feed_round(app, timing, tenant, phones, "A")  # agents created
            profile = cProfile.Profile()
            profile.enable()
            _, cpu, _ = await feed_round(app, timing, tenant, phones, "B")
            profile.disable()
            await app.stop()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print(f"warm turns: CPU {cpu / args.customers * 1000:.2f} ms/msg under cProfile")
    profile.dump_stats("/tmp/turn.prof") if args.dump else None
    pstats.Stats(profile).sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    asyncio.run(main())
