"""Three `wabot run` processes on one PostgreSQL database serving six numbers, three on the
Cloud API and three on WhatsApp Web (the stand-in Go layer), customers writing throughout:
one node killed, one drained, one frozen past its lease. Nothing is lost, at most one
message is answered twice per kill, no reply leaves a node that does not hold the number,
and every number left behind answers again within 30 s.

The full size (3 nodes, 30 numbers) is `python -m tests.bench.bench_fleet`. Real
processes and real seconds: in the `chaos` group (`pytest -m chaos`).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fakes.fleet_run import FleetRun, Step

pytestmark = [pytest.mark.chaos, pytest.mark.skipif(
    not os.environ.get("WABOT_TEST_POSTGRES_URL"),
    reason="several nodes need PostgreSQL (set WABOT_TEST_POSTGRES_URL)")]

LEASE = 6.0


async def test_kill_drain_and_freeze_lose_nothing_and_the_numbers_move(
        tmp_path: Path, fleet_db_url: str) -> None:
    run = FleetRun(tmp_path, fleet_db_url, nodes=3, cloud=3, web=3, customers_per_number=2,
                   think=2.0, lease=LEASE, renew=1.0, llm_latency=0.05)
    figures = await run.run([
        Step(4, "kill", "node-a"),
        Step(16, "term", "node-b"),
        Step(18, "start", "node-a"),
        Step(30, "freeze", "node-c", hold=LEASE + 4),
    ], duration=48, settle=40)
    report = figures.summary() + "\n" + "\n".join(
        f"--- {name}\n{log[-4000:]}" for name, log in figures.logs.items())
    assert figures.messages > 100, report
    assert figures.lost == 0, report
    assert figures.duplicated <= figures.kills, report
    assert figures.stale_sends == 0, f"{figures.stale}\n{report}"
    left = {o.action: o for o in figures.orphans}
    assert set(left) == {"kill", "term", "freeze"}, report
    assert all(o.answered is not None and o.answered <= 30 for o in figures.orphans), report
    drained = figures.recovery("term", "taken")
    assert drained and max(drained) <= 5, report
