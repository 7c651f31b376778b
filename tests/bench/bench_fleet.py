"""A fleet under fire, with figures: three `wabot run` nodes on one PostgreSQL database
serving 30 numbers (15 on the Cloud API against each node's loopback Graph API, 15 on
WhatsApp Web through the stand-in Go layer), one customer per number writing every few
seconds throughout, the fleet's default lease (20 s, renewed every 5 s), and in turn:
kill -9 a node, restart it; kill -9 another, restart it; SIGTERM a third (drain), restart
it; freeze one past its lease (SIGSTOP, then SIGCONT).

    WABOT_TEST_POSTGRES_URL=postgresql://…/test \\
        python -m tests.bench.bench_fleet [--cloud 15] [--web 15] [--nodes 3]
                                          [--lease 20] [--renew 5] [--think 5]

Prints messages, lost, answered twice, replies sent by a node that did not hold the
number, and for each kind of fault how long until the numbers a node left behind were
held elsewhere and answering again (p50/p99/max). Each run gets a database of its own,
dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

from tests.fakes.databases import fresh_database
from tests.fakes.fleet_run import FleetRun, Step


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--cloud", type=int, default=15, help="Cloud API numbers")
    parser.add_argument("--web", type=int, default=15, help="WhatsApp Web numbers")
    parser.add_argument("--customers", type=int, default=1, help="per number")
    parser.add_argument("--think", type=float, default=5.0,
                        help="seconds a customer waits after an answer (±50%%)")
    parser.add_argument("--lease", type=float, default=20.0)
    parser.add_argument("--renew", type=float, default=5.0)
    parser.add_argument("--latency", type=float, default=0.2, help="LLM seconds per reply")
    parser.add_argument("--every", type=float, default=30.0, help="seconds between faults")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep each node's folder (its daemon.log) here")
    args = parser.parse_args()
    base = os.environ.get("WABOT_TEST_POSTGRES_URL")
    if not base:
        print("set WABOT_TEST_POSTGRES_URL to a PostgreSQL database the bench may create "
              "databases next to", file=sys.stderr)
        return 2
    e = args.every
    steps = [Step(e, "kill", "node-a"), Step(2 * e, "start", "node-a"),
             Step(3 * e, "kill", "node-b"), Step(4 * e, "start", "node-b"),
             Step(5 * e, "term", "node-c"), Step(5 * e + 10, "start", "node-c"),
             Step(6 * e + 10, "freeze", "node-a", hold=args.lease + 5)]
    with fresh_database("fleet", base) as url, \
            tempfile.TemporaryDirectory(prefix="wabot-fleet-") as tmp:
        workdir = args.keep or Path(tmp)
        run = FleetRun(workdir, url, nodes=args.nodes, cloud=args.cloud, web=args.web,
                       customers_per_number=args.customers, think=args.think,
                       lease=args.lease, renew=args.renew, llm_latency=args.latency)
        figures = asyncio.run(run.run(steps, duration=7 * e + args.lease + 20,
                                      settle=2 * args.lease + 30))
        if args.keep:
            (args.keep / "timeline.txt").write_text("\n".join(sorted(
                run.log, key=lambda line: float(line.split()[0]))) + "\n")
    print(figures.summary())
    for line in figures.stale[:10]:
        print(f"  sent by a node not holding the number: {line}")
    for action in ("kill", "term", "freeze"):
        late = [o for o in figures.orphans if o.action == action
                and (o.answered is None or o.answered > 30)]
        if late:
            print(f"  {action}: not answering within 30 s: "
                  + ", ".join(f"{o.number} ({o.answered})" for o in late))
    ok = (figures.lost == 0 and figures.stale_sends == 0
          and figures.duplicated <= figures.kills + figures.freezes)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
