"""Any memory backend, with listeners told what changed (the daemon's cached agents).

Whatever writes a customer's memory in the daemon (an owner's line, a takeover note, the
opt-out confirmation, the memory keeper's summary and facts, the agent's tools) goes through
this store, so a cached agent's window and profile follow every change without re-reading
them. A listener is told after the backend accepted the write.
"""

from __future__ import annotations

from typing import Any, Protocol

from bot.models import CustomerKey, MemoryMessage
from bot.stores.memory_base import Fact, MemoryStore, Profile, StageChange


class MemoryListener(Protocol):
    def appended(self, key: CustomerKey, stored: list[MemoryMessage]) -> None: ...

    def summarized(self, key: CustomerKey, summary: str, upto_seq: int) -> None: ...

    def facts_merged(self, key: CustomerKey, facts: list[Fact]) -> None: ...

    def forgotten(self, key: CustomerKey) -> None: ...


class ObservedMemory(MemoryStore):
    def __init__(self, inner: MemoryStore) -> None:
        self.inner = inner
        self.listeners: list[MemoryListener] = []

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    async def append(self, key: CustomerKey, messages: list[MemoryMessage]) -> list[MemoryMessage]:
        stored = await self.inner.append(key, messages)
        for listener in self.listeners:
            listener.appended(key, stored)
        return stored

    async def recent(self, key: CustomerKey, limit: int, after_seq: int = 0) -> list[MemoryMessage]:
        return await self.inner.recent(key, limit, after_seq)

    async def oldest(self, key: CustomerKey, after_seq: int, limit: int) -> list[MemoryMessage]:
        return await self.inner.oldest(key, after_seq, limit)

    async def count(self, key: CustomerKey, after_seq: int = 0) -> int:
        return await self.inner.count(key, after_seq)

    async def profile(self, key: CustomerKey, *, with_stages: bool = True) -> Profile:
        return await self.inner.profile(key, with_stages=with_stages)

    async def save_summary(self, key: CustomerKey, summary: str, upto_seq: int) -> None:
        await self.inner.save_summary(key, summary, upto_seq)
        for listener in self.listeners:
            listener.summarized(key, summary, upto_seq)

    async def merge_facts(self, key: CustomerKey, facts: list[Fact]) -> None:
        await self.inner.merge_facts(key, facts)
        for listener in self.listeners:
            listener.facts_merged(key, facts)

    async def add_stage_change(self, key: CustomerKey, change: StageChange) -> None:
        await self.inner.add_stage_change(key, change)

    async def forget(self, key: CustomerKey) -> None:
        await self.inner.forget(key)
        for listener in self.listeners:
            listener.forgotten(key)

    async def rekey(self, old: CustomerKey, new: CustomerKey) -> None:
        await self.inner.rekey(old, new)
        for listener in self.listeners:  # both changed outside the listeners' view
            listener.forgotten(old)
            listener.forgotten(new)

    async def export(self, key: CustomerKey) -> dict[str, Any]:
        return await self.inner.export(key)
