"""Webhooks out (signed, durable, retried), owner alerts, metrics, and the run log's lifecycle."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json

import pytest

from bot.clock import VirtualClock
from bot.events.outbox import Outbox
from bot.models import CustomerKey
from bot.settings import WebhookSettings
from bot.stores.db import Database
from bot.stores.privacy import export_customer, forget_customer
from tests.fakes.pipeline import START, make_settings, pipeline
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.web.conftest import OWN, OwnGateway, client

ANA = "+5215512345678"
SECRET = "hook-secret"


@pytest.fixture
async def receiver():
    r = WebhookReceiver()
    await r.start()
    yield r
    await r.stop()


def hook_settings(db_url, tmp_path, openai_server, tenant, url, **extra):
    return make_settings(db_url, tmp_path, openai_server, tenant, presenter={"enabled": False},
                         inbox={"debounce_seconds": 0},
                         webhooks={"urls": [url], "secret": SECRET, **extra})


async def test_events_are_posted_signed_with_hmac_sha256(db_url, tmp_path, openai_server,
                                                         tenant, receiver):
    settings = hook_settings(db_url, tmp_path, openai_server, tenant, receiver.url)
    async with pipeline(settings) as p:
        await p.say(ANA, "hola")
        await p.settle()
        await p.app.unit.outbox.flush()
        await p.app.unit.outbox.deliver_due()
    names = [r.headers["x-wabot-event"] for r in receiver.received]
    assert {"message.received", "customer.created", "message.sent"} <= set(names)
    for r in receiver.received:
        expected = "sha256=" + hmac.new(SECRET.encode(), r.body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(r.headers["x-wabot-signature"], expected)
        body = json.loads(r.body)
        assert body["tenant"] == tenant and body["event"] == r.headers["x-wabot-event"]
    received = next(json.loads(r.body) for r in receiver.received
                    if r.headers["x-wabot-event"] == "message.received")
    assert received["data"]["phone"] == ANA and received["data"]["text"] == "hola"


async def test_a_receiver_that_was_down_gets_the_event_after_a_restart(
        db_url, tmp_path, openai_server, tenant, receiver):
    await receiver.stop()  # down: connection refused
    settings = hook_settings(db_url, tmp_path, openai_server, tenant, receiver.url,
                             events=["message.received"])
    async with pipeline(settings) as p:
        await p.say(ANA, "anyone?")
        await p.settle()
        assert p.texts_to(ANA) == ["OK: anyone?"]  # the dead endpoint cost the reply nothing
        await p.app.unit.outbox.flush()
        assert await p.app.unit.outbox.deliver_due() == 0
        assert await p.app.unit.outbox.count() == 1
        # The settling moved virtual time on by however long the turn took on this
        # machine: the restart is dated from the failed attempt, not from START.
        failed_at = p.clock.now()
    # The daemon restarts; the row is still there and is delivered once the receiver is up.
    clock = VirtualClock(failed_at)
    outbox = Outbox(Database(settings.sql_url), tenant, settings.webhooks, clock)
    try:
        await outbox.db.create_all()
        await receiver.start()
        assert await outbox.deliver_due() == 0  # the retry is not due yet (5 s backoff)
        assert receiver.received == []
        await clock.advance(5)
        assert await outbox.deliver_due() == 1
        assert await outbox.count() == 0
        assert json.loads(receiver.received[0].body)["data"]["text"] == "anyone?"
    finally:
        await outbox.close()
        await outbox.db.close()


async def test_the_delivery_loop_waits_for_an_event_and_retries_when_due(
        db_url, tenant, receiver):
    receiver.status = 500
    clock = VirtualClock(START)
    db = Database(db_url)
    outbox = Outbox(db, tenant, WebhookSettings(urls=[receiver.url], secret=SECRET), clock)
    await db.create_all()
    loop = asyncio.create_task(outbox.run(), name="webhooks")
    try:
        await clock.advance(86400, {loop})  # nothing queued: it never wakes
        assert not clock.woken and not receiver.received
        await outbox.enqueue("owner.alert", {"text": "x"})  # wakes it
        await clock.settle({loop})
        assert len(receiver.received) == 1 and await outbox.count() == 1
        receiver.status = 200
        await clock.advance(4, {loop})
        assert len(receiver.received) == 1
        await clock.advance(1, {loop})  # the first retry, 5 s later
        assert len(receiver.received) == 2 and await outbox.count() == 0
        await clock.advance(86400, {loop})
        assert clock.woken == {"webhooks": 1}
    finally:
        loop.cancel()
        await outbox.close()
        await db.close()


async def test_an_event_is_given_up_after_its_age_with_a_log_line(
        db_url, tmp_path, openai_server, tenant, receiver, caplog_loguru):
    receiver.status = 500
    clock = VirtualClock(START)
    settings = WebhookSettings(urls=[receiver.url], secret=SECRET, give_up_hours=1)
    db = Database(db_url)
    outbox = Outbox(db, tenant, settings, clock)
    try:
        await db.create_all()
        await outbox.enqueue("owner.alert", {"text": "x"})
        delays = []
        for _ in range(20):
            await outbox.deliver_due()
            if await outbox.count() == 0:
                break
            delay = await outbox._next_delay()
            delays.append(round(delay))
            await clock.advance(delay)
        assert await outbox.count() == 0
        assert delays[:4] == [5, 10, 20, 40]  # exponential backoff
        assert any("given up" in m for m in caplog_loguru)
    finally:
        await outbox.close()
        await db.close()


async def test_ask_for_human_alerts_the_owner_in_their_own_chat_and_on_the_page(
        db_url, tmp_path, openai_server, tenant):
    settings = make_settings(db_url, tmp_path, openai_server, tenant,
                             presenter={"enabled": False}, inbox={"debounce_seconds": 0},
                             http={"port": 0, "api_token": "tok"})
    openai_server.tool_call("ask_for_human", {"reason": "wants a refund"})
    openai_server.reply("Someone from the team will write to you shortly.")
    clock = VirtualClock(START)
    async with pipeline(settings, clock=clock, gateway=OwnGateway(clock), serve_http=True) as p:
        await p.say(ANA, "I want to talk to a person")
        await p.settle()
        await p.app.unit.alerts.drain()
        own_chat = p.gateway.texts(p.gateway.chat_for(OWN))
        assert own_chat == [f"⚠️ wabot: {ANA} asks for a person: wants a refund"]
        async with client(p, "tok") as api:
            alerts = (await api.get("/api/v1/alerts")).json()["items"]
            assert alerts[0]["kind"] == "human_requested" and alerts[0]["phone"] == ANA
            metrics = (await api.get("/metrics")).text
        assert f'wabot_owner_alerts_total{{kind="human_requested",number="{tenant}"}} 1.0' \
            in metrics


async def test_a_failed_turn_alerts_the_owner(db_url, tmp_path, openai_server, tenant):
    settings = make_settings(db_url, tmp_path, openai_server, tenant,
                             presenter={"enabled": False}, inbox={"debounce_seconds": 0})
    clock = VirtualClock(START)
    gateway = OwnGateway(clock)
    async with pipeline(settings, clock=clock, gateway=gateway) as p:
        openai_server.error(500)  # the model endpoint fails: the customer gets the fallback
        await p.say(ANA, "hello?")
        await p.settle()
        await p.app.unit.alerts.drain()
        assert [a["kind"] for a in p.app.unit.alerts.recent] == ["turn_failed"]
        assert gateway.texts(gateway.chat_for(OWN))[0].startswith(f"⚠️ wabot: a turn for {ANA}")


async def test_metrics_after_a_scripted_conversation(served):
    await served.say(ANA, "hi")
    await served.settle()
    await served.say(ANA, "how much?")
    await served.settle()
    async with client(served, token=None) as anon:
        text = (await anon.get("/metrics")).text
    n = f'number="{served.settings.tenant}"'  # every series is the number's
    assert f'wabot_messages_in_total{{kind="text",{n}}} 2.0' in text
    assert f'wabot_messages_out_total{{kind="reply",{n}}} 2.0' in text
    assert f"wabot_turns{{{n}}} 2.0" in text and f"wabot_turn_failures{{{n}}} 0.0" in text
    assert f"wabot_turn_seconds_count{{{n}}} 2.0" in text
    assert any(line.startswith("wabot_model_seconds_count{model=") and n in line
               for line in text.splitlines())
    assert f'wabot_tokens_total{{direction="in",{n}}}' in text
    assert f"wabot_cost_usd_total{{{n}}}" in text
    assert f"wabot_agents_cached{{{n}}} 1.0" in text
    assert f"wabot_journal_backlog{{{n}}} 0.0" in text
    assert f"wabot_webhook_outbox_depth{{{n}}} 0.0" in text
    assert f"wabot_whatsapp_connected{{{n}}} 1.0" in text


async def test_runs_are_exported_and_forgotten_with_the_customer(served):
    from bot.cli.memory import Stores, holders

    await served.say(ANA, "remember me")
    await served.settle()
    key = CustomerKey(served.settings.tenant, ANA)
    app = served.app
    extra = holders(served.settings, Stores(app.unit.db, app.unit.customers, app.unit.memory))
    exported = await export_customer(key, app.unit.customers, app.unit.memory, extra)
    assert exported is not None and exported["runs"][0]["reply"] == "OK: remember me"
    assert exported["runs"][0]["calls"][0]["messages"][-1]["content"] == "remember me"
    await forget_customer(key, app.unit.customers, app.unit.memory, [h.forget for h in extra])
    assert await app.unit.runs.for_customer(key) == []


async def test_runs_older_than_the_retention_are_pruned(console_settings):
    # Two days, not the default 30: a month of the App's timers took seconds of real time.
    console_settings.runs.retention_days = 2
    async with pipeline(console_settings, serve_http=True) as served:
        await served.say(ANA, "old news")
        await served.settle()
        key = CustomerKey(served.settings.tenant, ANA)
        [old] = await served.app.unit.runs.for_customer(key)

        async def kept() -> list[int]:  # the built-in follow-up rules add runs of their own
            return [r["id"] for r in await served.app.unit.runs.for_customer(key)]

        await served.advance(1.9 * 86400)
        await served.app.unit.prune_runs()
        assert old["id"] in await kept()  # within the 2 days kept
        await served.advance(0.2 * 86400)
        await served.app.unit.prune_runs()  # (the hourly pass may have been first)
        assert old["id"] not in await kept()
