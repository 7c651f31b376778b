"""The composition root: builds every part from Settings and owns start/stop order.

Start: stores → LLM → agents → presenter → inbox → gateway → recovery → background tasks.
Stop, in reverse: stop accepting → finish turns in flight (bounded grace) → background tasks →
gateway → LLM → stores last.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from contextlib import suppress
from pathlib import Path
from types import TracebackType
from typing import Any

from loguru import logger

from bot.agents.agent import AgentDeps, Budget, CustomerAgent
from bot.agents.registry import AgentRegistry, EventSink
from bot.agents.tools import default_tools
from bot.business import DEFAULT_BUSINESS, Business, load_business
from bot.clock import Clock, SystemClock
from bot.gateway.base import Gateway
from bot.inbox import Inbox
from bot.llm import LLM
from bot.models import CustomerKey, InboundMessage
from bot.phones import mask
from bot.presenter import Presenter
from bot.settings import Settings
from bot.stores.customers import CustomerStore
from bot.stores.db import Database
from bot.stores.memory_base import MemoryStore


def load_business_for(settings: Settings) -> Business:
    """The configured business profile; the embedded default when none is configured."""
    if settings.business_file is not None:
        return load_business(settings.business_file)
    local = Path("config/business.yaml")
    if local.is_file():
        return load_business(local)
    logger.warning("no business profile configured: agents speak for a generic shop. "
                   "Copy config/business.example.yaml to config/business.yaml and edit it "
                   "(or set WABOT_BUSINESS_FILE)")
    return DEFAULT_BUSINESS


def build_llm(settings: Settings) -> LLM:
    s = settings.llm
    return LLM.from_settings(
        api_key=s.api_key.get_secret_value() if s.api_key else None, base_url=s.base_url,
        model=s.model, timeout=s.timeout, max_retries=s.max_retries,
        temperature=s.temperature, max_tokens=s.max_reply_tokens)


def build_memory(settings: Settings, db: Database) -> MemoryStore:
    if settings.mongodb_url is not None:
        from bot.stores.memory_mongo import MongoMemoryStore

        return MongoMemoryStore(settings.mongodb_url.get_secret_value(),
                                database=settings.mongodb_database)
    from bot.stores.memory_sql import SqlMemoryStore

    return SqlMemoryStore(db)


class App:
    def __init__(self, settings: Settings, gateway: Gateway, *, clock: Clock | None = None,
                 llm: LLM | None = None, business: Business | None = None,
                 on_agent_event: EventSink | None = None) -> None:
        self.settings = settings
        self.gateway = gateway
        self.clock = clock or SystemClock()
        self.business = business or load_business_for(settings)
        self.llm = llm or build_llm(settings)
        self.db = Database(settings.sql_url)
        self.customers = CustomerStore(self.db)
        self.memory = build_memory(settings, self.db)
        s = settings
        self.deps = AgentDeps(
            customers=self.customers, memory=self.memory, llm=self.llm, tools=default_tools(),
            business=self.business,
            budget=Budget(context=s.llm.context_tokens, history=s.llm.history_tokens),
            failure_reply=s.agents.failure_reply)
        self.registry = AgentRegistry(
            self._load_agent, self.clock, idle_seconds=s.agents.idle_evict_minutes * 60,
            max_agents=s.agents.max_cached_agents, on_event=on_agent_event)
        self.presenter = Presenter(gateway, self.clock, s.presenter)
        self.inbox = Inbox(s.tenant, self.customers, self.registry, self.presenter,
                           self.clock, s.inbox)
        self.background: set[asyncio.Task[None]] = set()
        self._started = False

    async def _load_agent(self, key: CustomerKey) -> tuple[CustomerAgent, bool]:
        customer = await self.customers.get(key)
        profile = await self.memory.profile(key)
        return CustomerAgent(key, self.deps, customer, profile), customer is None

    async def _on_inbound(self, msg: InboundMessage) -> None:
        try:
            await self.inbox.feed(msg)
        except Exception:  # the transport must never see (and lose) our exceptions
            logger.bind(customer=mask(msg.phone), msg_id=msg.msg_id).exception(
                "inbound message could not be queued")

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def start(self) -> None:
        self.settings.state_dir.mkdir(parents=True, exist_ok=True)
        await self.db.create_all()
        await self.memory.start()
        self.gateway.on_message(self._on_inbound)
        await self.gateway.start()
        await self.inbox.recover()
        self.spawn(self.registry.run_sweeper(self.settings.agents.sweep_seconds), "sweeper")
        self._started = True
        logger.info("wabot started for tenant {}", self.settings.tenant)

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        self.inbox.close()
        if not await self.inbox.drain(self.settings.stop_grace_seconds):
            logger.warning("turns still running after {} s were cancelled; their messages "
                           "stay in the journal and are answered after restart",
                           self.settings.stop_grace_seconds)
        for task in list(self.background):
            task.cancel()
        for task in list(self.background):
            with suppress(asyncio.CancelledError):
                await task
        await self.gateway.stop()
        await self.llm.close()
        await self.memory.close()
        await self.db.close()
        logger.info("wabot stopped")

    async def __aenter__(self) -> App:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()
