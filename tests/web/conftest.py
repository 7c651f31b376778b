"""A whole pipeline with the console served on 127.0.0.1 (ephemeral port), and clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from bot.gateway.memory import MemoryGateway
from bot.models import CustomerKey
from bot.settings import Settings
from bot.stores.customers import Contact
from tests.fakes.pipeline import Pipeline, make_settings, pipeline

TOKEN = "test-console-token-0123456789"
OWN = "+5215500000000"  # the business's own number


class OwnGateway(MemoryGateway):
    """The in-memory gateway that knows the business's own number, as the WhatsApp one does."""

    connected_as = OWN


@pytest.fixture
def console_settings(db_url, tmp_path, openai_server, tenant):
    return make_settings(db_url, tmp_path, openai_server, tenant,
                         presenter={"enabled": False}, inbox={"debounce_seconds": 0},
                         http={"port": 0, "api_token": TOKEN})


@pytest.fixture
async def served(console_settings) -> AsyncIterator[Pipeline]:
    async with pipeline(console_settings, serve_http=True) as p:
        yield p


@asynccontextmanager
async def serving(settings: Settings, numbers: int = 1) -> AsyncIterator[Pipeline]:
    """The configured number with its console; with `numbers=2` a second number runs in
    the same process on the same stores and console, with a customer of its own under a
    phone the tests use for the first (+5215512345678): what the unscoped routes show must
    stay the configured number's."""
    async with pipeline(settings, serve_http=True) as p:
        if numbers == 1:
            yield p
            return
        second = settings.model_copy(update={"tenant": f"{settings.tenant}-2",
                                             "state_dir": settings.state_dir / "second"})
        second.state_dir.mkdir(parents=True, exist_ok=True)
        async with pipeline(second, clock=p.clock, shared=p.app.shared) as other:
            p.app.consoles.add(other.app.console, other.app.serving)
            await p.app.shared.customers.touch(CustomerKey(second.tenant, "+5215512345678"),
                                               Contact(name="Of the second number"),
                                               p.clock.now())
            yield p


@pytest.fixture(params=["one number", "two numbers"])
async def served_by_one_or_two(request, console_settings) -> AsyncIterator[Pipeline]:
    """`served`, once alone and once beside a second number (modules opt in by naming
    this fixture `served`)."""
    async with serving(console_settings, 2 if request.param == "two numbers" else 1) as p:
        yield p


def client(p: Pipeline, token: str | None = TOKEN) -> httpx.AsyncClient:
    assert p.app.web is not None
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(base_url=p.app.web.url, headers=headers, timeout=10)


@pytest.fixture
async def api(served) -> AsyncIterator[httpx.AsyncClient]:
    async with client(served) as c:
        yield c


@pytest.fixture
def caplog_loguru():
    """The messages loguru logged during the test."""
    from loguru import logger

    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(m.record["message"]), level="DEBUG")
    yield messages
    logger.remove(sink)
