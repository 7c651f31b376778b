"""Sending, read receipts, typing and downloads, against a stand-in Go client."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from neonize.aioze.events import ConnectedEv, MessageEv
from neonize.exc import SendMessageError
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import ImageMessage, Message
from neonize.utils.enum import ChatPresence, ChatPresenceMedia, ReceiptType

from bot.gateway.base import DeliveryUnknown, GatewayError
from bot.gateway.web.gateway import SENT_IDS_KEPT, NeonizeGateway
from bot.gateway.web.normalize import Dropped, DropReason
from bot.gateway.web.tuning import SEND_TIMEOUT
from bot.models import InboundMessage
from tests.gateway.web.builders import (
    BUSINESS,
    CUSTOMER,
    StandInClient,
    StandInFactory,
    event,
    jid,
    text,
)

CHAT = f"{CUSTOMER}@s.whatsapp.net"


@pytest.fixture
async def connected(
    running: tuple[NeonizeGateway, StandInClient],
) -> tuple[NeonizeGateway, StandInClient]:
    gateway, client = running
    await client.fire(ConnectedEv, ConnectedEv(status=True))
    client.calls.clear()
    return gateway, client


async def test_send_text_sends_a_plain_conversation_and_returns_the_id(
    connected: tuple[NeonizeGateway, StandInClient],
) -> None:
    gateway, client = connected

    msg_id = await gateway.send_text(CHAT, "¡Claro! La tenemos en M @5215500000000")

    assert msg_id == "OUT1"
    [((to, message), _)] = client.called("send_message")
    assert to == jid(CUSTOMER)
    # no mention parsing, no link preview: exactly the text, as a conversation
    assert message == Message(conversation="¡Claro! La tenemos en M @5215500000000")


async def test_revoke_deletes_our_own_message_for_everyone(
    connected: tuple[NeonizeGateway, StandInClient],
) -> None:
    gateway, client = connected

    await gateway.revoke(CHAT, "3EB0OWNERCMD")

    [((chat, sender, msg_id), _)] = client.called("revoke_message")
    assert (chat, msg_id) == (jid(CUSTOMER), "3EB0OWNERCMD")
    assert sender == jid(client.me_user)  # the owner typed it on the business phone


async def test_what_we_sent_comes_back_as_an_echo_and_is_dropped(
    connected: tuple[NeonizeGateway, StandInClient],
) -> None:
    gateway, client = connected
    msg_id = await gateway.send_text(CHAT, "¡Hola Ana!")
    echo = event(text("¡Hola Ana!"), msg_id=msg_id, from_me=True, sender=jid(BUSINESS, device=0))

    assert await gateway.normalize(echo, client) == Dropped(DropReason.ECHO)


async def test_only_the_last_thousand_sent_ids_are_kept(
    connected: tuple[NeonizeGateway, StandInClient],
) -> None:
    gateway, client = connected
    for _ in range(SENT_IDS_KEPT + 1):
        await gateway.send_text(CHAT, "hola")
    first = event(text("hola"), msg_id="OUT1", from_me=True, sender=jid(BUSINESS, device=0))
    last = event(text("hola"), msg_id="OUT1001", from_me=True, sender=jid(BUSINESS, device=0))

    assert isinstance(await gateway.normalize(first, client), InboundMessage)  # owner-typed now
    assert await gateway.normalize(last, client) == Dropped(DropReason.ECHO)


async def test_mark_read_sends_a_read_receipt_for_chat_and_sender(
    connected: tuple[NeonizeGateway, StandInClient],
) -> None:
    gateway, client = connected

    await gateway.mark_read(CHAT, ["3EB0A", "3EB0B"])

    [(ids, kwargs)] = client.called("mark_read")
    assert ids == ("3EB0A", "3EB0B")
    assert kwargs == {"chat": jid(CUSTOMER), "sender": jid(CUSTOMER), "receipt": ReceiptType.READ}


async def test_mark_read_with_an_explicit_sender(
    connected: tuple[NeonizeGateway, StandInClient],
) -> None:
    gateway, client = connected

    await gateway.mark_read("120363025246125486@g.us", ["3EB0A"], sender=CHAT)

    [(_, kwargs)] = client.called("mark_read")
    assert kwargs["chat"] == jid("120363025246125486", "g.us")
    assert kwargs["sender"] == jid(CUSTOMER)


async def test_mark_read_of_nothing_calls_nothing(
    connected: tuple[NeonizeGateway, StandInClient],
) -> None:
    gateway, client = connected

    await gateway.mark_read(CHAT, [])

    assert client.calls == []


@pytest.mark.parametrize(
    ("typing", "state"),
    [(True, ChatPresence.CHAT_PRESENCE_COMPOSING), (False, ChatPresence.CHAT_PRESENCE_PAUSED)],
)
async def test_typing_presence(
    connected: tuple[NeonizeGateway, StandInClient], typing: bool, state: ChatPresence
) -> None:
    gateway, client = connected

    await gateway.set_typing(CHAT, typing)

    assert client.called("send_chat_presence") == [
        ((jid(CUSTOMER), state, ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT), {})
    ]


async def test_a_call_that_hangs_becomes_a_gateway_error(
    make_gateway: Callable[..., NeonizeGateway], factory: StandInFactory
) -> None:
    gateway = make_gateway(send_timeout=0.05)
    await gateway.start()
    client = await factory.next_client()
    await client.fire(ConnectedEv, ConnectedEv(status=True))
    client.hangs.add("send_message")

    with pytest.raises(
        DeliveryUnknown, match=r"sending to \+52155\*\*\*\*5678 timed out after 0.05 s"
    ):
        await gateway.send_text(CHAT, "hola")
    assert len(client.called("send_message")) == 1  # a timeout is never resent blindly


def test_send_timeout_was_shorter_than_whatsmeows_own_bound() -> None:
    # whatsmeow request.go defaultRequestTimeout = 75 s, plus send.go's one retryFrame.
    assert SEND_TIMEOUT > 2 * 75


async def test_a_failing_call_becomes_a_gateway_error(
    connected: tuple[NeonizeGateway, StandInClient],
) -> None:
    gateway, client = connected
    client.failures["send_message"] = SendMessageError("server returned error 479")

    with pytest.raises(GatewayError, match=r"sending to .* failed: server returned error 479"):
        await gateway.send_text(CHAT, "hola")


@pytest.mark.parametrize("call", ["send", "read", "typing"])
async def test_nothing_reaches_go_before_we_are_connected(
    running: tuple[NeonizeGateway, StandInClient], call: str
) -> None:
    gateway, client = running
    client.calls.clear()

    with pytest.raises(GatewayError, match="not connected to WhatsApp"):
        if call == "send":
            gateway._connect_wait = 0  # a send waits a bounded time for the connection first
            await gateway.send_text(CHAT, "hola")
        elif call == "read":
            await gateway.mark_read(CHAT, ["3EB0A"])
        else:
            await gateway.set_typing(CHAT, True)
    assert client.calls == []


async def test_a_bad_address_is_a_gateway_error(
    connected: tuple[NeonizeGateway, StandInClient],
) -> None:
    gateway, _ = connected

    with pytest.raises(GatewayError, match="not a WhatsApp address"):
        await gateway.send_text("@s.whatsapp.net", "hola")


# --- downloads ----------------------------------------------------------------------------


async def _image(gateway: NeonizeGateway, client: StandInClient, declared: int) -> InboundMessage:
    msg = Message(imageMessage=ImageMessage(mimetype="image/jpeg", fileLength=declared))
    inbound = await gateway.normalize(event(msg), client)
    assert isinstance(inbound, InboundMessage)
    return inbound


async def test_download_returns_the_media_bytes(
    connected: tuple[NeonizeGateway, StandInClient],
) -> None:
    gateway, client = connected
    client.media = b"\xff\xd8jpeg"
    inbound = await _image(gateway, client, declared=6)

    assert await gateway.download(inbound, max_bytes=100) == b"\xff\xd8jpeg"
    [((message,), _)] = client.called("download_any")
    assert message is inbound.media


async def test_download_refuses_a_declared_size_over_the_limit_without_fetching(
    connected: tuple[NeonizeGateway, StandInClient],
) -> None:
    gateway, client = connected
    inbound = await _image(gateway, client, declared=50_000_000)

    with pytest.raises(GatewayError, match="50000000 bytes exceeds the 1000-byte limit"):
        await gateway.download(inbound, max_bytes=1000)
    assert client.called("download_any") == []


async def test_download_enforces_the_limit_on_what_actually_came(
    connected: tuple[NeonizeGateway, StandInClient],
) -> None:
    gateway, client = connected
    client.media = b"x" * 2000
    inbound = await _image(gateway, client, declared=0)

    with pytest.raises(GatewayError, match="2000 bytes exceeds the 1000-byte limit"):
        await gateway.download(inbound, max_bytes=1000)


async def test_download_of_a_text_message_is_an_error(
    connected: tuple[NeonizeGateway, StandInClient],
) -> None:
    gateway, client = connected
    inbound = await gateway.normalize(event(text("hola")), client)
    assert isinstance(inbound, InboundMessage)

    with pytest.raises(GatewayError, match="no downloadable media"):
        await gateway.download(inbound, max_bytes=1000)


async def test_inbound_messages_reach_the_registered_handler(
    connected: tuple[NeonizeGateway, StandInClient],
) -> None:
    gateway, client = connected
    received: list[InboundMessage] = []

    async def handle(message: InboundMessage) -> None:
        received.append(message)

    gateway.on_message(handle)
    await client.fire(MessageEv, event(text("hola")))
    await client.fire(MessageEv, event(text("mi estado"), chat=jid("status", "broadcast")))

    assert [m.text for m in received] == ["hola"]
