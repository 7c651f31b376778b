"""Issue #24.6: on the Cloud API every owner alert went to the business's own chat, outside
the 24-hour window, and was dropped with a log line; the console had no alerts section.

Now every alert is kept (the console's alerts page, after a restart too) and is the
`owner.alert` webhook event; on the Cloud API it reaches `alerts.owner_number` as text while
that phone wrote in within 24 h, else as the approved `alerts.template`; and the log and the
page say so when neither is configured. Over real HTTP: Meta's webhook in, the loopback
Graph fake out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from loguru import logger
from sqlalchemy import text

from tests.fakes import meta_webhooks as meta
from tests.fakes.graph_server import FakeGraph
from tests.fakes.openai_server import FakeOpenAI
from tests.gateway.cloud.test_webhook import T0, Cloud, cloud_settings

OWNER_WA = "5215599998888"
OWNER = "+" + OWNER_WA


@pytest.fixture
def logged() -> AsyncIterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(m.record["message"]), level="INFO")
    yield lines  # type: ignore[misc]
    logger.remove(sink)


@pytest.fixture
def open_cloud(db_url: str, tmp_path: Path, openai_server: FakeOpenAI,
               graph_server: FakeGraph, tenant: str) -> Callable[..., Any]:
    @asynccontextmanager
    async def run(**alerts: Any) -> AsyncIterator[Cloud]:
        settings = cloud_settings(db_url, tmp_path, openai_server, graph_server, tenant)
        settings = settings.model_copy(update={
            "alerts": settings.alerts.model_copy(update=alerts),
            "webhooks": settings.webhooks.model_copy(update={
                "urls": ["http://127.0.0.1:9/hook"]})})
        c = Cloud(settings, graph_server)
        await c.app.start()
        try:
            yield c
        finally:
            await c.settle()
            await c.app.stop()
            await c.http.aclose()

    return run


async def owner_alert_events(c: Cloud) -> int:
    await c.app.unit.outbox.flush()
    async with c.app.unit.db.connect() as conn:
        return int((await conn.execute(text(
            "SELECT count(*) FROM webhook_outbox WHERE tenant = :t AND event = 'owner.alert'"),
            {"t": c.tenant})).scalar_one())


async def test_without_an_owner_number_the_alert_is_kept_and_the_log_says_why(
        open_cloud: Callable[..., Any], graph_server: FakeGraph, logged: list[str]) -> None:
    async with open_cloud() as c:
        alerts = c.app.unit.alerts
        assert not await alerts.alert("turn_failed", "a turn failed")
        await alerts.drain()
        assert graph_server.sends() == []  # never a send Meta is certain to refuse
        assert any("owner alerts reach the console's alerts page and the owner.alert "
                   "webhook only" in line for line in logged)
        assert any("owner alert not sent on WhatsApp: set alerts.owner_number" in line
                   for line in logged)
        assert "Set alerts.owner_number" in alerts.where()
        assert await owner_alert_events(c) == 1
        assert alerts.unread == 1
    async with open_cloud() as again:  # after a restart the page still has it, unread
        kept = await again.app.unit.alerts.kept()
        assert [(a["kind"], a["read"]) for a in kept] == [("turn_failed", False)]
        assert kept[0]["whatsapp"] == "not sent: no alerts.owner_number"
        assert again.app.unit.alerts.unread == 1
        assert await again.app.unit.alerts.mark_read() == 1
        assert again.app.unit.alerts.unread == 0
        assert [a["read"] for a in await again.app.unit.alerts.kept()] == [True]


async def test_an_owner_who_wrote_in_today_gets_the_alert_as_text(
        open_cloud: Callable[..., Any], graph_server: FakeGraph) -> None:
    async with open_cloud(owner_number=OWNER) as c:
        assert await c.post(meta.text(OWNER_WA, "hola", at=T0)) == 200
        await c.settle()
        assert await c.app.unit.alerts("daily-cap:+5215512345678", "a customer hit the cap")
        assert graph_server.texts(OWNER_WA)[-1] == "⚠️ wabot: a customer hit the cap"
        await c.app.unit.alerts.drain()
        [kept] = await c.app.unit.alerts.kept()
        assert kept["whatsapp"] == "sent to +52155****8888"


async def test_outside_the_owners_window_the_alert_goes_as_the_approved_template(
        open_cloud: Callable[..., Any], graph_server: FakeGraph) -> None:
    async with open_cloud(owner_number=OWNER, template="owner_alert",
                          template_language="es_MX") as c:
        assert await c.app.unit.alerts.alert("human_requested",
                                             "+5215512345678 asks for a person:\nrefund")
        [sent] = graph_server.sends("template")
        assert sent.body["to"] == OWNER_WA
        template = sent.body["template"]
        assert template["name"] == "owner_alert" and template["language"] == {"code": "es_MX"}
        [param] = template["components"][0]["parameters"]
        assert param["text"] == "⚠️ wabot: +5215512345678 asks for a person: refund"


async def test_outside_the_window_without_a_template_the_alert_is_not_sent(
        open_cloud: Callable[..., Any], graph_server: FakeGraph, logged: list[str]) -> None:
    async with open_cloud(owner_number=OWNER) as c:
        assert not await c.app.unit.alerts.alert("phone_unseen", "the phone is offline")
        assert graph_server.sends() == []
        assert any("has not written to the business in the last 24 h and no "
                   "alerts.template" in line for line in logged)
        assert all(OWNER not in line for line in logged)  # masked
        assert "only while that phone has written" in c.app.unit.alerts.where()


async def test_every_alert_path_fires_the_owner_alert_webhook(
        open_cloud: Callable[..., Any]) -> None:
    async with open_cloud() as c:
        alerts = c.app.unit.alerts
        await alerts("journal", "the database is not accepting messages")  # the AlertOwner seam
        alerts.fire("restarted_after_crash", "wabot restarted after a crash")
        await alerts.alert("whatsapp_logged_out", "logged out")
        await alerts.drain()
        assert await owner_alert_events(c) == 3
        assert len(await alerts.kept()) == 3
