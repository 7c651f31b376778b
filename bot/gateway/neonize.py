"""The WhatsApp Web transport on neonize (whatsmeow in Go): receive and send.

The connection's lifecycle (probe, connect, login, reconnect, exit reasons) is
`bot.gateway.connection`; turning events into `InboundMessage`s is `bot.gateway.normalize`;
the rules for calling Go are in `bot.gateway.goclient`.
"""

from __future__ import annotations

import asyncio
import functools
import random
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TextIO, TypeVar

from loguru import logger
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message
from neonize.utils.enum import ChatPresence, ChatPresenceMedia, ReceiptType

from bot.clock import Clock
from bot.gateway.base import Gateway, GatewayError, OutboundMedia
from bot.gateway.connection import Connection, GatewayExit
from bot.gateway.goclient import ClientFactory, GoClient, call_go, guarded, new_neonize_client
from bot.gateway.normalize import (
    Dropped,
    DropReason,
    NormalizeContext,
    declared_length,
    jid_str,
    mask_address,
    normalize_event,
    parse_jid,
)
from bot.models import InboundMessage

__all__ = ["GatewayExit", "NeonizeGateway"]

SENT_IDS_KEPT = 1000
T = TypeVar("T")

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
        state_dir: Path,
        clock: Clock,
        *,
        session_name: str = "whatsapp-session.sqlite3",
        pair_phone: str | None = None,
        allow_groups: bool = False,
        call_timeout: float = 20.0,
        download_timeout: float = 120.0,
        probe_address: tuple[str, int] = ("web.whatsapp.com", 443),
        probe_timeout: float = 10.0,
        backoff_initial: float = 2.0,
        backoff_cap: float = 300.0,
        backoff_jitter: float = 0.1,
        login_timeout: float = 75.0,
        on_status: Callable[[str], None] | None = None,
        client_factory: ClientFactory = new_neonize_client,
        console: TextIO | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__()
        if pair_phone is not None and not re.fullmatch(r"\+[1-9]\d{5,14}", pair_phone):
            raise ValueError("pair_phone must be the business number in E.164 (+ and digits)")
        self.tenant = tenant
        self.connection = Connection(
            tenant, state_dir, clock, on_message=self._on_message, session_name=session_name,
            pair_phone=pair_phone, call_timeout=call_timeout, probe_address=probe_address,
            probe_timeout=probe_timeout, backoff_initial=backoff_initial,
            backoff_cap=backoff_cap, backoff_jitter=backoff_jitter, login_timeout=login_timeout,
            on_status=on_status, client_factory=client_factory, console=console, rng=rng)
        self.connected = self.connection.connected
        self.state_dir = state_dir
        self.session_path = self.connection.session_path
        self.qr_png_path = self.connection.qr_png_path
        self._clock = clock
        self._allow_groups = allow_groups
        self._call_timeout = call_timeout
        self._download_timeout = download_timeout
        self._sent_ids: OrderedDict[str, None] = OrderedDict()

    # ── lifecycle: the connection's ────────────────────────────────────────────────────

    @property
    def connected_as(self) -> str | None:
        return self.connection.connected_as

    @property
    def status(self) -> str:
        return self.connection.status

    @property
    def finished(self) -> asyncio.Future[GatewayExit]:
        return self.connection.finished

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The background connection task (for tests and diagnostics)."""
        return self.connection.task

    async def start(self) -> None:
        await self.connection.start()

    async def stop(self) -> None:
        await self.connection.stop()

    # ── inbound ────────────────────────────────────────────────────────────────────────

    async def normalize(self, ev: Any, client: GoClient | None = None) -> InboundMessage | Dropped:
        ctx = NormalizeContext(
            tenant=self.tenant,
            resolve_lid=functools.partial(self._resolve_lid, client or self.connection.client),
            now=self._clock.now(),
            allow_groups=self._allow_groups,
            own_user=(self.connected_as or "").removeprefix("+"),
            sent_ids=self._sent_ids.keys(),
        )
        return await normalize_event(ev, ctx)

    async def _resolve_lid(self, client: GoClient | None, lid: Any) -> str | None:
        if client is None:
            raise GatewayError("no WhatsApp client to look the LID up with")
        pn = await self._call("LID lookup", client.get_pn_from_lid(lid))
        return str(pn.User) or None  # whatsmeow answers an empty JID, not an error, if unknown

    @guarded("MessageEv")
    async def _on_message(self, client: GoClient, ev: Any) -> None:
        result = await self.normalize(ev, client)
        if isinstance(result, Dropped):
            logger.bind(msg_id=ev.Info.ID, reason=result.reason.value).log(
                _DROP_LEVELS.get(result.reason, "DEBUG"),
                "dropped a WhatsApp message in {} ({}{})",
                mask_address(jid_str(ev.Info.MessageSource.Chat)),
                result.reason.value,
                f": {result.detail}" if result.detail else "",
            )
            return
        await self.dispatch(result)

    # ── outbound ───────────────────────────────────────────────────────────────────────

    async def send_text(self, chat: str, text: str) -> str:
        client = self._live_client("send a message")
        # A Message, not a str: neonize turns "@digits" in a str into mentions and looks
        # up "@…@g.us" patterns over the network.
        response = await self._call(
            f"sending to {mask_address(chat)}",
            client.send_message(parse_jid(chat), Message(conversation=text)),
        )
        msg_id = str(response.ID)
        if not msg_id:
            raise GatewayError(f"sending to {mask_address(chat)} returned no message id")
        self._sent_ids[msg_id] = None
        while len(self._sent_ids) > SENT_IDS_KEPT:
            self._sent_ids.popitem(last=False)
        return msg_id

    async def send_media(self, chat: str, media: OutboundMedia) -> str:
        """neonize's builders upload the bytes (and make an image's thumbnail); the built
        message goes through `send_message` like text."""
        client = self._live_client("send media")
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
        msg_id = str(response.ID)
        if not msg_id:
            raise GatewayError(f"sending a {media.kind} to {where} returned no message id")
        self._sent_ids[msg_id] = None
        while len(self._sent_ids) > SENT_IDS_KEPT:
            self._sent_ids.popitem(last=False)
        return msg_id

    async def revoke(self, chat: str, msg_id: str) -> None:
        """Delete a message for everyone: the owner's `#bot` commands typed on the business
        phone. They were sent from our own number, so we are the sender."""
        client = self._live_client("delete a message")
        me = await self._call("reading our own WhatsApp id", client.get_me())
        await self._call(f"deleting a message in {mask_address(chat)}",
                         client.revoke_message(parse_jid(chat), me.JID, msg_id))

    async def mark_read(self, chat: str, msg_ids: list[str], sender: str = "") -> None:
        if not msg_ids:
            return
        client = self._live_client("mark messages read")
        chat_jid = parse_jid(chat)
        await self._call(
            f"marking {len(msg_ids)} message(s) read in {mask_address(chat)}",
            client.mark_read(
                *msg_ids,
                chat=chat_jid,
                sender=parse_jid(sender) if sender else chat_jid,
                receipt=ReceiptType.READ,
            ),
        )

    async def set_typing(self, chat: str, typing: bool) -> None:
        client = self._live_client("show typing")
        state = (
            ChatPresence.CHAT_PRESENCE_COMPOSING if typing else ChatPresence.CHAT_PRESENCE_PAUSED
        )
        await self._call(
            f"{'typing' if typing else 'paused'} presence in {mask_address(chat)}",
            client.send_chat_presence(
                parse_jid(chat), state, ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT
            ),
        )

    async def download(self, message: InboundMessage, max_bytes: int) -> bytes:
        media = message.media
        if not isinstance(media, Message):
            raise GatewayError(f"message {message.msg_id} has no downloadable media")
        declared = declared_length(media)
        if declared > max_bytes:
            raise GatewayError(f"media of {declared} bytes exceeds the {max_bytes}-byte limit")
        client = self._live_client("download media")
        data = await self._call(
            f"downloading the media of {message.msg_id}",
            client.download_any(media),
            self._download_timeout,
        )
        if len(data) > max_bytes:
            raise GatewayError(f"media of {len(data)} bytes exceeds the {max_bytes}-byte limit")
        return bytes(data)

    def _live_client(self, what: str) -> GoClient:
        # Also what keeps us from calling Go for a client it no longer has (a panic).
        client = self.connection.client
        if client is None or not self.connected.is_set():
            raise GatewayError(f"cannot {what}: not connected to WhatsApp")
        return client

    async def _call(self, what: str, call: Awaitable[T], limit_s: float | None = None) -> T:
        return await call_go(what, call, limit_s or self._call_timeout)
