"""Sending pictures and documents through neonize's message builders (stand-in Go client)."""

from __future__ import annotations

import pytest
from neonize.aioze.events import ConnectedEv
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message

from bot.gateway.base import GatewayError, OutboundMedia
from bot.gateway.memory import MemoryGateway
from bot.gateway.web.gateway import NeonizeGateway
from tests.gateway.web.builders import CUSTOMER, StandInClient, jid

CHAT = f"{CUSTOMER}@s.whatsapp.net"


@pytest.fixture
async def connected(
    running: tuple[NeonizeGateway, StandInClient],
) -> tuple[NeonizeGateway, StandInClient]:
    gateway, client = running
    await client.fire(ConnectedEv, ConnectedEv(status=True))
    client.calls.clear()
    return gateway, client


async def test_an_image_is_built_with_its_caption_and_sent_to_the_chat(
    connected: tuple[NeonizeGateway, StandInClient],
) -> None:
    gateway, client = connected
    msg_id = await gateway.send_image(CHAT, b"\x89PNG data", "image/png", caption="La roja")
    [((data,), kw)] = client.called("build_image_message")
    assert (data, kw) == (b"\x89PNG data", {"caption": "La roja"})
    [((to, message), _)] = client.called("send_message")
    assert to == jid(CUSTOMER) and isinstance(message, Message)
    assert message.imageMessage.caption == "La roja" and msg_id.startswith("OUT")


async def test_a_document_keeps_its_file_name_and_type(
    connected: tuple[NeonizeGateway, StandInClient],
) -> None:
    gateway, client = connected
    await gateway.send_document(CHAT, b"%PDF-1.4", "application/pdf", "precios.pdf")
    [(_, kw)] = client.called("build_document_message")
    assert kw == {"caption": None, "title": "precios.pdf", "filename": "precios.pdf",
                  "mimetype": "application/pdf"}
    [((_, message), _)] = client.called("send_message")
    assert message.documentMessage.fileName == "precios.pdf"


async def test_media_cannot_go_out_while_disconnected(
    running: tuple[NeonizeGateway, StandInClient],
) -> None:
    gateway, client = running
    with pytest.raises(GatewayError, match="cannot send media: not connected"):
        await gateway.send_image(CHAT, b"\x89PNG", "image/png")
    assert client.called("build_image_message") == []


async def test_the_memory_gateway_records_media_and_its_switch_fails_them() -> None:
    gateway = MemoryGateway()
    media = OutboundMedia("document", b"x", "text/plain", "a.txt", "here")
    await gateway.send_media("1@s.whatsapp.net", media)
    assert gateway.media_sent == [("1@s.whatsapp.net", media)]
    assert [(o.action, o.text) for o in gateway.sent] == [("document", "a.txt: here")]
    gateway.fail_sends = True
    with pytest.raises(GatewayError):
        await gateway.send_media("1@s.whatsapp.net", media)
