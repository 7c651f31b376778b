"""Each customer's pending follow-ups, cached so the lifecycle rules' refresh after every
inbound turn reads nothing from the job table (issue #15: a warm turn issues no SELECT).

An entry holds all of a customer's jobs of the known kinds (the agent's and the configured
rules'), as the job table holds them. Jobs are added only by this process (`put`: one
daemon per tenant; recorded before the insert, which APScheduler may run and remove at
once); every removal made here updates the entry (`remove_ids`, the timer's take-due,
APScheduler's own removal of a job it runs, through its EVENT_JOB_REMOVED). A
command in another process can only remove (`wabot followups cancel`, `forget`): the entry
then names a job that is gone, which is harmless — the rules re-add a silent rule anyway,
removing a missing id is a no-op, and a job only ever fires from the table itself.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime

from bot.followups.store import FollowUp

MAX_CUSTOMERS = 100_000  # ~100 bytes per customer with no job: a few MB at most


class PendingCache:
    def __init__(self, kinds: Iterable[str], limit: int = MAX_CUSTOMERS) -> None:
        self.kinds = frozenset(kinds)
        self.limit = limit
        self._jobs: dict[str, dict[str, FollowUp]] = {}
        # Lookups under way: phone → changed meanwhile (then what it found is not kept).
        self._looking: dict[str, bool] = {}
        self._lock = threading.Lock()  # removals run in worker threads

    def covers(self, kinds: list[str] | None) -> bool:
        return kinds is not None and set(kinds) <= self.kinds

    def get(self, phone: str, kinds: list[str]) -> list[FollowUp] | None:
        """The customer's pending jobs of these kinds, soonest first; None: not known."""
        jobs = self._jobs.get(phone)
        if jobs is None:
            return None
        found = [fu for kind, fu in jobs.items() if kind in kinds]
        return sorted(found, key=_when)

    def looking(self, phone: str) -> None:
        """A lookup of every known kind of the customer's jobs starts."""
        with self._lock:
            self._looking.setdefault(phone, False)

    def found(self, phone: str, found: list[FollowUp] | None) -> None:
        """Remember what the lookup found (None: it failed), unless the customer's jobs
        changed while it ran."""
        with self._lock:
            changed = self._looking.pop(phone, True)
            if changed or found is None:
                return
            if len(self._jobs) >= self.limit:
                self._jobs.pop(next(iter(self._jobs)))  # the oldest entry
            self._jobs[phone] = {fu.kind: fu for fu in found if fu.kind in self.kinds}

    def none_yet(self, phone: str) -> None:
        """A first contact (no row when their message was journaled): no job pending."""
        with self._lock:
            if phone in self._jobs or phone in self._looking:
                return
            if len(self._jobs) >= self.limit:
                self._jobs.pop(next(iter(self._jobs)))
            self._jobs[phone] = {}

    def added(self, fu: FollowUp, at: datetime) -> None:
        with self._lock:
            self._changed(fu.phone)
            jobs = self._jobs.get(fu.phone)
            if jobs is not None and fu.kind in self.kinds:
                jobs[fu.kind] = replace(fu, run_at=at.astimezone(UTC))

    def removed(self, ids: Iterable[str]) -> None:
        with self._lock:
            for job in ids:
                # followup:<tenant>:<phone>:<kind>; the tenant may hold colons, phone/kind not
                _, phone, kind = job.rsplit(":", 2)
                self._changed(phone)
                jobs = self._jobs.get(phone)
                if jobs is not None:
                    jobs.pop(kind, None)

    def _changed(self, phone: str) -> None:
        if phone in self._looking:
            self._looking[phone] = True


def _when(fu: FollowUp) -> datetime:
    return fu.run_at or fu.due_at
