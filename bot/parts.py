"""Single parts built from `Settings`: the model client, the memory store, the business
profile, the knowledge library. The CLI builds these alone (without the daemon's wiring,
`bot.wiring`, which builds everything with them); heavy imports stay inside the functions.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from loguru import logger

from bot.business import DEFAULT_BUSINESS, Business, Product, load_business
from bot.messages import Canned
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.clock import Clock
    from bot.knowledge.library import Library
    from bot.llm import LLM
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
    from bot.llm import LLM

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


def with_canned_texts(settings: Settings, business: Business) -> Settings:
    """The settings with every fixed message filled in the business's language, unless the
    owner wrote their own (bot.messages)."""
    f, lim = settings.followups, settings.limits
    canned = Canned.resolve(business.language, {
        "failure_reply": settings.agents.failure_reply, "rate_notice": lim.notice,
        "budget_notice": lim.budget_notice, "stop_reply": f.optout.stop_reply,
        "start_reply": f.optout.start_reply})
    optout = f.optout.model_copy(update={"stop_reply": canned.stop_reply,
                                         "start_reply": canned.start_reply})
    return settings.model_copy(update={
        "agents": settings.agents.model_copy(update={"failure_reply": canned.failure_reply}),
        "limits": lim.model_copy(update={"notice": canned.rate_notice,
                                         "budget_notice": canned.budget_notice}),
        "followups": f.model_copy(update={"optout": optout})})


def build_library(settings: Settings, db: Database, clock: Clock, llm: LLM,
                  business: Business | None,
                  on_catalog: Callable[[list[Product]], None] | None = None) -> Library:
    """The tenant's knowledge. The catalog is re-read from the business profile at each
    sync (what `wabot catalog import` wrote), unless a profile was given in code."""
    from bot.knowledge.embeddings import Embedder
    from bot.knowledge.library import Library, index_for

    k = settings.knowledge
    products = ((lambda: business.products) if business is not None
                else (lambda: load_business_for(settings).products))
    embedder = Embedder(llm.client, k.embeddings_model) if k.embeddings_model else None
    return Library(index_for(db), settings.tenant, products, k.dir, clock,
                   chunk_chars=k.chunk_chars, embedder=embedder, on_catalog=on_catalog)
