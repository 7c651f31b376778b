"""The daemon under kill -9, with figures: `wabot run` on the Cloud transport against the
fake Graph API and the fake OpenAI server (200 ms per completion); customers send signed
webhooks at a steady rate; SIGKILL at random moments, restarted each time.

    python -m tests.bench.bench_chaos [--customers 300] [--messages 3] [--kills 5]
                                      [--rate 15] [--latency 0.2] [--seed 11]

Prints messages, kills, lost, duplicated, stuck journal lines and p50/p99 time to reply
(from the first webhook attempt to the reply reaching the Graph API).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

from tests.fakes.chaos import run_chaos


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=300)
    parser.add_argument("--messages", type=int, default=3, help="per customer")
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--rate", type=float, default=15.0, help="messages per second")
    parser.add_argument("--latency", type=float, default=0.2, help="LLM seconds per reply")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wabot-chaos-") as tmp:
        figures = asyncio.run(run_chaos(
            Path(tmp), customers=args.customers, per_customer=args.messages,
            kills=args.kills, rate=args.rate, llm_latency=args.latency, seed=args.seed))
    print(f"messages          {figures.messages}")
    print(f"kills (SIGKILL)   {figures.kills}")
    print(f"answered          {figures.answered}")
    print(f"lost              {figures.lost}")
    print(f"duplicated        {figures.duplicated}")
    print(f"stuck in journal  {figures.stuck}")
    print(f"webhook retries   {figures.webhook_retries}")
    print(f"time to reply p50 {figures.percentile(50):.2f} s")
    print(f"time to reply p99 {figures.percentile(99):.2f} s")
    restart = sum(figures.restarts) / max(1, len(figures.restarts))
    print(f"restart (SIGKILL → listening again) {restart:.1f} s on average")
    print(f"run               {figures.seconds:.1f} s")
    return 0 if figures.lost == 0 and figures.stuck == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
