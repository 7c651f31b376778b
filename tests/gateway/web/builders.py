"""Real neonize protobuf events, built offline, and a stand-in for the Go client.

`StandInClient` has the shape of `neonize.aioze.client.NewAClient` as the gateway uses it
and records every call; `fire` plays the part of the Go layer delivering an event.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from typing import Any

from neonize.aioze.events import MessageEv
from neonize.proto.Neonize_pb2 import JID, Device, MessageInfo, MessageSource, SendResponse
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import DocumentMessage, ImageMessage, Message

from bot.gateway.web.devices.base import Opening

CUSTOMER = "5215512345678"  # a Mexican mobile in WhatsApp's legacy 521 form
CUSTOMER_E164 = "+5215512345678"
CUSTOMER_LID = "204060801234567"
BUSINESS = "5215598765432"
GROUP = "120363025246125486"
TIMESTAMP_MS = 1_767_600_000_000  # 2026-01-05 08:00:00 UTC


def jid(user: str, server: str = "s.whatsapp.net", device: int = 0) -> JID:
    return JID(User=user, Server=server, Device=device, RawAgent=0, Integrator=0, IsEmpty=False)


def event(
    message: Message | None = None,
    *,
    msg_id: str = "3EB0C767D26A1B2C",
    chat: JID | None = None,
    sender: JID | None = None,
    from_me: bool = False,
    is_group: bool = False,
    sender_alt: JID | None = None,
    recipient_alt: JID | None = None,
    push_name: str = "Ana",
    timestamp: int = TIMESTAMP_MS,
) -> MessageEv:
    """A MessageEv as goneonize encodes it (Timestamp in milliseconds)."""
    chat = chat if chat is not None else jid(CUSTOMER)
    source = MessageSource(
        Chat=chat,
        Sender=sender if sender is not None else chat,
        IsFromMe=from_me,
        IsGroup=is_group,
    )
    if sender_alt is not None:
        source.SenderAlt.CopyFrom(sender_alt)
    if recipient_alt is not None:
        source.RecipientAlt.CopyFrom(recipient_alt)
    info = MessageInfo(
        MessageSource=source, ID=msg_id, Pushname=push_name, Timestamp=timestamp, Type="text"
    )
    return MessageEv(Info=info, Message=message if message is not None else Message())


def text(body: str = "hola, ¿tienen la camisa azul?") -> Message:
    return Message(conversation=body)


class StandInClient:
    """The Go layer's stand-in: records calls, answers from tables, never touches a network."""

    def __init__(self, opening: Opening, uuid: str) -> None:
        self.opening = opening  # the device store and the device, as NewAClient gets them
        self.session = opening.name
        self.uuid = uuid
        self.handlers: dict[type[Any], Callable[[Any, Any], Awaitable[None]]] = {}
        self.qr_handler: Callable[[Any, bytes], Awaitable[None]] | None = None
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.go_task: asyncio.Future[None] | None = None
        self.connecting = asyncio.Event()
        self.lids: dict[str, str] = {}  # LID user → phone user
        self.me_user = BUSINESS
        self.me_device = 0  # a linked device's number (whatsmeow's Store.ID.Device)
        self.me: Device | None = None  # neonize sets it from Go's event 0 before the others
        self.gates: dict[str, asyncio.Event] = {}  # a call waits until its gate opens
        self.media = b""
        self.pair_code = "ABCDEFGH"
        self.failures: dict[str, Exception] = {}
        self.hangs: set[str] = set()
        self._ids = itertools.count(1)

    # registration, as NewAClient.event / NewAClient.qr
    def event(self, event_type: type[Any]) -> Callable[[Any], None]:
        def register(handler: Any) -> None:
            self.handlers[event_type] = handler

        return register

    def qr(self, handler: Any) -> None:
        self.qr_handler = handler

    async def fire(self, event_type: type[Any], ev: Any) -> None:
        await self.handlers[event_type](self, ev)

    async def show_qr(self, data: bytes = b"2@stand-in-qr,ref,key") -> None:
        assert self.qr_handler is not None
        await self.qr_handler(self, data)

    def called(self, name: str) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
        return [(args, kwargs) for n, args, kwargs in self.calls if n == name]

    async def _record(self, name: str, *args: Any, **kwargs: Any) -> None:
        self.calls.append((name, args, kwargs))
        if name in self.failures:
            raise self.failures[name]
        if name in self.hangs:
            await asyncio.Event().wait()
        if name in self.gates:
            await self.gates[name].wait()

    # the calls the gateway makes
    async def connect(self) -> asyncio.Future[None]:
        await self._record("connect")
        self.go_task = asyncio.get_running_loop().create_future()
        self.connecting.set()
        return self.go_task

    async def stop(self) -> None:
        await self._record("stop")
        if self.go_task is not None and not self.go_task.done():
            self.go_task.set_result(None)

    async def send_message(self, to: Any, message: Any) -> SendResponse:
        await self._record("send_message", to, message)
        return SendResponse(ID=f"OUT{next(self._ids)}")

    async def build_image_message(self, file: bytes, caption: str | None = None) -> Message:
        """As neonize's builder, minus the upload: the protobuf it would send."""
        await self._record("build_image_message", file, caption=caption)
        return Message(imageMessage=ImageMessage(caption=caption, fileLength=len(file),
                                                 mimetype="image/png"))

    async def build_document_message(
            self, file: bytes, caption: str | None = None, title: str | None = None,
            filename: str | None = None, mimetype: str | None = None) -> Message:
        await self._record("build_document_message", file, caption=caption, title=title,
                           filename=filename, mimetype=mimetype)
        return Message(documentMessage=DocumentMessage(
            caption=caption, title=title, fileName=filename, mimetype=mimetype,
            fileLength=len(file)))

    async def mark_read(self, *ids: str, chat: Any, sender: Any, receipt: Any) -> None:
        await self._record("mark_read", *ids, chat=chat, sender=sender, receipt=receipt)

    async def send_chat_presence(self, jid: Any, state: Any, media: Any) -> None:
        await self._record("send_chat_presence", jid, state, media)

    async def download_any(self, message: Any) -> bytes:
        await self._record("download_any", message)
        return self.media

    async def get_pn_from_lid(self, lid: JID) -> JID:
        await self._record("get_pn_from_lid", lid)
        user = self.lids.get(lid.User, "")
        # whatsmeow answers an empty JID (not an error) for a LID it does not know
        return jid(user) if user else JID(User="", Server="", RawAgent=0, Device=0, Integrator=0)

    async def send_presence(self, presence: Any) -> None:
        await self._record("send_presence", presence)

    async def get_me(self) -> Device:
        await self._record("get_me")
        return Device(JID=jid(self.me_user, device=self.me_device), PushName="Tienda")

    async def revoke_message(self, chat: JID, sender: JID, message_id: str) -> SendResponse:
        await self._record("revoke_message", chat, sender, message_id)
        return SendResponse(ID=f"OUT{next(self._ids)}")

    async def PairPhone(
        self, phone: str, show_push_notification: bool, client_name: Any = None
    ) -> str:
        await self._record("PairPhone", phone, show_push_notification, client_name=client_name)
        return self.pair_code


class StandInFactory:
    """`client_factory` for the gateway: records each client it makes."""

    def __init__(self) -> None:
        self.clients: list[StandInClient] = []
        self.made = asyncio.Event()
        self.configure: Callable[[StandInClient], None] = lambda client: None

    def __call__(self, opening: Opening, uuid: str) -> StandInClient:
        client = StandInClient(opening, uuid)
        self.configure(client)
        self.clients.append(client)
        self.made.set()
        return client

    async def next_client(self, count: int = 1) -> StandInClient:
        """The `count`-th client, once the gateway has asked it to connect (bounded wait)."""
        async with asyncio.timeout(5):
            while len(self.clients) < count:
                self.made.clear()
                await self.made.wait()
            client = self.clients[count - 1]
            await client.connecting.wait()
        return client
