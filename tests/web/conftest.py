"""A whole pipeline with the console served on 127.0.0.1 (ephemeral port), and clients."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from bot.gateway.memory import MemoryGateway
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
