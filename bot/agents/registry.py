"""Every customer's agent, created once, cached while the chat is active, evicted when idle.

`use(key)` is the only way to reach an agent: it creates or reloads it (single-flight:
concurrent first messages share one load), marks it busy so a sweep never evicts it mid-turn,
and stamps its last use. A sweep evicts agents idle longer than the TTL, run when the first
one can go (none cached: it waits for one); a hard cap evicts the least recently used idle
agents first.
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
from bot.stores.customers import Customer
from bot.stores.stamps import EVERYONE, ChangeStamps

Loader = Callable[[CustomerKey], Awaitable[tuple[CustomerAgent, bool]]]
EventSink = Callable[[str, CustomerKey], None]  # ("agent_created" | "agent_loaded" | "agent_evicted", key)


class _Slot:
    __slots__ = ("agent", "busy", "last_used", "stale")

    def __init__(self, agent: CustomerAgent, now: float) -> None:
        self.agent = agent
        self.busy = 0
        self.last_used = now
        self.stale = False  # changed elsewhere while in a turn: reloaded once the turn ends


class AgentRegistry:
    def __init__(self, loader: Loader, clock: Clock, *, idle_seconds: float = 1800,
                 max_agents: int = 50_000, on_event: EventSink | None = None,
                 stamps: ChangeStamps | None = None,
                 on_stamped: Callable[[str], None] | None = None) -> None:
        self._load = loader
        self._clock = clock
        self.idle_seconds = idle_seconds
        self.max_agents = max_agents
        self._on_event = on_event
        self._slots: OrderedDict[CustomerKey, _Slot] = OrderedDict()
        self._loading: dict[CustomerKey, asyncio.Future[_Slot]] = {}
        self._stamps = stamps
        # Told every phone another process changed (cached or not): other caches drop it.
        self.on_stamped = on_stamped
        self.hits = 0
        self.misses = 0
        # The sweeper's wait: until `_due` (a timestamp; None: no agent can go yet), or
        # until `_wake` is done by an agent that can go sooner.
        self._due: float | None = None
        self._wake: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, key: CustomerKey) -> bool:
        return key in self._slots

    def _now(self) -> float:
        return self._clock.now().timestamp()

    def _emit(self, event: str, key: CustomerKey) -> None:
        if self._on_event is not None:
            self._on_event(event, key)

    # --- the cache's truth --------------------------------------------------------------

    def _check_stamps(self) -> None:
        """Drop agents another process changed (one `stat` when nothing changed)."""
        if self._stamps is None:
            return
        for phone in self._stamps.poll():
            self.changed_elsewhere(phone)

    def changed_elsewhere(self, phone: str) -> None:
        """Another process changed this customer (`EVERYONE`: anyone): drop what is
        cached of them, here and in the other caches (`on_stamped`)."""
        if self.on_stamped is not None:
            self.on_stamped(phone)
        if phone == EVERYONE:
            for key in list(self._slots):
                self.drop(key)
            return
        for key in [k for k in self._slots if k.phone == phone]:
            self.drop(key)

    def peek(self, key: CustomerKey) -> CustomerAgent | None:
        """The cached agent, if it is cached and current (no load, no use stamp)."""
        self._check_stamps()
        slot = self._slots.get(key)
        return slot.agent if slot is not None and not slot.stale else None

    def resident_customer(self, key: CustomerKey) -> Customer | None:
        agent = self.peek(key)
        return agent.customer if agent is not None else None

    def drop(self, key: CustomerKey) -> None:
        """Forget what is cached for `key`: its next use reloads it from the stores."""
        slot = self._slots.get(key)
        if slot is None:
            return
        if slot.busy:
            slot.stale = True
        else:
            del self._slots[key]

    async def _slot(self, key: CustomerKey) -> _Slot:
        self._check_stamps()
        slot = self._slots.get(key)
        if slot is not None and slot.stale and not slot.busy:
            del self._slots[key]
            slot = None
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
            if slot.stale and not slot.busy and self._slots.get(key) is slot:
                del self._slots[key]
            self._evictable(slot)

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

    def _evictable(self, slot: _Slot) -> None:
        """An agent out of its turn: wake the sweeper if it can go before the sweep due."""
        if slot.busy or self._wake is None or self._wake.done():
            return
        if self._due is None or slot.last_used + self.idle_seconds < self._due:
            self._wake.set_result(None)

    def _first_eviction(self) -> float | None:
        """When the first cached agent can be evicted (a timestamp), None if none can."""
        idle = [s.last_used for s in self._slots.values() if not s.busy]
        return min(idle) + self.idle_seconds if idle else None

    async def run_sweeper(self, interval: float) -> None:
        """Sweep until cancelled: when the first agent can go, at most once per `interval`
        (agents that go within it share a sweep); with none that can, wait for one."""
        loop = asyncio.get_running_loop()
        while True:
            swept = self._now()
            try:
                self.sweep()
            except Exception:  # a sweep bug must not stop future sweeps
                logger.exception("agent sweep failed")
            first = self._first_eviction()
            self._due = None if first is None else max(first, swept + interval)
            self._wake = loop.create_future()
            # A timestamp read back from the clock can fall a microsecond short of the
            # TTL: the wait rounds up to the next millisecond.
            left = None if self._due is None else self._due - self._now() + 0.001
            await self._clock.idle(self._wake, left)
