"""A reply lost on a dropped connection while memory said it was sent (WhatsApp Web #12.1):
whatsmeow queues nothing (send.go SendMessage: "not connected"), so a reply written while
the socket is down never left. It is kept undelivered — out of the history — and sent once
when the connection returns, or the owner is told when it is too old to send."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from neonize.aioze.events import ConnectedEv, DisconnectedEv

from bot.gateway.neonize import NeonizeGateway
from bot.models import CustomerKey, Role
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.pipeline import Pipeline, eventually, make_settings
from tests.gateway.builders import CUSTOMER, StandInFactory
from tests.gateway.conftest import RecordingClock

ANA = f"+{CUSTOMER}"


async def _start(tmp_path: Path, openai_server: FakeOpenAI, clock: RecordingClock,
                 gateway: NeonizeGateway) -> Pipeline:
    settings = make_settings(f"sqlite:///{tmp_path / 'wabot.db'}", tmp_path, openai_server,
                             "tienda", inbox={"debounce_seconds": 0},
                             presenter={"enabled": False}, delivery={"retry_minutes": 15})
    p = Pipeline(settings, clock, gateway)  # type: ignore[arg-type]
    await p.app.start()
    return p


def sent_texts(factory: StandInFactory) -> list[str]:
    return [args[1].conversation for c in factory.clients
            for args, _ in c.called("send_message")]


async def agent_lines(p: Pipeline) -> list[tuple[Role, str]]:
    lines = await p.app.memory.recent(CustomerKey("tienda", ANA), 20)
    return [(m.role, m.text) for m in lines if m.role is not Role.CUSTOMER]


async def test_a_reply_written_while_disconnected_is_delivered_once_on_reconnect(
        make_gateway: Callable[..., NeonizeGateway], factory: StandInFactory,
        clock: RecordingClock, tmp_path: Path, openai_server: FakeOpenAI) -> None:
    gateway = make_gateway(connect_wait=0)
    p = await _start(tmp_path, openai_server, clock, gateway)
    try:
        client = await factory.next_client()
        await client.fire(ConnectedEv, ConnectedEv(status=True))
        await client.fire(DisconnectedEv, DisconnectedEv())
        await p.say(ANA, "¿tienen la camisa azul?")
        await p.settle()
        assert sent_texts(factory) == []
        assert await agent_lines(p) == []  # memory does not claim it was said

        await client.fire(ConnectedEv, ConnectedEv(status=True))
        await clock.advance(60)  # the retry loop's next pass
        await eventually(lambda: sent_texts(factory))
        await p.app.redelivery.run_once()  # a later pass finds nothing left to send
        assert sent_texts(factory) == ["OK: ¿tienen la camisa azul?"]
        assert await agent_lines(p) == [(Role.AGENT, "OK: ¿tienen la camisa azul?")]
    finally:
        await p.app.stop()


async def test_an_undelivered_reply_expires_with_an_owner_alert_and_a_note(
        make_gateway: Callable[..., NeonizeGateway], factory: StandInFactory,
        clock: RecordingClock, tmp_path: Path, openai_server: FakeOpenAI) -> None:
    gateway = make_gateway(connect_wait=0)
    p = await _start(tmp_path, openai_server, clock, gateway)
    try:
        client = await factory.next_client()
        await client.fire(ConnectedEv, ConnectedEv(status=True))
        await client.fire(DisconnectedEv, DisconnectedEv())
        await p.say(ANA, "¿tienen la camisa azul?")
        await p.settle()

        await clock.advance(16 * 60)  # still offline after the retry age
        await p.app.redelivery.run_once(send=False)
        await client.fire(ConnectedEv, ConnectedEv(status=True))
        await p.app.redelivery.run_once()
        assert "OK: ¿tienen la camisa azul?" not in sent_texts(factory)  # never sent late
        [(role, note)] = await agent_lines(p)
        assert role is Role.NOTE and "could not be delivered" in note
        assert [a["kind"] for a in p.app.alerts.recent] == ["reply_undelivered"]
    finally:
        await p.app.stop()
