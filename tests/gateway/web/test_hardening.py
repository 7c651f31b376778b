"""What only shows up against the real service: each test is named for what broke."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from neonize.aioze.events import ConnectedEv, KeepAliveTimeoutEv, MessageEv
from neonize.exc import SendMessageError
from neonize.proto.Neonize_pb2 import Device

from bot.gateway.addresses import receipts_by_sender
from bot.gateway.web.gateway import GatewayExit, NeonizeGateway
from bot.models import InboundMessage
from tests.gateway.web.builders import (
    BUSINESS,
    CUSTOMER,
    CUSTOMER_LID,
    GROUP,
    StandInClient,
    StandInFactory,
    event,
    jid,
    text,
)
from tests.gateway.web.conftest import RecordingClock


async def test_a_lid_lookup_on_a_stopped_client_crashed_the_process(
    make_gateway: Callable[..., NeonizeGateway], factory: StandInFactory,
) -> None:
    gateway = make_gateway()
    received: list[InboundMessage] = []

    async def handle(message: InboundMessage) -> None:
        received.append(message)

    gateway.on_message(handle)
    await gateway.start()
    old = await factory.next_client()
    await gateway.stop()  # teardown: Go no longer knows this client

    await old.fire(MessageEv, event(text("hola"), chat=jid(CUSTOMER_LID, "lid")))

    assert old.called("get_pn_from_lid") == []  # a Go call here is a nil-pointer panic
    assert [m.phone for m in received] == [f"lid:{CUSTOMER_LID}"]  # kept, not lost


async def test_a_failed_first_connect_exited_instead_of_retrying(
    running: tuple[NeonizeGateway, StandInClient], factory: StandInFactory,
    clock: RecordingClock,
) -> None:
    gateway, client = running
    assert client.go_task is not None
    client.go_task.set_exception(RuntimeError("dial tcp: i/o timeout"))  # neonize 0.5.2
    while not clock.sleeps:  # the connection task backs off on the virtual clock
        await asyncio.sleep(0.001)
    await clock.advance(5)

    second = await factory.next_client(2)
    assert second.called("connect")
    assert not gateway.finished.done()


async def test_the_owners_message_yourself_chat_became_a_customer_before_connected(
    running: tuple[NeonizeGateway, StandInClient],
) -> None:
    gateway, client = running
    client.me = Device(JID=jid(BUSINESS), PushName="Tienda")  # set by Go before any event
    received: list[InboundMessage] = []

    async def handle(message: InboundMessage) -> None:
        received.append(message)

    gateway.on_message(handle)
    await client.fire(MessageEv, event(text("nota"), chat=jid(BUSINESS), sender=jid(BUSINESS),
                                       from_me=True))

    assert received == []


async def test_messages_of_one_chat_overtook_each_other(
    running: tuple[NeonizeGateway, StandInClient],
) -> None:
    gateway, client = running
    await client.fire(ConnectedEv, ConnectedEv(status=True))
    client.lids[CUSTOMER_LID] = CUSTOMER
    client.gates["get_pn_from_lid"] = gate = asyncio.Event()
    order: list[str] = []

    async def handle(message: InboundMessage) -> None:
        order.append(message.text)

    gateway.on_message(handle)
    first = asyncio.create_task(client.fire(  # needs a (slow) LID lookup
        MessageEv, event(text("primero"), msg_id="A1", chat=jid(CUSTOMER_LID, "lid"))))
    second = asyncio.create_task(client.fire(MessageEv, event(text("segundo"), msg_id="A2")))
    await asyncio.sleep(0.01)
    gate.set()
    await asyncio.gather(first, second)

    assert order == ["primero", "segundo"]


async def test_keepalive_timeout_left_connected_set_while_the_socket_was_down(
    running: tuple[NeonizeGateway, StandInClient],
) -> None:
    gateway, client = running
    await client.fire(ConnectedEv, ConnectedEv(status=True))

    await client.fire(KeepAliveTimeoutEv, KeepAliveTimeoutEv(ErrorCount=1))

    assert not gateway.connected.is_set()


async def test_a_reply_that_never_left_was_lost_instead_of_sent_again(
    running: tuple[NeonizeGateway, StandInClient],
) -> None:
    gateway, client = running
    await client.fire(ConnectedEv, ConnectedEv(status=True))
    client.failures["send_message"] = SendMessageError("websocket not connected")
    sending = asyncio.create_task(gateway.send_text(f"{CUSTOMER}@s.whatsapp.net", "hola"))
    await asyncio.sleep(0.01)
    assert not sending.done()  # waiting for the connection to come back
    del client.failures["send_message"]
    await client.fire(ConnectedEv, ConnectedEv(status=True))

    assert (await sending).startswith("OUT")
    assert len(client.called("send_message")) == 2
    assert not gateway.finished.done() or gateway.finished.result() is not GatewayExit.FAILED


async def test_replies_went_out_while_inactive_and_stayed_available_forever(
    running: tuple[NeonizeGateway, StandInClient],
) -> None:
    gateway, client = running
    await client.fire(ConnectedEv, ConnectedEv(status=True))
    client.calls.clear()
    chat = f"{CUSTOMER}@s.whatsapp.net"

    await gateway.set_typing(chat, True)
    await gateway.send_text(chat, "hola")
    await gateway.set_typing(chat, False)

    names = [name for name, _, _ in client.calls]
    assert names == ["send_presence", "send_chat_presence", "send_message",
                     "send_chat_presence", "send_presence"]
    states = [args[0].name for args, _ in client.called("send_presence")]
    assert states == ["AVAILABLE", "UNAVAILABLE"]


async def test_typing_and_revoke_went_to_the_phone_jid_while_the_chat_used_a_lid(
    running: tuple[NeonizeGateway, StandInClient],
) -> None:
    gateway, client = running
    await client.fire(ConnectedEv, ConnectedEv(status=True))
    received: list[InboundMessage] = []

    async def handle(message: InboundMessage) -> None:
        received.append(message)

    gateway.on_message(handle)
    lid = jid(CUSTOMER_LID, "lid")
    await client.fire(MessageEv, event(text("hola"), chat=lid, sender=jid(CUSTOMER_LID, "lid", 7),
                                       sender_alt=jid(CUSTOMER)))
    [msg] = received
    assert (msg.chat, msg.chat_jid, msg.sender_jid) == (
        f"{CUSTOMER}@s.whatsapp.net", f"{CUSTOMER_LID}@lid", f"{CUSTOMER_LID}@lid")

    await gateway.set_typing(msg.chat, True)
    await gateway.mark_read(msg.chat, [msg.msg_id])
    await gateway.revoke(msg.chat, "3EB0OWNER")

    [(typing, _)] = client.called("send_chat_presence")
    [(_, read)] = client.called("mark_read")
    [(revoke, _)] = client.called("revoke_message")
    assert {(j.User, j.Server) for j in (typing[0], read["chat"], revoke[0])} == {
        (CUSTOMER_LID, "lid")}


async def test_a_group_receipt_named_the_group_instead_of_the_sender(
    make_gateway: Callable[..., NeonizeGateway], factory: StandInFactory,
) -> None:
    gateway = make_gateway(allow_groups=True)
    await gateway.start()
    client = await factory.next_client()
    await client.fire(ConnectedEv, ConnectedEv(status=True))
    received: list[InboundMessage] = []

    async def handle(message: InboundMessage) -> None:
        received.append(message)

    gateway.on_message(handle)
    await client.fire(MessageEv, event(text("hola"), chat=jid(GROUP, "g.us"),
                                       sender=jid(CUSTOMER_LID, "lid", 3), is_group=True))
    [msg] = received

    for sender, ids in receipts_by_sender(received).items():
        await gateway.mark_read(msg.chat, ids, sender)

    [(ids, read)] = client.called("mark_read")
    assert ids == (msg.msg_id,)
    assert (read["chat"].User, read["chat"].Server) == (GROUP, "g.us")
    assert (read["sender"].User, read["sender"].Server) == (CUSTOMER_LID, "lid")  # participant


def test_a_group_message_read_back_from_the_journal_got_a_receipt_naming_the_group() -> None:
    journaled = InboundMessage(tenant="t", phone=f"g:{GROUP}", msg_id="G1", chat=f"{GROUP}@g.us",
                               timestamp=datetime(2026, 1, 5, tzinfo=UTC))  # no sender kept
    live = InboundMessage(tenant="t", phone=f"g:{GROUP}", msg_id="G2", chat=f"{GROUP}@g.us",
                          timestamp=datetime(2026, 1, 5, tzinfo=UTC), chat_jid=f"{GROUP}@g.us",
                          sender_jid=f"{CUSTOMER}@s.whatsapp.net")
    dm = InboundMessage(tenant="t", phone="+1", msg_id="D1", chat="1@s.whatsapp.net",
                        timestamp=datetime(2026, 1, 5, tzinfo=UTC))

    assert receipts_by_sender([journaled, live]) == {f"{CUSTOMER}@s.whatsapp.net": ["G2"]}
    assert receipts_by_sender([dm]) == {"": ["D1"]}
