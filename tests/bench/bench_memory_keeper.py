"""The memory keeper's acceptance scenario at full size (not part of the test run): a
5,000-message relationship (1,001 turns) keeps the prompt within `llm.context_tokens` and
still knows the dog named in message 10.

    python -m tests.bench.bench_memory_keeper [--messages 5000] [--database-url postgresql://…]

SQLite always (a fresh file); PostgreSQL too when --database-url or $WABOT_TEST_POSTGRES_URL
is given (under a tenant of its own). Runs the same checks as the suite's 500-message
version (`tests/agents/test_memory_keeper.py`) and prints the real time each backend took.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000, help="a multiple of 5")
    parser.add_argument("--database-url", default=os.environ.get("WABOT_TEST_POSTGRES_URL"))
    args = parser.parse_args()

    from loguru import logger

    from tests.agents.test_memory_keeper import a_long_relationship
    from tests.fakes.openai_server import FakeOpenAI

    logger.remove()
    with tempfile.TemporaryDirectory() as tmp:
        targets = [("SQLite", f"sqlite:///{Path(tmp) / 'bench.db'}")]
        if args.database_url:
            targets.append(("PostgreSQL", args.database_url))
        for name, url in targets:
            with FakeOpenAI() as server:
                began = time.perf_counter()
                asyncio.run(a_long_relationship(url, Path(tmp), server,
                                                "bench" + uuid.uuid4().hex[:8], args.messages))
                print(f"{name}: {args.messages} messages, checks passed, "
                      f"{time.perf_counter() - began:.1f} s")


if __name__ == "__main__":
    main()
