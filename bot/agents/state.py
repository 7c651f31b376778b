"""What a cached agent holds, and how it stays true.

A cached agent keeps the customer's row, profile (summary, facts; not the stage history)
and the recent history window after the summary, so a warm turn reads nothing. It stays
true because every change reaches it:

- in the daemon, the stores tell `CacheSync` what they wrote (customer columns, appended
  lines, summaries, facts, forget) and it applies that to the cached agent, if any;
- from another process (`wabot pause`, `resume`, `forget` …), the command leaves a change
  stamp (`bot.stores.stamps`) that the registry checks with one `stat` before it hands out
  a cached agent or row, dropping the agents named there so they reload.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

from bot.models import CustomerKey, MemoryMessage
from bot.stores.customers import Customer
from bot.stores.memory_base import Fact, Profile, estimate_tokens

WINDOW_PAGE = 60  # messages read when an agent is loaded (the prompt takes what fits)


def fit_window(window: list[MemoryMessage], token_budget: int) -> list[MemoryMessage]:
    """The newest messages that fit `token_budget` (always at least one), oldest first."""
    used = 0
    start = len(window)
    for i in range(len(window) - 1, -1, -1):
        cost = estimate_tokens(window[i].text)
        if start < len(window) and used + cost > token_budget:
            break
        used += cost
        start = i
    return window[start:]


def merge_window(window: list[MemoryMessage], stored: list[MemoryMessage], after_seq: int,
                 token_budget: int) -> list[MemoryMessage]:
    """`window` plus newly stored lines, in seq order, without the summarized part, trimmed
    to what a prompt could ever use."""
    known = {m.seq for m in window}
    new = [m for m in stored if m.seq > after_seq and m.seq not in known]
    if not new:
        return window
    merged = window + new
    if any(a.seq > b.seq for a, b in pairwise(merged)):
        merged.sort(key=lambda m: m.seq)  # concurrent writers may land out of order
    return fit_window(merged, token_budget)


class CachedState:
    """The mutable part of an agent the rest of the daemon may update."""

    __slots__ = ("complete", "customer", "profile", "window")

    def __init__(self, customer: Customer | None, profile: Profile,
                 window: list[MemoryMessage], complete: bool = False) -> None:
        self.customer = customer
        self.profile = profile
        self.window = window
        # True while `window` holds every message after the summary: the memory keeper
        # then knows without a query that there is nothing to fold yet.
        self.complete = complete

    def add_stored(self, stored: list[MemoryMessage], token_budget: int) -> None:
        before = len(self.window)
        known = {m.seq for m in self.window}
        fresh = sum(1 for m in stored if m.seq > self.profile.summarized_upto
                    and m.seq not in known)
        self.window = merge_window(self.window, stored, self.profile.summarized_upto,
                                   token_budget)
        if len(self.window) < before + fresh:
            self.complete = False  # trimmed: older unsummarized lines are only in the store

    def unsummarized(self) -> list[MemoryMessage] | None:
        """Every message after the summary, when the window holds them all."""
        return self.window if self.complete else None


Lookup = Callable[[CustomerKey], CachedState | None]
Drop = Callable[[CustomerKey], None]


class CacheSync:
    """Applies what the stores wrote to the cached agent of that customer, if cached."""

    def __init__(self, lookup: Lookup, drop: Drop, window_tokens: int) -> None:
        self._lookup = lookup
        self._drop = drop
        self.window_tokens = window_tokens

    # --- customers (CustomerStore listener) ---------------------------------------------

    def customer_changed(self, key: CustomerKey, values: dict[str, Any] | None) -> None:
        state = self._lookup(key)
        if state is None:
            return
        if values is None:  # forgotten
            self._drop(key)
            return
        if state.customer is None:
            if "id" in values:  # the whole row (created on first contact)
                state.customer = Customer.model_validate(values)
            else:
                self._drop(key)  # a change to a row we do not hold: reload it
            return
        for name, value in values.items():
            setattr(state.customer, name, value)

    # --- memory (ObservedMemory listener) -----------------------------------------------

    def appended(self, key: CustomerKey, stored: list[MemoryMessage]) -> None:
        state = self._lookup(key)
        if state is not None and stored:
            state.add_stored(stored, self.window_tokens)

    def summarized(self, key: CustomerKey, summary: str, upto_seq: int) -> None:
        state = self._lookup(key)
        if state is None or upto_seq < state.profile.summarized_upto:
            return  # the store refused a stale summary the same way
        state.profile.summary, state.profile.summarized_upto = summary, upto_seq
        state.window = [m for m in state.window if m.seq > upto_seq]

    def facts_merged(self, key: CustomerKey, facts: list[Fact]) -> None:
        state = self._lookup(key)
        if state is None:
            return
        now = datetime.now(UTC)
        for fact in facts:
            state.profile.facts[fact.key] = (fact if fact.updated_at
                                             else replace(fact, updated_at=now))

    def forgotten(self, key: CustomerKey) -> None:
        self._drop(key)

    def unsummarized(self, key: CustomerKey) -> list[MemoryMessage] | None:
        """For the memory keeper: a cached agent's complete unsummarized messages."""
        state = self._lookup(key)
        return state.unsummarized() if state is not None else None
