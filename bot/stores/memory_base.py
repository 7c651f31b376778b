"""The agent-memory contract: every backend (SQL, MongoDB) passes the same suite.

A customer's memory is their full message history (append-only, ordered by `seq`), a
rolling summary of the oldest part of it, profile facts the agent learned, and the history
of lifecycle stage changes. Every call is keyed by `CustomerKey`: one customer's memory is
never reachable through another's key.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from bot.models import CustomerKey, MemoryMessage, Role, Stage


@dataclass(frozen=True, slots=True)
class Fact:
    """Something the agent learned about the customer. `key` is a short slug
    (`dog_name`, `budget`); saving the same key again updates it."""

    key: str
    value: str
    category: str = "detail"  # interest | objection | preference | detail | purchase
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class StageChange:
    from_stage: Stage | None
    to_stage: Stage
    reason: str
    at: datetime


@dataclass(slots=True)
class Profile:
    summary: str = ""
    summarized_upto: int = 0  # seq of the last message folded into `summary`
    facts: dict[str, Fact] = field(default_factory=dict)
    stages: list[StageChange] = field(default_factory=list)


def estimate_tokens(text: str) -> int:
    """A cheap, conservative token estimate (≈4 characters a token, plus framing).

    Exact tokenizers need model files downloaded at run time; budgets only need to be safe.
    """
    return len(text) // 3 + 4


def message_to_dict(m: MemoryMessage) -> dict[str, Any]:
    return {
        "seq": m.seq,
        "role": m.role.value,
        "text": m.text,
        "at": m.at.isoformat(),
        "kind": m.kind,
        "msg_id": m.msg_id,
    }


class MemoryStore(ABC):
    """Agent memory. Implementations must be safe for concurrent use by many customers."""

    @abstractmethod
    async def start(self) -> None:
        """Connect and create what is missing (tables, indexes)."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def append(self, key: CustomerKey, messages: list[MemoryMessage]) -> list[MemoryMessage]:
        """Store messages in order and return them with their `seq`.

        A message whose non-empty `msg_id` is already stored for this customer is skipped
        (a redelivered or replayed inbound message is remembered once).
        """

    @abstractmethod
    async def recent(self, key: CustomerKey, limit: int, after_seq: int = 0) -> list[MemoryMessage]:
        """The last `limit` messages with seq > after_seq, oldest first."""

    @abstractmethod
    async def oldest(self, key: CustomerKey, after_seq: int, limit: int) -> list[MemoryMessage]:
        """The first `limit` messages with seq > after_seq, oldest first (for summarizing)."""

    @abstractmethod
    async def count(self, key: CustomerKey, after_seq: int = 0) -> int: ...

    @abstractmethod
    async def profile(self, key: CustomerKey, *, with_stages: bool = True) -> Profile:
        """Summary, facts and (unless `with_stages` is False: a turn does not need them)
        the stage history."""

    @abstractmethod
    async def save_summary(self, key: CustomerKey, summary: str, upto_seq: int) -> None:
        """Replace the rolling summary; `upto_seq` never moves backwards."""

    @abstractmethod
    async def merge_facts(self, key: CustomerKey, facts: list[Fact]) -> None:
        """Add or update facts by key (a later value for the same key replaces the earlier)."""

    @abstractmethod
    async def add_stage_change(self, key: CustomerKey, change: StageChange) -> None: ...

    @abstractmethod
    async def forget(self, key: CustomerKey) -> None:
        """Erase everything held for this customer."""

    async def rekey(self, old: CustomerKey, new: CustomerKey) -> None:
        """Move `old`'s memory to `new` (a LID customer whose number became known).

        This default goes through the contract: `old`'s lines are appended after `new`'s
        (new seqs; a line whose msg_id `new` already holds is kept once), facts `new` lacks
        are added, stages appended, the summary kept when `new` had none; then `old` is
        forgotten. Not one transaction: run again after a crash, agent lines (no msg_id)
        could repeat. Backends that can do better in one transaction override it.
        """
        total = await self.count(old)
        lines = await self.oldest(old, 0, total) if total else []
        had = await self.count(new)
        moved = await self.append(new, [replace(m, seq=0) for m in lines])
        was, now = await self.profile(old), await self.profile(new, with_stages=False)
        await self.merge_facts(new, [f for k, f in was.facts.items() if k not in now.facts])
        for change in was.stages:
            await self.add_stage_change(new, change)
        if was.summary and not now.summary:
            # The summary covers old lines up to summarized_upto: the same lines' new seqs,
            # unless `new` had lines of its own (then nothing is hidden from the window).
            upto = max((n.seq for m, n in zip(lines, moved, strict=False)
                        if m.seq <= was.summarized_upto), default=0) if not had else 0
            await self.save_summary(new, was.summary, upto)
        await self.forget(old)

    async def window(self, key: CustomerKey, token_budget: int, after_seq: int = 0,
                     page: int = 200) -> list[MemoryMessage]:
        """The newest messages (seq > after_seq) that fit `token_budget`, oldest first.

        Reads at most one page: a 5,000-message relationship costs the same as a short one.
        """
        rows = await self.recent(key, page, after_seq)
        picked: list[MemoryMessage] = []
        used = 0
        for m in reversed(rows):
            cost = estimate_tokens(m.text)
            if picked and used + cost > token_budget:
                break
            picked.append(m)
            used += cost
        picked.reverse()
        return picked

    async def export(self, key: CustomerKey) -> dict[str, Any]:
        """Everything held for this customer, as plain JSON-ready data."""
        prof = await self.profile(key)
        total = await self.count(key)
        messages = await self.oldest(key, 0, max(total, 1))
        return {
            "summary": prof.summary,
            "summarized_upto": prof.summarized_upto,
            "facts": [
                {"key": f.key, "value": f.value, "category": f.category,
                 "updated_at": f.updated_at.isoformat() if f.updated_at else None}
                for f in prof.facts.values()
            ],
            "stages": [
                {"from": c.from_stage.value if c.from_stage else None, "to": c.to_stage.value,
                 "reason": c.reason, "at": c.at.isoformat()}
                for c in prof.stages
            ],
            "messages": [message_to_dict(m) for m in messages],
        }


ROLES = {r.value: r for r in Role}
