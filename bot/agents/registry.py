"""Every customer's agent, created once, cached while the chat is active, evicted when idle.

`use(key)` is the only way to reach an agent: it creates or reloads it (single-flight:
concurrent first messages share one load), marks it busy so a sweep never evicts it mid-turn,
and stamps its last use. A periodic sweep evicts agents idle longer than the TTL; a hard cap
evicts the least recently used idle agents first.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from loguru import logger

from bot.agents.agent import CustomerAgent
from bot.clock import Clock
from bot.models import CustomerKey
from bot.phones import mask

Loader = Callable[[CustomerKey], Awaitable[tuple[CustomerAgent, bool]]]
EventSink = Callable[[str, CustomerKey], None]  # ("agent_created" | "agent_loaded" | "agent_evicted", key)


class _Slot:
    __slots__ = ("agent", "busy", "last_used")

    def __init__(self, agent: CustomerAgent, now: float) -> None:
        self.agent = agent
        self.busy = 0
        self.last_used = now


class AgentRegistry:
    def __init__(self, loader: Loader, clock: Clock, *, idle_seconds: float = 1800,
                 max_agents: int = 50_000, on_event: EventSink | None = None) -> None:
        self._load = loader
        self._clock = clock
        self.idle_seconds = idle_seconds
        self.max_agents = max_agents
        self._on_event = on_event
        self._slots: OrderedDict[CustomerKey, _Slot] = OrderedDict()
        self._loading: dict[CustomerKey, asyncio.Future[_Slot]] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, key: CustomerKey) -> bool:
        return key in self._slots

    def _now(self) -> float:
        return self._clock.now().timestamp()

    def _emit(self, event: str, key: CustomerKey) -> None:
        if self._on_event is not None:
            self._on_event(event, key)

    async def _slot(self, key: CustomerKey) -> _Slot:
        slot = self._slots.get(key)
        if slot is not None:
            self.hits += 1
            self._slots.move_to_end(key)
            return slot
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        self.misses += 1
        fut: asyncio.Future[_Slot] = asyncio.get_running_loop().create_future()
        self._loading[key] = fut
        try:
            agent, created = await self._load(key)
            slot = _Slot(agent, self._now())
            self._slots[key] = slot
            fut.set_result(slot)
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # consumed here: waiters re-raise it, nobody else must log it
            raise
        finally:
            del self._loading[key]
        self._emit("agent_created" if created else "agent_loaded", key)
        self._enforce_cap()
        return slot

    @asynccontextmanager
    async def use(self, key: CustomerKey) -> AsyncIterator[CustomerAgent]:
        slot = await self._slot(key)
        slot.busy += 1
        try:
            yield slot.agent
        finally:
            slot.busy -= 1
            slot.last_used = self._now()

    def _evict(self, key: CustomerKey) -> None:
        del self._slots[key]
        logger.bind(customer=mask(key.phone)).debug("agent evicted")
        self._emit("agent_evicted", key)

    def _enforce_cap(self) -> None:
        excess = len(self._slots) - self.max_agents
        if excess <= 0:
            return
        for key in [k for k, s in self._slots.items() if not s.busy][:excess]:
            self._evict(key)

    def sweep(self) -> int:
        """Evict agents idle for longer than the TTL (never one in a turn); returns how many."""
        cutoff = self._now() - self.idle_seconds
        idle = [k for k, s in self._slots.items() if not s.busy and s.last_used <= cutoff]
        for key in idle:
            self._evict(key)
        return len(idle)

    async def run_sweeper(self, interval: float) -> None:
        while True:
            await self._clock.sleep(interval)
            try:
                self.sweep()
            except Exception:  # a sweep bug must not stop future sweeps
                logger.exception("agent sweep failed")
