"""`wabot run` killed with SIGKILL while customers write: nothing lost, nothing answered
twice beyond the one unavoidable case, nothing left in the journal.

Run alone with `pytest -m chaos`; the full size (300 customers × 3 messages, 5 kills) is
`python -m tests.bench.bench_chaos`, or here with WABOT_CHAOS_CUSTOMERS=300.

A reply can go out twice only when the process dies after Meta accepted it and before the
journal recorded it answered: Meta's send API has no idempotency key, so that window (one
Graph round trip and one journal write per chat in flight) cannot be closed; outside it,
every redelivery and every recovered message is answered once.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fakes.chaos import run_chaos

pytestmark = pytest.mark.chaos


async def test_kill_9_loses_nothing_and_answers_once(tmp_path: Path) -> None:
    customers = int(os.environ.get("WABOT_CHAOS_CUSTOMERS", "20"))
    figures = await run_chaos(tmp_path, customers=customers, per_customer=3, kills=5,
                              rate=float(os.environ.get("WABOT_CHAOS_RATE", "10")),
                              llm_latency=0.2, seed=int(os.environ.get("WABOT_CHAOS_SEED", "7")))
    print(figures.summary())
    context = f"{figures.summary()}\ntwice: {figures.twice}\n{figures.log[-4000:]}"
    assert figures.kills == 5, context
    assert figures.lost == 0 and figures.answered == figures.messages, context
    assert figures.stuck == 0, context
    assert figures.duplicated <= figures.kills, context
    assert "(wabot run exited with" not in figures.log, context  # the last stop is clean
