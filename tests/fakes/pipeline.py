"""A whole wabot pipeline on a virtual clock: memory gateway out, fake OpenAI server in."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.app import App
from bot.business import Business
from bot.clock import SystemClock, VirtualClock
from bot.gateway.memory import MemoryGateway
from bot.models import InboundMessage, MessageKind
from bot.settings import Settings, load_settings
from tests.fakes.openai_server import FakeOpenAI

START = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)  # a Monday, 09:00 in Mexico City
BUSINESS = Business(name="Casa Azul", persona="Sofía, a shop assistant",
                    timezone="America/Mexico_City", hours={"mon": "09:00-19:00"})


def make_settings(db_url: str, state_dir: Path, server: FakeOpenAI, tenant: str,
                  **extra: Any) -> Settings:
    base: dict[str, Any] = {
        "tenant": tenant, "state_dir": state_dir, "database_url": db_url,
        "llm": {"base_url": server.base_url, "api_key": "test", "max_retries": 0,
                "timeout": 5},
    }
    for section, values in extra.items():
        if isinstance(values, dict):
            base.setdefault(section, {}).update(values)
        else:
            base[section] = values
    return load_settings(None, **base)


class Pipeline:
    """One App plus the means to drive it: feed messages, move time, read what was sent."""

    def __init__(self, settings: Settings, clock: VirtualClock, gateway: MemoryGateway,
                 business: Business | None = None, **app_kw: Any) -> None:
        self.settings = settings
        self.clock = clock
        self.gateway = gateway
        self.events: list[tuple[str, str]] = []
        self.app = App(settings, gateway, clock=clock, business=business or BUSINESS,
                       on_agent_event=lambda e, k: self.events.append((e, k.phone)), **app_kw)
        self._ids = itertools.count(1)

    def message(self, phone: str, text: str, *, msg_id: str | None = None,
                kind: MessageKind = MessageKind.TEXT, **fields: Any) -> InboundMessage:
        return InboundMessage(
            tenant=self.settings.tenant, phone=phone,
            msg_id=msg_id or f"M{next(self._ids):05d}{phone[-4:]}",
            timestamp=self.clock.now(), text=text, kind=kind,
            chat=self.gateway.chat_for(phone), **fields)

    async def say(self, phone: str, text: str, **kw: Any) -> str:
        msg = self.message(phone, text, **kw)
        await self.app.unit.inbox.feed(msg)
        return msg.msg_id

    async def advance(self, seconds: float) -> None:
        await self.clock.advance(seconds, self.app.unit.inbox.tasks)

    async def settle(self) -> None:
        """Let every open burst close and every turn finish (virtual time moves)."""
        pending = await self.clock.wait(self.app.unit.inbox.tasks, 24 * 3600)
        assert not pending, "turns still running after a virtual day"

    def texts_to(self, phone: str) -> list[str]:
        return self.gateway.texts(self.gateway.chat_for(phone))


@asynccontextmanager
async def pipeline(settings: Settings, *, clock: VirtualClock | None = None,
                   gateway: MemoryGateway | None = None, business: Business | None = None,
                   **app_kw: Any) -> AsyncIterator[Pipeline]:
    clock = clock or VirtualClock(START)
    p = Pipeline(settings, clock, gateway or MemoryGateway(clock), business, **app_kw)
    await p.app.start()
    try:
        yield p
    finally:
        await p.settle()
        await p.app.stop()


@asynccontextmanager
async def on_the_real_clock(settings: Settings) -> AsyncIterator[tuple[App, MemoryGateway]]:
    """The App started on the system clock, open all day: APScheduler runs its own timer
    (for tests of what it does by itself, in real time)."""
    gateway = MemoryGateway(SystemClock())
    app = App(settings, gateway, clock=gateway.clock, business=Business(name="Always open"))
    await app.start()
    try:
        yield app, gateway
    finally:
        await app.stop()


async def eventually(condition: Callable[[], object], within: float = 5.0) -> None:
    """Poll a condition while real I/O (databases, the fake server) completes; fail after
    `within` seconds. For waiting on work outside the virtual clock's reach."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)

