"""The Cloud API transport inside a whole App, over real HTTP on 127.0.0.1: Meta's webhook
in (the App's own webhook server), the fake Graph API out, the fake OpenAI server thinking."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.app import App
from bot.business import Business
from bot.clock import VirtualClock
from bot.gateway.cloud.gateway import CloudGateway
from bot.models import CustomerKey, InboundMessage
from bot.settings import Settings
from bot.stores.outbound import OutboundStore
from tests.fakes import meta_webhooks as meta
from tests.fakes.graph_server import FakeGraph
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.pipeline import BUSINESS, START, make_settings

WA = "5215512345678"
PHONE = "+" + WA
T0 = START.timestamp()


def cloud_settings(db_url: str, tmp_path: Path, server: FakeOpenAI, graph: FakeGraph,
                   tenant: str, **cloud: Any) -> Settings:
    return make_settings(
        db_url, tmp_path, server, tenant,
        whatsapp={"transport": "cloud"},
        cloud={"phone_number_id": graph.phone_number_id, "access_token": graph.token,
               "app_secret": meta.APP_SECRET, "verify_token": meta.VERIFY_TOKEN,
               "graph_url": graph.graph_url, "listen_port": 0, "backoff_initial": 0.5,
               **cloud},
        presenter={"enabled": False}, inbox={"debounce_seconds": 1, "debounce_max_seconds": 2},
        followups={"enabled": False}, memory={"insights": False})


class Cloud:
    """An App on the Cloud transport, on a virtual clock, with an HTTP client for Meta."""

    def __init__(self, settings: Settings, graph: FakeGraph,
                 business: Business = BUSINESS) -> None:
        self.clock = VirtualClock(START)
        self.graph = graph
        self.gateway = CloudGateway(settings.tenant, settings.cloud, self.clock)
        self.app = App(settings, self.gateway, clock=self.clock, business=business,
                       heartbeat=False)
        self.http = httpx.AsyncClient()
        self.tenant = settings.tenant

    @property
    def url(self) -> str:
        assert self.app.webhook is not None
        return self.app.webhook.address + "/webhooks/whatsapp"

    async def post(self, payload: dict[str, Any], secret: str = meta.APP_SECRET) -> int:
        return (await meta.post(self.http, self.url, payload, secret)).status_code

    def media_calls(self) -> list[Any]:
        """Graph calls but the one at start that reads our own number."""
        own = f"/v21.0/{self.graph.phone_number_id}"
        return [c for c in self.graph.calls if c.path != own]

    async def settle(self) -> None:
        pending = await self.clock.wait(self.app.unit.inbox.tasks, 3600)
        assert not pending
        await self.gateway.flush()

    async def journal(self) -> dict[str, str]:
        return dict(await self._rows("SELECT msg_id, status FROM journal WHERE tenant = :t"))

    async def _rows(self, sql: str) -> list[Any]:
        from sqlalchemy import text

        async with self.app.unit.db.connect() as conn:
            return list((await conn.execute(text(sql), {"t": self.tenant})).all())


@pytest.fixture
async def cloud(tmp_path: Path, openai_server: FakeOpenAI, graph_server: FakeGraph,
                tenant: str) -> AsyncIterator[Cloud]:
    settings = cloud_settings(f"sqlite:///{tmp_path / 'wabot.db'}", tmp_path, openai_server,
                              graph_server, tenant)
    c = Cloud(settings, graph_server)
    await c.app.start()
    try:
        yield c
    finally:
        await c.settle()
        await c.app.stop()
        await c.http.aclose()


# --- the subscription handshake --------------------------------------------------------

async def test_handshake_echoes_the_challenge_for_the_verify_token(cloud: Cloud) -> None:
    ok = await cloud.http.get(cloud.url, params={
        "hub.mode": "subscribe", "hub.verify_token": meta.VERIFY_TOKEN,
        "hub.challenge": "1158201444"})
    wrong = await cloud.http.get(cloud.url, params={
        "hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1158201444"})
    assert (ok.status_code, ok.text) == (200, "1158201444")
    assert wrong.status_code == 403 and "1158201444" not in wrong.text


# --- signatures and the journal --------------------------------------------------------

async def test_a_body_with_a_wrong_or_missing_signature_is_refused_and_not_journaled(
        cloud: Cloud) -> None:
    payload = meta.text(WA, "hola", at=T0)
    assert await cloud.post(payload, secret="not-the-app-secret") == 401
    unsigned = await cloud.http.post(cloud.url, json=payload)
    assert unsigned.status_code == 401
    await cloud.settle()
    assert await cloud.journal() == {}
    assert cloud.graph.sends() == []


async def test_200_means_journaled_and_a_journal_failure_gets_meta_to_redeliver(
        cloud: Cloud, tmp_path: Path) -> None:
    async def rename(old: str, new: str) -> None:
        # In a thread: the daemon may be mid-transaction on this event loop, and a busy wait
        # here on the loop would keep it from ever committing ("database is locked").
        def run() -> None:
            db = sqlite3.connect(tmp_path / "wabot.db", timeout=60, isolation_level=None)
            try:
                db.execute(f"ALTER TABLE {old} RENAME TO {new}")
            finally:
                db.close()
        await asyncio.to_thread(run)

    await rename("journal", "journal_away")  # the journal cannot be written
    payload = meta.text(WA, "¿tienen la blusa azul?", msg_id="wamid.J1", at=T0)
    assert await cloud.post(payload) == 500  # not journaled: Meta must deliver it again
    await rename("journal_away", "journal")
    assert await cloud.post(payload) == 200
    # Journaled when 200 was answered, before the turn (still debouncing) ran.
    assert await cloud.journal() == {"wamid.J1": "received"}
    await cloud.settle()
    assert await cloud.journal() == {"wamid.J1": "answered"}
    assert cloud.graph.texts(WA) == ["OK: ¿tienen la blusa azul?"]


async def test_a_redelivered_webhook_is_answered_once(cloud: Cloud) -> None:
    payload = meta.text(WA, "hola", msg_id="wamid.R1", at=T0, name="Ana")
    assert [await cloud.post(payload) for _ in range(3)] == [200, 200, 200]
    await cloud.settle()
    assert await cloud.post(payload) == 200  # after the answer, too
    await cloud.settle()
    assert cloud.graph.texts(WA) == ["OK: hola"]
    customer = await cloud.app.unit.customers.get(CustomerKey(cloud.tenant, PHONE))
    assert customer is not None and customer.name == "Ana" and customer.msgs_in == 1


async def test_the_reply_is_read_receipt_then_typing_then_text(cloud: Cloud) -> None:
    cloud.app.unit.presenter.s.enabled = True
    cloud.app.unit.presenter.s.read_delay_seconds = 0
    await cloud.post(meta.text(WA, "hola", msg_id="wamid.P1", at=T0))
    await cloud.settle()
    bodies = [c.body for c in cloud.graph.calls if c.path.endswith("/messages")]
    assert bodies[0] == {"messaging_product": "whatsapp", "status": "read",
                         "message_id": "wamid.P1"}
    assert bodies[1] == {"messaging_product": "whatsapp", "status": "read",
                         "message_id": "wamid.P1", "typing_indicator": {"type": "text"}}
    assert bodies[2]["type"] == "text" and bodies[2]["to"] == WA
    assert bodies[2]["text"]["body"] == "OK: hola"
    assert all(c.headers["authorization"] == f"Bearer {cloud.graph.token}"
               for c in cloud.graph.calls)


# --- media -----------------------------------------------------------------------------

async def test_a_voice_note_is_downloaded_through_the_media_url_and_transcribed(
        cloud: Cloud, openai_server: FakeOpenAI) -> None:
    cloud.graph.media["7000000000000007"] = b"OggS-voice-note-bytes"
    openai_server.transcript = "quiero dos blusas"
    payload = meta.envelope(messages=[meta.message(
        WA, "audio", "wamid.V1", T0, id="7000000000000007", mime_type="audio/ogg", voice=True)])
    assert await cloud.post(payload) == 200
    await cloud.settle()
    gets = [c.path for c in cloud.media_calls() if c.method == "GET"]
    assert gets == ["/v21.0/7000000000000007", "/download/7000000000000007"]
    upload = next(r for r in openai_server.requests if r.path == "/v1/audio/transcriptions")
    assert upload.body["file"].data == b"OggS-voice-note-bytes"
    assert cloud.graph.texts(WA) and "quiero dos blusas" in openai_server.chat_requests()[-1][
        "messages"][-1]["content"]


async def test_media_over_the_size_limit_is_refused_before_download(cloud: Cloud) -> None:
    from bot.gateway.cloud.events import parse
    from bot.gateway.cloud.gateway import CloudError

    cloud.graph.media["8000000000000008"] = b"x" * 5000
    events = parse(meta.envelope(messages=[meta.message(WA, "image", "wamid.I1", T0,
                                                        id="8000000000000008")]),
                   cloud.tenant, cloud.graph.phone_number_id, START)
    with pytest.raises(CloudError, match="exceeds"):
        await cloud.gateway.download(events.messages[0], max_bytes=4096)
    assert [c.path for c in cloud.media_calls()] == ["/v21.0/8000000000000008"]
    assert await cloud.gateway.download(events.messages[0], max_bytes=8192) == b"x" * 5000


# --- status callbacks ------------------------------------------------------------------

async def test_status_callbacks_are_recorded_per_outbound_message(cloud: Cloud) -> None:
    await cloud.post(meta.text(WA, "hola", at=T0))
    await cloud.settle()
    store = OutboundStore(cloud.app.unit.db, cloud.tenant)
    [line] = await store.recent()
    assert line.status == "accepted" and line.phone == PHONE
    for state in ("sent", "read", "delivered"):  # Meta may deliver them out of order
        assert await cloud.post(meta.status(line.wamid, WA, state, at=T0 + 5)) == 200
    assert (await store.get(line.wamid)).status == "read"  # type: ignore[union-attr]
    await cloud.post(meta.status("wamid.OTHER", WA, "failed",
                                 error=(131026, "Message undeliverable"), at=T0 + 9))
    failed = await store.get("wamid.OTHER")
    assert failed is not None and failed.status == "failed"
    assert failed.error == "131026: Message undeliverable"


# --- the 24-hour window ----------------------------------------------------------------

async def _proactive_after(cloud: Cloud, hours: float) -> bool:
    await cloud.post(meta.text(WA, "hola", at=T0))
    await cloud.settle()
    await cloud.clock.advance(hours * 3600)
    return await cloud.app.unit.chats.proactive(CustomerKey(cloud.tenant, PHONE),
                                           "follow up on the blue blouse")


async def test_inside_the_window_a_follow_up_is_free_text(cloud: Cloud) -> None:
    assert await _proactive_after(cloud, 23) is True
    assert len(cloud.graph.sends("text")) == 2 and cloud.graph.sends("template") == []


async def test_outside_the_window_without_a_template_the_follow_up_is_skipped(
        cloud: Cloud) -> None:
    assert await _proactive_after(cloud, 25) is False
    assert len(cloud.graph.sends()) == 1  # only the first reply: nothing sent blindly
    lines = await OutboundStore(cloud.app.unit.db, cloud.tenant).recent()
    assert [line.status for line in lines] == ["skipped", "accepted"]
    assert "24-hour window" in lines[0].error


async def test_outside_the_window_the_configured_template_goes_with_the_agents_text(
        cloud: Cloud) -> None:
    cloud.gateway.s.followup_template = "seguimiento"
    cloud.gateway.s.template_language = "es_MX"
    assert await _proactive_after(cloud, 30) is True
    [template] = cloud.graph.sends("template")
    sent = template.body["template"]
    assert sent["name"] == "seguimiento" and sent["language"] == {"code": "es_MX"}
    [param] = sent["components"][0]["parameters"]
    assert param["type"] == "text" and param["text"].startswith("OK:")
    assert "\n" not in param["text"]


async def test_the_window_survives_a_restart_through_the_journal(
        cloud: Cloud, tmp_path: Path, openai_server: FakeOpenAI) -> None:
    await cloud.post(meta.text(WA, "hola", at=T0))
    await cloud.settle()
    fresh = CloudGateway(cloud.tenant, cloud.gateway.s, cloud.clock)  # knows nothing yet
    fresh.bind_store(cloud.app.unit.customers, OutboundStore(cloud.app.unit.db, cloud.tenant))
    await cloud.clock.advance(3600)
    assert await fresh.window_open(PHONE)
    await cloud.clock.advance(24 * 3600)
    assert not await fresh.window_open(PHONE)
    await fresh.stop()


async def test_a_reply_accepted_by_meta_just_before_a_crash_is_not_sent_again(
        cloud: Cloud, tmp_path: Path) -> None:
    """The journal is marked a few writes after the send; the ids noted on Meta's
    acceptance close that gap for the restart."""
    await cloud.post(meta.text(WA, "hola", msg_id="wamid.K1", at=T0))
    await cloud.settle()
    await cloud.app.unit.customers.journal_mark(cloud.tenant, ["wamid.K1"], "received")  # as if
    # the process had died between the send and the journal write
    await cloud.app.unit.customers.journal_add(_inbound(cloud.tenant, "wamid.K2"))  # never answered
    restarted = CloudGateway(cloud.tenant, cloud.gateway.s, cloud.clock)
    restarted.bind_store(cloud.app.unit.customers, OutboundStore(cloud.app.unit.db, cloud.tenant),
                         tmp_path)
    await restarted.start()
    pending = await cloud.app.unit.customers.journal_pending(cloud.tenant)
    assert [m.msg_id for m in pending] == ["wamid.K2"]  # recovery answers only this one
    await restarted.stop()


def _inbound(tenant: str, msg_id: str) -> InboundMessage:
    return InboundMessage(tenant, PHONE, msg_id, START, "¿sigue ahí?", chat=WA)


async def test_a_body_too_large_for_meta_is_refused_before_it_is_read_whole(
        cloud: Cloud) -> None:
    huge = meta.text(WA, "x" * (2 << 20), at=T0)
    assert await cloud.post(huge) == 413
    assert await cloud.journal() == {}
