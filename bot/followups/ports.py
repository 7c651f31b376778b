"""What the rules and the agent's tools need of the scheduler, as a Protocol.

`FollowUpScheduler` composes `RuleRefresh` and `FollowUpTools`; they reach back to it only
through this seam, so neither imports the scheduler and the package has no import cycle.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from bot.clock import Clock
from bot.followups.policy import Policy
from bot.followups.store import FollowUp
from bot.models import CustomerKey
from bot.settings import FollowUpRule, FollowUpSettings
from bot.stores.customers import CustomerStore
from bot.stores.memory_base import MemoryStore


class Scheduling(Protocol):
    s: FollowUpSettings
    rules: dict[str, FollowUpRule]
    policy: Policy
    customers: CustomerStore
    memory: MemoryStore
    clock: Clock

    async def remove(self, ids: list[str]) -> int: ...

    async def schedule(self, key: CustomerKey, kind: str, reason: str, due: datetime,
                       scheduled_at: datetime | None = None) -> FollowUp: ...

    async def pending(self, phone: str | None = None, limit: int | None = None,
                      kinds: list[str] | None = None) -> list[FollowUp]: ...

    async def cancel(self, key: CustomerKey, kind: str | None = None) -> int: ...
