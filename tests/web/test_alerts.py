"""Owner alerts for the daily cap, a logged-out device and a restart after a crash."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import insert

from bot.clock import VirtualClock
from bot.ops.status import HEARTBEATS
from bot.stores.db import Database
from tests.fakes.pipeline import START, make_settings, pipeline
from tests.web.conftest import OWN, OwnGateway

ANA = "+5215512345678"


def quick(db_url, tmp_path, openai_server, tenant, **extra):
    return make_settings(db_url, tmp_path, openai_server, tenant, presenter={"enabled": False},
                         inbox={"debounce_seconds": 0}, **extra)


async def test_the_daily_cap_alerts_the_owner_once(db_url, tmp_path, openai_server, tenant):
    settings = quick(db_url, tmp_path, openai_server, tenant, limits={"daily_tokens": 10})
    clock = VirtualClock(START)
    gateway = OwnGateway(clock)
    async with pipeline(settings, clock=clock, gateway=gateway) as p:
        for text in ("hi", "hello?", "anyone?"):
            await p.say(ANA, text)
            await p.settle()
            await p.advance(61)
        await p.app.unit.alerts.drain()
        assert [a["kind"] for a in p.app.unit.alerts.recent] == ["daily_cap"]
        assert "daily limit" in gateway.texts(gateway.chat_for(OWN))[0]


class Reason:
    needs_operator = True
    value = "logged_out"

    def __str__(self) -> str:
        return "logged_out"


class EndingGateway(OwnGateway):
    def __init__(self, clock) -> None:
        super().__init__(clock)
        self.status = "connected as +52155****0000"


async def test_a_logged_out_device_alerts_the_owner(db_url, tmp_path, openai_server, tenant):
    settings = quick(db_url, tmp_path, openai_server, tenant,
                     webhooks={"urls": ["http://127.0.0.1:9/hook"], "secret": "s"})
    clock = VirtualClock(START)
    gateway = EndingGateway(clock)
    async with pipeline(settings, clock=clock, gateway=gateway) as p:
        gateway.status = "WhatsApp logged this device out: run `wabot login` to scan a new QR"
        gateway.finished.set_result(Reason())
        await asyncio.sleep(0)  # the future's callbacks run on the next loop pass
        await p.app.unit.alerts.drain()
        await p.app.unit.outbox.flush()
        alert = p.app.unit.alerts.recent[0]
        assert alert["kind"] == "whatsapp_logged_out" and "wabot login" in alert["text"]
        assert await p.app.unit.outbox.count() >= 1  # owner.alert queued for the webhook


async def test_a_restart_after_a_crash_alerts_the_owner(db_url, tmp_path, openai_server,
                                                        tenant):
    settings = quick(db_url, tmp_path, openai_server, tenant)
    db = Database(settings.sql_url)
    await db.create_all()
    async with db.begin() as conn:  # the last run beat an hour ago and never said it stopped
        await conn.execute(insert(HEARTBEATS).values(
            tenant=tenant, pid=999_999, host="vps", started_at=START - timedelta(days=1),
            beat_at=START - timedelta(hours=1), stopped_at=None))
    await db.close()
    async with pipeline(settings) as p:
        await p.app.unit.alerts.drain()
        assert [a["kind"] for a in p.app.unit.alerts.recent] == ["restarted_after_crash"]
    async with pipeline(settings) as again:  # a clean stop since: no alert
        await again.app.unit.alerts.drain()
        assert list(again.app.unit.alerts.recent) == []


async def test_connection_changes_are_events(db_url, tmp_path, openai_server, tenant):
    settings = quick(db_url, tmp_path, openai_server, tenant)
    clock = VirtualClock(START)
    gateway = EndingGateway(clock)
    async with pipeline(settings, clock=clock, gateway=gateway) as p:
        seen: list[str] = []
        p.app.unit.events.listeners.append(
            lambda name, data: seen.append(data["status"]) if name == "connection.changed"
            else None)
        gateway.report("offline: retrying in 30 s")
        gateway.report("connected as +52155****0000")
        assert seen == ["offline: retrying in 30 s", "connected as +52155****0000"]
