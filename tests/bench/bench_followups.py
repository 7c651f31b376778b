"""Follow-up benchmark (not part of the test run): 100,000 pending follow-ups in the job
store, then the scheduler's start time and memory, and the per-turn store operations.

    python tests/bench/bench_followups.py [--jobs 100000] [--overdue 1000]
                                          [--database-url postgresql://…]

SQLite always (a fresh file); PostgreSQL too when --database-url or $WABOT_TEST_POSTGRES_URL
is given. The measurement runs in a fresh process per database, so the seeding's own memory
does not count: RSS is taken after imports, then after `FollowUpScheduler.start()` (which is
AsyncIOScheduler.start with the SQLAlchemy job store, the missed-while-down sweep, and the
first look for due jobs).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import pickle
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from apscheduler.triggers.date import DateTrigger  # noqa: E402
from loguru import logger  # noqa: E402

from bot.business import Business  # noqa: E402
from bot.clock import SystemClock  # noqa: E402
from bot.followups import (  # noqa: E402
    JOB_FUNC,
    FollowUp,
    FollowUpScheduler,
    JobTable,
    erase_tenant_followups,
)
from bot.settings import FollowUpSettings  # noqa: E402


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def phone(i: int) -> str:
    return f"+52155{i:08d}"


def seed(url: str, tenant: str, jobs: int, overdue: int) -> float:
    """Write `jobs` pending follow-ups (`overdue` of them long past due) in one transaction,
    each exactly as APScheduler stores it; returns seconds taken."""
    started = time.perf_counter()
    now = datetime.now(UTC)
    table = JobTable(url, tenant)
    try:
        table.t.create(table.store.engine, checkfirst=True)
        template = {"version": 1, "func": JOB_FUNC, "executor": "default", "args": (),
                    "misfire_grace_time": 12 * 3600, "coalesce": True, "max_instances": 1}
        rows: list[dict[str, Any]] = []
        for i in range(jobs):
            late = i < overdue
            at = (now - timedelta(days=2, minutes=i) if late
                  else now + timedelta(hours=1, seconds=random.randrange(90 * 86400)))
            kind = "agent" if i % 2 else "lead_silent"
            fu = FollowUp(tenant, phone(i), kind, "check whether the size fit", now, at)
            state = {**template, "id": fu.job_id, "name": f"{kind} follow-up",
                     "trigger": DateTrigger(at, UTC), "kwargs": fu.kwargs(),
                     "next_run_time": at}
            rows.append({"id": fu.job_id, "next_run_time": at.timestamp(),
                         "job_state": pickle.dumps(state, pickle.HIGHEST_PROTOCOL)})
        with table.store.engine.begin() as conn:
            for i in range(0, len(rows), 10_000):
                conn.execute(table.t.insert(), rows[i:i + 10_000])
    finally:
        table.close()
    return time.perf_counter() - started


async def measure(url: str, tenant: str) -> dict[str, Any]:
    """Start a scheduler over the seeded table: time, memory, and per-turn operations."""
    logger.remove()  # the overdue jobs log one line each: not what is being measured
    gc.collect()
    before = rss_bytes()
    settings = FollowUpSettings()
    # Start-up touches only the job store: the other parts are used when a job fires.
    sched = FollowUpScheduler(tenant, url, settings, customers=None, memory=None,  # type: ignore[arg-type]
                              inbox=None, business=Business(name="bench"),  # type: ignore[arg-type]
                              clock=SystemClock())
    t0 = time.perf_counter()
    await sched.start()
    for _ in range(3):  # resume() runs APScheduler's first look for due jobs on the loop
        await asyncio.sleep(0)
    start_s = time.perf_counter() - t0
    gc.collect()
    after = rss_bytes()

    def timed(fn: Any, *args: Any, n: int = 200) -> float:
        t = time.perf_counter()
        for _ in range(n):
            fn(*args)
        return (time.perf_counter() - t) / n * 1000

    store = sched.table
    lookup_ms = timed(store.pending, phone(50_001), None, None, ["agent", "lead_silent"])
    scan_ms = timed(store.pending, phone(50_001), n=5)
    next_ms = timed(sched.store_next_run_time)
    due_ms = timed(store.pending, None, None, datetime.now(UTC))
    list_ms = timed(store.pending, None, 100, n=20)
    remaining = store.count()
    await sched.stop()
    return {"start_seconds": round(start_s, 3), "rss_before_mb": round(before / 2**20, 1),
            "rss_after_mb": round(after / 2**20, 1),
            "rss_delta_mb": round((after - before) / 2**20, 1),
            "pending_of_one_customer_ms": round(lookup_ms, 3),
            "all_kinds_of_one_customer_ms": round(scan_ms, 3),
            "next_run_time_ms": round(next_ms, 3), "due_now_ms": round(due_ms, 3),
            "list_first_100_ms": round(list_ms, 3), "jobs_left": remaining,
            "dropped_as_missed": sched.outcomes["missed"]}


def run_one(url: str, jobs: int, overdue: int) -> dict[str, Any]:
    tenant = f"bench{uuid.uuid4().hex[:8]}"
    try:
        seconds = seed(url, tenant, jobs, overdue)
        out = subprocess.run(
            [sys.executable, __file__, "--measure", url, "--tenant", tenant],
            capture_output=True, text=True, check=True, cwd=ROOT)
        result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        result["seed_seconds"] = round(seconds, 1)
        return result
    finally:
        erase_tenant_followups(url, tenant)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--overdue", type=int, default=1_000,
                        help="of which this many were due 2 days ago (dropped at start)")
    parser.add_argument("--database-url", default=os.environ.get("WABOT_TEST_POSTGRES_URL"))
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--tenant", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(asyncio.run(measure(args.measure, args.tenant))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        targets = [("sqlite", f"sqlite:///{Path(tmp) / 'bench.db'}")]
        if args.database_url:
            targets.append(("postgresql", args.database_url))
        print(f"{args.jobs:,} pending follow-ups ({args.overdue:,} of them missed long ago), "
              f"python {sys.version.split()[0]}, cpus {os.cpu_count()}")
        for name, url in targets:
            r = run_one(url, args.jobs, args.overdue)
            print(f"{name:>10}: start {r['start_seconds']:.3f} s, RSS +{r['rss_delta_mb']} MB "
                  f"({r['rss_before_mb']} → {r['rss_after_mb']} MB); one customer's pending "
                  f"{r['pending_of_one_customer_ms']} ms (every turn; any kind, a scan: "
                  f"{r['all_kinds_of_one_customer_ms']} ms), next run time "
                  f"{r['next_run_time_ms']} ms, due now {r['due_now_ms']} ms, first 100 "
                  f"{r['list_first_100_ms']} ms; {r['dropped_as_missed']:,} missed dropped, "
                  f"{r['jobs_left']:,} left (seeding took {r['seed_seconds']} s)")


if __name__ == "__main__":
    main()
