"""Failed turns are retried until a turn really succeeds (issue #24): backoff per customer,
and one customer at a time until a retried turn is answered.

The probe (a one-word question) says the endpoint answers; it does not say a conversation
will: a provider may rate-limit the burst of retries with 429, or answer the probe and fail
every turn. So after an outage the oldest waiting customer is retried alone; once a retried
turn is answered the others follow at once. A retry that fails again waits longer each time
(`retry.probe_seconds`, doubling, at most `MAX_WAIT`), and the next lone retry waits
`probe_seconds` after it, until the messages are older than `retry.max_age_hours`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.models import CustomerKey, InboundMessage

MAX_WAIT = timedelta(minutes=30)


@dataclass(slots=True)
class Attempt:
    count: int  # retries so far
    next_at: datetime  # the customer is not retried before
    in_flight: bool = True  # queued; what became of it is not known yet


class Retries:
    def __init__(self, first: timedelta) -> None:
        self.first = first
        self.attempts: dict[CustomerKey, Attempt] = {}
        self.proven = False  # a retried turn was answered since one last failed
        self.lone_at: datetime | None = None  # when the last lone retry was queued

    def learn(self, failed: set[CustomerKey], busy: set[CustomerKey]) -> None:
        """What became of the retries: a customer neither failed nor in a turn was answered."""
        for key, attempt in list(self.attempts.items()):
            if key in busy:
                continue
            if key not in failed:
                del self.attempts[key]
                self.proven = True
            elif attempt.in_flight:
                attempt.in_flight = False
                self.proven = False

    def plan(self, groups: list[list[InboundMessage]], now: datetime,
             ) -> tuple[list[list[InboundMessage]], datetime | None]:
        """The customers (their messages) to retry now, and when to look again."""
        ready, later = [], []
        for group in groups:
            attempt = self.attempts.get(group[0].key)
            if attempt is None or attempt.next_at <= now:
                ready.append(group)
            elif not attempt.in_flight:
                later.append(attempt.next_at)
        if not self.proven and ready:
            if any(a.in_flight for a in self.attempts.values()):
                ready = []  # the lone retry is running: its turn's end wakes the next pass
            elif self.lone_at is not None and now < self.lone_at + self.first:
                later.append(self.lone_at + self.first)
                ready = []
            else:
                ready = ready[:1]
        return ready, min(later, default=None)

    def tried(self, key: CustomerKey, now: datetime) -> None:
        count = self.attempts[key].count + 1 if key in self.attempts else 1
        wait = min(MAX_WAIT, self.first * 2 ** min(count - 1, 16))
        self.attempts[key] = Attempt(count, now + wait)
        if not self.proven:
            self.lone_at = now

    def watches(self, key: CustomerKey) -> bool:
        return key in self.attempts
