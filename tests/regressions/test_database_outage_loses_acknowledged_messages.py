"""A journal write that failed (a PostgreSQL failover, SQLite locked) was only logged in
`App._on_inbound`, although WhatsApp had already acknowledged the message: it was lost.
Now it is held in memory, retried with backoff until the database is back, the owner is
alerted, and what is still held at stop is spilled to a file and fed at the next start."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.clock import VirtualClock
from bot.gateway.memory import MemoryGateway
from bot.models import InboundMessage
from tests.conftest import _postgres_url
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.pipeline import START, eventually, make_settings, pipeline
from tests.fakes.tcp_proxy import TcpProxy

ANA = "+5215512345678"
OWNER = "+5215500000000"


@pytest.fixture
def proxy():
    p = TcpProxy.for_url(_postgres_url()).start()
    yield p
    p.stop()


def gateway(clock: VirtualClock) -> MemoryGateway:
    g = MemoryGateway(clock)
    g.connected_as = OWNER  # type: ignore[attr-defined]  # as the WhatsApp gateway knows it
    return g


def message(settings, clock: VirtualClock, msg_id: str, text: str) -> InboundMessage:
    return InboundMessage(tenant=settings.tenant, phone=ANA, msg_id=msg_id,
                          timestamp=clock.now(), text=text, chat=f"{ANA[1:]}@s.whatsapp.net")


async def test_messages_during_an_outage_are_held_then_answered(
        proxy, tmp_path: Path, openai_server: FakeOpenAI, tenant: str):
    settings = make_settings(proxy.url_through(_postgres_url()), tmp_path, openai_server,
                             tenant, inbox={"debounce_seconds": 1})
    clock = VirtualClock(START)
    async with pipeline(settings, clock=clock, gateway=gateway(clock)) as p:
        proxy.cut()
        await p.gateway.receive(message(settings, clock, "OUT1", "is the shop open?"))
        await p.gateway.receive(message(settings, clock, "OUT2", "and tomorrow?"))
        assert [m.msg_id for m in p.app.unit.intake.held] == ["OUT1", "OUT2"]
        owner_chat = p.gateway.chat_for(OWNER)
        assert any("not accepting messages" in t for t in p.gateway.texts(owner_chat))
        retrier = p.app.unit.intake.retrier
        assert retrier is not None
        await clock.advance(4, {retrier})  # retries fail while the database is away
        assert [m.msg_id for m in p.app.unit.intake.held] == ["OUT1", "OUT2"]
        proxy.restore()
        await clock.advance(60, {retrier})
        assert not p.app.unit.intake.held
        await p.settle()
        await eventually(lambda: bool(p.texts_to(ANA)))
        [request] = openai_server.chat_requests()
        said = [m["content"] for m in request["messages"] if m["role"] == "user"]
        assert said[-2:] == ["is the shop open?", "and tomorrow?"]  # one turn, in order
        assert any("database is back" in t for t in p.gateway.texts(owner_chat))


async def test_messages_still_held_at_stop_are_fed_at_the_next_start(
        proxy, tmp_path: Path, openai_server: FakeOpenAI, tenant: str):
    settings = make_settings(proxy.url_through(_postgres_url()), tmp_path, openai_server,
                             tenant, stop_grace_seconds=5)
    clock = VirtualClock(START)
    async with pipeline(settings, clock=clock, gateway=gateway(clock)) as p:
        proxy.cut()
        await p.gateway.receive(message(settings, clock, "OUT3", "hola"))
        assert len(p.app.unit.intake.held) == 1
    spill = tmp_path / "held-inbound.jsonl"
    assert spill.exists() and (spill.stat().st_mode & 0o777) == 0o600
    proxy.restore()
    clock = VirtualClock(START + timedelta(minutes=5))
    async with pipeline(settings, clock=clock, gateway=gateway(clock)) as p:
        await p.settle()
        await eventually(lambda: bool(p.texts_to(ANA)))
        assert p.texts_to(ANA) == ["OK: hola"]
    assert not spill.exists()
