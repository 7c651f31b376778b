"""Follow-up jobs stored before the package layout changed must still load and run.

APScheduler pickles each job with its callable as a text reference; a job table written by
an earlier wabot holds `bot.followups:run_followup`. If the function moved without that
reference resolving, APScheduler would fail to restore every pending follow-up at start.
"""

from __future__ import annotations

import pickle
from datetime import UTC, datetime
from pathlib import Path

from apscheduler.triggers.date import DateTrigger
from sqlalchemy import insert

from bot.followups import JobTable, run_followup

TENANT = "+5215500000000"


def test_a_job_row_written_by_an_earlier_release_loads_and_resolves(tmp_path: Path) -> None:
    due = datetime(2026, 3, 14, 10, 0, tzinfo=UTC)
    job_id = f"followup:{TENANT}:+5215512345678:agent"
    # The state exactly as APScheduler 3.11's Job.__getstate__ wrote it for wabot's jobs.
    state = {
        "version": 1, "id": job_id, "func": "bot.followups:run_followup",
        "trigger": DateTrigger(run_date=due), "executor": "default", "args": (),
        "kwargs": {"tenant": TENANT, "phone": "+5215512345678", "kind": "agent",
                   "reason": "did the size fit?", "scheduled_at": "2026-03-11T10:00:00+00:00",
                   "due_at": "2026-03-14T10:00:00+00:00"},
        "name": "agent follow-up for +52155****5678", "misfire_grace_time": 43200,
        "coalesce": True, "max_instances": 1, "next_run_time": due,
    }
    table = JobTable(f"sqlite+aiosqlite:///{tmp_path / 'wabot.sqlite3'}", TENANT)
    try:
        table.t.create(table.store.engine, checkfirst=True)
        with table.store.engine.begin() as conn:
            conn.execute(insert(table.t).values(id=job_id, next_run_time=due.timestamp(),
                                                job_state=pickle.dumps(state, 2)))
        job = table.store.lookup_job(job_id)
        assert job is not None and job.func is run_followup
        [pending] = table.pending()
        assert (pending.phone, pending.kind, pending.reason) == (
            "+5215512345678", "agent", "did the size fit?")
    finally:
        table.close()
