"""The WhatsApp Web transport on neonize (whatsmeow in Go): receive and send.

The connection's lifecycle (probe, connect, login, reconnect, exit reasons) is
`connection`; turning events into `InboundMessage`s is `normalize`; the rules for calling
Go are in `goclient` (all in `bot.gateway.web`).
"""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from loguru import logger
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message
from neonize.utils.enum import ChatPresence, ChatPresenceMedia, ReceiptType

from bot.clock import Clock
from bot.gateway.addresses import RawChats
from bot.gateway.base import (
    Binding,
    DeliveryUnknown,
    ExitReason,
    Gateway,
    GatewayError,
    NotDelivered,
    OutboundMedia,
    StatusListener,
)
from bot.gateway.web import offline
from bot.gateway.web.connection import Connection
from bot.gateway.web.devices.base import DeviceStore
from bot.gateway.web.exits import GatewayExit
from bot.gateway.web.goclient import (
    GoClient,
    GoThreads,
    GoTimeout,
    call_go,
    go_context,
    guarded,
)
from bot.gateway.web.normalize import (
    Dropped,
    DropReason,
    NormalizeContext,
    declared_length,
    jid_str,
    mask_address,
    normalize_event,
    parse_jid,
)
from bot.gateway.web.ordered import OrderedEvents
from bot.gateway.web.presence import Presence
from bot.gateway.web.tuning import Tuning
from bot.models import InboundMessage
from bot.phones import is_lid_customer
from bot.settings import WhatsAppSettings

__all__ = ["GatewayExit", "NeonizeGateway"]

SENT_IDS_KEPT = 1000
T = TypeVar("T")
# Errors that prove the frame never left: whatsmeow errors.go ErrNotConnected ("websocket
# not connected", socket.go/request.go sendNode with no socket), ErrNotLoggedIn, and ours.
_NEVER_LEFT = ("websocket not connected", "doesn't contain a device jid", "not connected to")

# Routine drops (status updates, key distribution, reactions…) stay at DEBUG.
_DROP_LEVELS = {
    DropReason.UNRESOLVED_LID: "WARNING",
    DropReason.GROUP: "INFO",
    DropReason.SELF_CHAT: "INFO",
}


class NeonizeGateway(Gateway):
    """WhatsApp through neonize: one linked device, one business number, one tenant.

    `start()` returns at once; the connection lives in a background task (`connection`).
    Watch `connected` (an `asyncio.Event`), `connected_as` (our number, E.164) and
    `finished`, a future resolved with a `GatewayExit` when the gateway has given up for good.
    """

    def __init__(
        self,
        tenant: str,
        settings: WhatsAppSettings,
        clock: Clock,
        *,
        state_dir: Path,
        allow_groups: bool = False,
        on_status: StatusListener | None = None,
        tuning: Tuning | None = None,
        devices: DeviceStore | None = None,
    ) -> None:
        """`devices`: where the linked device lives (`bot.gateway.web.devices`); by
        default the file `settings.session_file` in `state_dir`."""
        super().__init__()
        pair_phone = settings.pair_phone
        if pair_phone is not None and not re.fullmatch(r"\+[1-9]\d{5,14}", pair_phone):
            raise ValueError("pair_phone must be the business number in E.164 (+ and digits)")
        t = tuning or Tuning()
        self.tenant = tenant
        self.connection = Connection(tenant, settings, clock, state_dir=state_dir,
                                     on_message=self._on_message, on_status=on_status,
                                     tuning=t, devices=devices)
        self.state_dir = state_dir
        self.session_path = self.connection.session_path
        self.qr_png_path = self.connection.qr_png_path
        self._clock = clock
        self._allow_groups = allow_groups
        self._call_timeout = settings.call_timeout
        self._send_timeout = t.send_timeout
        self._connect_wait = t.connect_wait
        self._send_attempts = max(1, t.send_attempts)
        self._download_timeout = t.download_timeout
        self._sent_ids: OrderedDict[str, None] = OrderedDict()
        self._events = OrderedEvents(self._handle_event)
        self._composing: set[str] = set()
        self.raw_chat = RawChats()  # receipts, typing and revokes go where WhatsApp wrote
        self._go_threads = settings.go_threads
        self._threads: GoThreads | None = None
        self._offline = self.connection.offline
        self._offline.on_complete = self._offline_synced
        self.presence = Presence()

    # ── lifecycle: the connection's ────────────────────────────────────────────────────

    def bind(self, binding: Binding) -> None:
        super().bind(binding)
        self.connection.restrictions = binding.restrictions
        self.connection.status_listener = binding.on_status

    @property
    def connected(self) -> asyncio.Event:
        return self.connection.connected

    @property
    def connected_as(self) -> str | None:
        return self.connection.connected_as

    @property
    def linking(self) -> NeonizeGateway:
        return self  # the QR's file, the pair code on show, and a code asked while running

    def report(self, line: str) -> None:
        self.connection.report(line)

    @property
    def status(self) -> str:
        return self.connection.status

    @property
    def finished(self) -> asyncio.Future[ExitReason]:
        return self.connection.finished

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The background connection task (for tests and diagnostics)."""
        return self.connection.task

    @property
    def pair_code(self) -> str | None:
        """The pair code on show while not linked (ABCD-EFGH), else None."""
        return self.connection.pairing.pair_code

    async def request_pair_code(self, phone: str) -> str:
        """A pair code for `phone` (E.164) asked while running: the console's form."""
        return await self.connection.pairing.pair(phone)

    async def start(self) -> None:
        if self._threads is None:
            self._threads = GoThreads(self._go_threads)
            asyncio.get_running_loop().set_default_executor(self._threads)
        with go_context():  # the connection's task (and neonize's connect task) inherit it
            await self.connection.start()

    async def stop(self) -> None:
        # Events already queued were acknowledged by whatsmeow: journal them before leaving.
        await self._events.drain(self._call_timeout)
        await self.connection.stop()
        await self._events.drain(self._call_timeout)
        if self._threads is not None:
            self._threads.stop_go()
            self._threads = None

    # ── inbound ────────────────────────────────────────────────────────────────────────

    async def normalize(self, ev: Any, client: GoClient | None = None) -> InboundMessage | Dropped:
        # `client` (the event's) is deliberately unused for Go calls: it may be stopped.
        ctx = NormalizeContext(
            tenant=self.tenant,
            resolve_lid=self._resolve_lid,
            now=self._clock.now(),
            allow_groups=self._allow_groups,
            own_user=self._own_user(client),
            sent_ids=self._sent_ids.keys(),
        )
        return await normalize_event(ev, ctx)

    def _own_user(self, client: GoClient | None) -> str:
        if self.connected_as:
            return self.connected_as.removeprefix("+")
        # neonize aioze/events.py Event.execute stores event 0 (the Device) as `client.me`
        # before any other event reaches a handler; get_me() needs a round trip we may not
        # have made yet (ConnectedEv and the first messages race).
        for candidate in (client, self.connection.client):
            me = getattr(candidate, "me", None)
            user = str(getattr(getattr(me, "JID", None), "User", "") or "")
            if user:
                return user
        return ""

    async def _resolve_lid(self, lid: Any) -> str | None:
        """The phone user for a LID: whatsmeow's LID map through the live client only,
        then our own customer store."""
        try:
            async with self.connection.gate.use("look a LID up") as live:
                pn = await self._call("LID lookup", live.get_pn_from_lid(lid))
            if pn.User:  # whatsmeow store/sqlstore/lidmap.go: an empty JID when unknown
                return str(pn.User)
        except GatewayError as exc:
            logger.debug("LID lookup in WhatsApp's map failed: {}", exc)
        if self.lid_directory is not None:
            return await self.lid_directory(f"{lid.User}@lid")
        return None

    @guarded("MessageEv")
    async def _on_message(self, client: GoClient, ev: Any) -> None:
        self._offline.note(str(ev.Info.ID))
        if self.binding.phone is not None:  # before normalizing: "Message yourself" is dropped there
            source = ev.Info.MessageSource
            self.binding.phone.seen(int(source.Sender.Device), bool(source.IsFromMe))
        handled = self._events.put(client, ev)  # no await before this: Go's order is kept
        await handled

    async def _offline_synced(self, client: GoClient) -> None:
        # Through the ordered queue: the backlog is complete once every message before
        # OfflineSyncCompleted (in Go's order) has reached the inbox.
        await self._events.put(client, offline.DONE)

    async def _handle_event(self, client: GoClient, ev: Any) -> None:
        if ev is offline.DONE:
            if self.binding.on_backlog_complete is not None:
                await self.binding.on_backlog_complete()
            return
        result = await self.normalize(ev, client)
        if self._offline.kept(str(ev.Info.ID)) and not isinstance(result, Dropped):
            result.backlog = True
        if isinstance(result, Dropped):
            logger.bind(msg_id=ev.Info.ID, reason=result.reason.value).log(
                _DROP_LEVELS.get(result.reason, "DEBUG"),
                "dropped a WhatsApp message in {} ({}{})",
                mask_address(jid_str(ev.Info.MessageSource.Chat)),
                result.reason.value,
                f": {result.detail}" if result.detail else "",
            )
            return
        if is_lid_customer(result.phone):
            logger.bind(msg_id=result.msg_id).warning(
                "no phone number known for {}: kept and answered under the LID",
                mask_address(result.lid))
        self.raw_chat.learn(result)
        await self.dispatch(result)

    # ── outbound ───────────────────────────────────────────────────────────────────────

    async def _send_text(self, chat: str, text: str) -> str:
        """Send one text. whatsmeow queues nothing (send.go SendMessage fails at once when
        the socket is down): wait a bounded time for the connection, and send again only
        what provably never left. A timeout raises `DeliveryUnknown`, never a resend."""
        what = f"sending to {mask_address(chat)}"
        for attempt in range(1, self._send_attempts + 1):
            await self._wait_connected(what)
            try:
                async with self.connection.gate.use("send a message") as client:
                    # A Message, not a str: neonize turns "@digits" in a str into mentions
                    # and looks up "@…@g.us" patterns over the network.
                    response = await call_go(
                        what, client.send_message(parse_jid(chat), Message(conversation=text)),
                        self._send_timeout)
                break
            except GoTimeout as exc:
                raise DeliveryUnknown(f"{exc}: WhatsApp may have delivered it") from exc
            except GatewayError as exc:
                if not any(m in str(exc).lower() for m in _NEVER_LEFT):
                    raise
                if attempt == self._send_attempts:
                    raise NotDelivered(str(exc)) from exc
                logger.warning("{} never left ({}); retrying once connected", what, exc)
                self.connected.clear()
        return self._remember(response, what)

    async def _send_media(self, chat: str, media: OutboundMedia) -> str:
        """neonize's builders upload the bytes (and make an image's thumbnail); the built
        message goes through `send_message` like text."""
        if not self.connected.is_set():
            raise GatewayError("cannot send media: not connected to WhatsApp")
        async with self.connection.gate.use("send media") as client:
            where = mask_address(chat)
            caption = media.caption or None
            if media.kind == "image":
                built = client.build_image_message(media.data, caption=caption)
            else:
                built = client.build_document_message(
                    media.data, caption=caption, title=media.filename, filename=media.filename,
                    mimetype=media.mimetype)
            message = await self._call(f"uploading a {media.kind} for {where}", built,
                                       self._download_timeout)
            response = await self._call(f"sending a {media.kind} to {where}",
                                        client.send_message(parse_jid(chat), message))
        return self._remember(response, f"sending a {media.kind} to {where}")

    def _remember(self, response: Any, what: str) -> str:
        """The sent message's id, kept to recognise its echo (`normalize`, `SENT_IDS_KEPT`)."""
        msg_id = str(response.ID)
        if not msg_id:
            raise GatewayError(f"{what} returned no message id")
        self._sent_ids[msg_id] = None
        while len(self._sent_ids) > SENT_IDS_KEPT:
            self._sent_ids.popitem(last=False)
        return msg_id

    async def revoke(self, chat: str, msg_id: str) -> None:
        """Delete a message for everyone: the owner's `#bot` commands typed on the business
        phone. They were sent from our own number, so we are the sender."""
        me = await self.go_call("read our own WhatsApp id", lambda c: c.get_me())
        await self.go_call(f"delete a message in {mask_address(chat)}", lambda c: c.revoke_message(
            parse_jid(self.raw_chat(chat)), me.JID, msg_id))

    async def _mark_read(self, chat: str, msg_ids: list[str], sender: str = "") -> None:
        if not msg_ids:
            return
        chat_jid = parse_jid(self.raw_chat(chat))  # receipt.go MarkRead: sender for groups
        await self.go_call(
            f"mark {len(msg_ids)} message(s) read in {mask_address(chat)}",
            lambda c: c.mark_read(*msg_ids, chat=chat_jid,
                                  sender=parse_jid(sender) if sender else chat_jid,
                                  receipt=ReceiptType.READ))

    async def _set_typing(self, chat: str, typing: bool) -> None:
        """Composing/paused in one chat, inside "available" … "unavailable" for the reply."""
        if typing:
            self._composing.add(chat)
            await self.presence.available(self)
        state = (
            ChatPresence.CHAT_PRESENCE_COMPOSING if typing else ChatPresence.CHAT_PRESENCE_PAUSED
        )
        try:
            await self.go_call(
                f"show {'typing' if typing else 'paused'} in {mask_address(chat)}",
                lambda c: c.send_chat_presence(parse_jid(self.raw_chat(chat)), state,
                                               ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT))
        finally:
            if not typing:
                self._composing.discard(chat)
                if not self._composing:
                    await self.presence.unavailable(self)

    async def download(self, message: InboundMessage, max_bytes: int) -> bytes:
        media = message.media
        if not isinstance(media, Message):
            raise GatewayError(f"message {message.msg_id} has no downloadable media")
        declared = declared_length(media)
        if declared > max_bytes:
            raise GatewayError(f"media of {declared} bytes exceeds the {max_bytes}-byte limit")
        data = await self.go_call(f"download the media of {message.msg_id}",
                              lambda c: c.download_any(media), self._download_timeout)
        if len(data) > max_bytes:
            raise GatewayError(f"media of {len(data)} bytes exceeds the {max_bytes}-byte limit")
        return bytes(data)

    async def _wait_connected(self, what: str) -> None:
        if self.connected.is_set():
            return
        if self._connect_wait <= 0:
            raise NotDelivered(f"cannot {what}: not connected to WhatsApp")
        waiter = asyncio.create_task(self.connected.wait())
        if await self._clock.wait({waiter}, self._connect_wait):
            waiter.cancel()
            raise NotDelivered(f"cannot {what}: not connected to WhatsApp "
                               f"(waited {self._connect_wait:g} s)")

    async def go_call(self, what: str, call: Callable[[GoClient], Awaitable[T]],
                  limit_s: float | None = None) -> T:
        """One Go call on the live client only (see `goclient.GoGate`), while connected."""
        if not self.connected.is_set():
            raise GatewayError(f"cannot {what}: not connected to WhatsApp")
        async with self.connection.gate.use(what) as client:
            return await call_go(what, call(client), limit_s or self._call_timeout)

    async def _call(self, what: str, call: Awaitable[T], limit_s: float | None = None) -> T:
        return await call_go(what, call, limit_s or self._call_timeout)
