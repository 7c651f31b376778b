"""A follow-up due outside the Cloud API's 24-hour window, with no template configured, is
skipped before the agent composes it: the model is never called for a message that cannot
go out (regression: the skip used to happen at send time, after the tokens were spent)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from bot.business import Business
from bot.models import CustomerKey
from bot.stores.outbound import OutboundStore
from tests.fakes import meta_webhooks as meta
from tests.fakes.graph_server import FakeGraph
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.pipeline import START, make_settings
from tests.gateway.cloud.test_webhook import PHONE, T0, WA, Cloud

OPEN_ALL_DAY = Business(name="Casa Azul", persona="Sofía", timezone="America/Mexico_City")


@pytest.fixture
async def cloud(tmp_path: Path, openai_server: FakeOpenAI, graph_server: FakeGraph,
                tenant: str) -> AsyncIterator[Cloud]:
    settings = make_settings(
        f"sqlite:///{tmp_path / 'wabot.db'}", tmp_path, openai_server, tenant,
        whatsapp={"transport": "cloud"},
        cloud={"phone_number_id": graph_server.phone_number_id,
               "access_token": graph_server.token, "app_secret": meta.APP_SECRET,
               "verify_token": meta.VERIFY_TOKEN, "graph_url": graph_server.graph_url,
               "listen_port": 0},
        presenter={"enabled": False}, inbox={"debounce_seconds": 0},
        followups={"spread_minutes": 0, "send_hours": "00:00-23:59", "rules": []},
        memory={"insights": False})
    c = Cloud(settings, graph_server, OPEN_ALL_DAY)
    await c.app.start()
    try:
        yield c
    finally:
        await c.settle()
        await c.app.stop()
        await c.http.aclose()


async def _due_after(cloud: Cloud, openai: FakeOpenAI, hours: float) -> tuple[str, int]:
    assert await cloud.post(meta.text(WA, "hola", at=T0)) == 200
    await cloud.settle()
    before = len(openai.chat_requests())
    assert before >= 1  # the reply to "hola"
    followups: Any = cloud.app.unit.followups
    fu = await followups.schedule(CustomerKey(cloud.tenant, PHONE), "agent",
                                  "ask about the blue blouse",
                                  START + timedelta(hours=hours))
    assert fu.due_at == START + timedelta(hours=hours)
    await cloud.clock.advance(hours * 3600 + 60)  # the scheduler's timer fires it
    await cloud.settle()
    [action] = followups.outcomes
    return action, len(openai.chat_requests()) - before


async def test_outside_the_window_without_a_template_no_model_call_is_made(
        cloud: Cloud, openai_server: FakeOpenAI) -> None:
    logged: list[str] = []
    sink = logger.add(lambda m: logged.append(m.record["message"]), level="INFO")
    try:
        action, calls = await _due_after(cloud, openai_server, 25)
    finally:
        logger.remove(sink)
    assert action == "drop"
    assert calls == 0  # no tokens spent on a message that could not go out
    assert len(cloud.graph.sends()) == 1  # only the reply to "hola"
    lines = await OutboundStore(cloud.app.unit.db, cloud.tenant).recent()
    assert [line.status for line in lines] == ["skipped", "accepted"]  # the console's note
    assert "24-hour window" in lines[0].error
    assert any("message skipped: the customer last wrote over 24 h ago" in m for m in logged)
    assert any("dropped: outside the 24-hour window" in m for m in logged)


async def test_inside_the_window_the_follow_up_is_composed_and_sent(
        cloud: Cloud, openai_server: FakeOpenAI) -> None:
    action, calls = await _due_after(cloud, openai_server, 20)
    assert action == "send" and calls == 1
    assert len(cloud.graph.sends("text")) == 2


async def test_with_a_template_the_follow_up_is_composed_outside_the_window(
        cloud: Cloud, openai_server: FakeOpenAI) -> None:
    cloud.gateway.s.followup_template = "seguimiento"
    action, calls = await _due_after(cloud, openai_server, 30)
    assert action == "send" and calls == 1
    assert len(cloud.graph.sends("template")) == 1
