"""The WhatsApp Cloud API transport: Meta's Graph endpoints over aiohttp.

Inbound messages arrive through the webhook (`webhook.py`), which hands them to
`dispatch` and answers Meta only once they are journaled. This module sends (through
`graph.py`, which retries what is worth retrying): text, read receipts with the typing
indicator, images and documents, templates; each send's fate is recorded per message.

The 24-hour rule: a free-form message may go out only within 24 h of the customer's last
message. Outside it the configured approved template goes instead, or nothing does (a
logged, recorded skip): never a send that Meta is certain to refuse.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import Awaitable, Callable
from contextlib import suppress
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from loguru import logger

from bot.clock import Clock, SystemClock
from bot.gateway.base import Gateway, GatewayError, OutboundMedia, Template
from bot.gateway.cloud.graph import CloudError, GraphAPI, e164_of
from bot.models import CustomerKey, InboundMessage
from bot.phones import mask
from bot.settings import CloudSettings
from bot.stores.customers import CustomerStore
from bot.stores.outbound import OutboundStore, StatusUpdate

if TYPE_CHECKING:
    from fastapi import APIRouter

WINDOW = timedelta(hours=24)
ANSWERED_FILE = "cloud-answered.log"
ANSWERED_MAX_BYTES = 1 << 20
REMEMBERED_CHATS = 20_000  # beyond this, chats whose 24-hour window closed are forgotten
OUTSIDE_WINDOW = 131047

# (last inbound message time, customer's name) for a customer's number, from the store.
Lookup = Callable[[str], Awaitable[tuple[datetime | None, str]]]


class OutsideWindow(CloudError):
    """Skipped: the customer last wrote over 24 h ago and no template is configured."""


class CloudGateway(Gateway):
    redelivers = True  # a handler error reaches the webhook: Meta redelivers on non-2xx
    own_chat = False  # a number cannot write to itself: alerts need alerts.owner_number
    # Meta paces it (80 messages a second per number) and its quality rating, not a
    # per-minute count, limits it.
    paced = False

    def __init__(self, tenant: str, settings: CloudSettings, clock: Clock | None = None,
                 client: aiohttp.ClientSession | None = None) -> None:
        super().__init__()
        self.tenant = tenant
        self.s = settings
        self.clock: Clock = clock or SystemClock()
        self.graph = GraphAPI(settings, self.clock, client)
        self._connected = asyncio.Event()
        self._own: str | None = None
        self._routers: tuple[APIRouter, ...] = ()
        self.outbound: OutboundStore | None = None  # bound by cloud_server.attach: per-message statuses
        self.lookup: Lookup | None = None  # bound by cloud_server.attach: the window after a restart
        self._last_in: dict[str, datetime] = {}
        self._last_id: dict[str, str] = {}
        self._names: dict[str, str] = {}
        self._recording: set[asyncio.Task[None]] = set()
        self._customers: CustomerStore | None = None
        self._answered_path: Path | None = None
        self._answered_fd: int | None = None
        self._answering: dict[str, list[str]] = {}
        self._learning: asyncio.Task[None] | None = None

    # --- lifecycle ---------------------------------------------------------------------

    # The Cloud transport has no connection that can end (`finished` never resolves): the
    # daemon stops on a signal.

    @property
    def connected(self) -> asyncio.Event:
        return self._connected

    @property
    def connected_as(self) -> str | None:
        return self._own

    @property
    def routers(self) -> tuple[APIRouter, ...]:
        """The webhook receiver, at `/webhooks/whatsapp`."""
        if not self._routers:
            from bot.gateway.cloud.webhook import webhook_router

            self._routers = (webhook_router(self),)
        return self._routers

    async def start(self) -> None:
        await self._settle_answered()
        self._connected.set()  # webhooks carry the messages; nothing to connect to
        self._learning = asyncio.create_task(self._learn_number(), name="cloud-number")

    async def _learn_number(self) -> None:
        """Our own number, for the console and the heartbeat ("connected as …"); in the
        background: the webhook serves whether Graph answers this or not."""
        try:
            number = e164_of((await self.graph.phone_number()).get("display_phone_number"))
        except (GatewayError, ValueError) as exc:
            logger.warning("the Cloud API number could not be read ({}): check "
                           "cloud.access_token with `wabot doctor`", exc)
            return
        self._own = number or None

    async def stop(self) -> None:
        self._connected.clear()
        if self._learning is not None:
            self._learning.cancel()
            with suppress(asyncio.CancelledError):
                await self._learning
            self._learning = None
        await self.flush()
        if self._answered_fd is not None:
            os.close(self._answered_fd)
            self._answered_fd = None
        await self.graph.close()

    async def flush(self) -> None:
        """Wait until the status lines of sent messages are written."""
        while self._recording:
            await asyncio.gather(*self._recording)

    def chat_for(self, phone: str) -> str:
        if not phone.startswith("+"):  # `lid:…`/`g:…` from WhatsApp Web: no wa_id to use
            raise GatewayError(f"{mask(phone)} has no phone number the Cloud API can reach")
        return phone.removeprefix("+")  # the Cloud API addresses chats by wa_id (digits)

    async def dispatch(self, message: InboundMessage) -> None:
        phone = message.phone
        if message.timestamp > self._last_in.get(phone, message.timestamp - WINDOW):
            self._last_in[phone] = message.timestamp
            self._last_id[message.chat] = message.msg_id
        if message.push_name:
            self._names[phone] = message.push_name
        if len(self._last_in) > REMEMBERED_CHATS:
            self._forget_closed_windows()
        await super().dispatch(message)

    def _forget_closed_windows(self) -> None:
        """Chats whose window closed are read from the store again when needed."""
        cutoff = self.clock.now() - WINDOW
        for phone in [p for p, at in self._last_in.items() if at < cutoff]:
            del self._last_in[phone]
            self._names.pop(phone, None)
            self._last_id.pop(self.chat_for(phone), None)
            self._answering.pop(self.chat_for(phone), None)

    async def record_status(self, change: StatusUpdate) -> None:
        """A status callback: sent, delivered, read or failed, for one outbound message."""
        if change.status == "failed":
            logger.bind(customer=mask(change.phone), wamid=change.wamid).warning(
                "WhatsApp could not deliver a message: {}", change.error or "no reason given")
        if self.outbound is not None:
            await self.outbound.apply(change)

    def bind_store(self, customers: CustomerStore, outbound: OutboundStore,
                   state_dir: Path | None = None) -> None:
        """Per-message statuses go to `outbound`; after a restart the 24-hour window is read
        from the journal (the customer's latest message) and the customer's name; answered
        messages are noted in `state_dir` the moment Meta accepts their reply."""
        self.outbound = outbound
        self._customers = customers
        self._answered_path = state_dir / ANSWERED_FILE if state_dir is not None else None

        async def lookup(phone: str) -> tuple[datetime | None, str]:
            key = CustomerKey(self.tenant, phone)
            customer = await customers.get(key, max_age=5.0)
            return await customers.journal_latest(key), customer.name if customer else ""

        self.lookup = lookup

    # --- answered the moment Meta accepts ----------------------------------------------
    # The journal marks a message answered a few database writes after its reply went out;
    # a crash in between would answer it again after the restart. So the ids a reply answers
    # (the turn's read receipt named them) are appended to a file as soon as Meta accepts
    # the reply — one write(2), no queue — and applied to the journal before recovery. What
    # remains is the send whose answer was not read yet: Meta has no idempotency key.

    async def _settle_answered(self) -> None:
        path = self._answered_path
        if path is None or self._answered_fd is not None:
            return
        ids = (path.read_text(encoding="utf-8").split() if path.is_file() else [])
        if ids and self._customers is not None:
            await self._customers.journal_mark(self.tenant, ids, "answered")
            logger.info("journal brought up to date with {} answered-message note(s) from "
                        "before the restart", len(ids))
        self._answered_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND,
                                    0o600)

    def _note_answered(self, chat: str) -> None:
        ids = self._answering.pop(chat, None)
        if not ids or self._answered_fd is None:
            return
        if os.fstat(self._answered_fd).st_size > ANSWERED_MAX_BYTES:
            os.ftruncate(self._answered_fd, 0)  # older lines are long since in the journal
        os.write(self._answered_fd, ("\n".join(ids) + "\n").encode())

    # --- sending through the Graph API ------------------------------------------------

    async def _send(self, chat: str, kind: str, payload: dict[str, Any]) -> str:
        try:
            wamid = await self.graph.send(chat, kind, payload)
        except CloudError as exc:
            await self._record(f"error:{uuid.uuid4().hex}", chat, kind, "failed",
                               f"{exc.code}: {exc}" if exc.code else str(exc))
            raise
        # Recorded in the background: between Meta accepting a reply and the journal marking
        # its message answered, a crash means the reply goes out again after the restart,
        # so nothing else may wait in that window.
        task = asyncio.create_task(self._record(wamid, chat, kind, "accepted"))
        self._recording.add(task)
        task.add_done_callback(self._recording.discard)
        return wamid

    async def _record(self, wamid: str, chat: str, kind: str, status: str,
                      error: str = "") -> None:
        if self.outbound is None:
            return
        try:
            await self.outbound.record(wamid, "+" + chat, kind, status, self.clock.now(), error)
        except Exception:  # the message itself went out; only its status line is missing
            logger.opt(exception=True).warning("outbound status of {} not recorded", wamid)

    # --- the 24-hour window ------------------------------------------------------------

    async def _last_contact(self, phone: str) -> tuple[datetime | None, str]:
        last, name = self._last_in.get(phone), self._names.get(phone, "")
        if (last is None or not name) and self.lookup is not None:
            stored, stored_name = await self.lookup(phone)
            if stored is not None and (last is None or stored > last):
                last = stored
            name = name or stored_name
        return last, name

    async def window_open(self, phone: str) -> bool:
        last = self._last_in.get(phone)  # no database read when it is known (an outage)
        if last is None or self.clock.now() - last >= WINDOW:
            last, _ = await self._last_contact(phone)
        return last is not None and self.clock.now() - last < WINDOW

    async def may_write_first(self, phone: str) -> str | None:
        """Whether a message we start (a follow-up) can go to `phone` now: None, or why
        not. Asked before the agent composes it, so a skip spends no model tokens; a skip
        is logged and recorded for the console as a send outside the window is."""
        if self.s.followup_template or await self.window_open(phone):
            return None
        await self._skip(self.chat_for(phone))
        return "outside the 24-hour window and no cloud.followup_template"

    async def _skip(self, chat: str) -> None:
        await self._record(f"skipped:{uuid.uuid4().hex}", chat, "text", "skipped",
                           "outside the 24-hour window; no cloud.followup_template")
        logger.bind(customer=mask("+" + chat)).warning(
            "message skipped: the customer last wrote over 24 h ago and no approved "
            "template is configured (cloud.followup_template)")

    async def _outside_window(self, chat: str, text: str) -> str:
        phone = "+" + chat
        log = logger.bind(customer=mask(phone))
        if not self.s.followup_template:
            await self._skip(chat)
            raise OutsideWindow("outside the 24-hour window and no template configured",
                                OUTSIDE_WINDOW)
        _, name = await self._last_contact(phone)
        log.info("outside the 24-hour window: sending template {}", self.s.followup_template)
        return await self.send_template(chat, self.s.followup_template, self._parameter(
            text, name))

    def _parameter(self, text: str, name: str) -> list[str]:
        if self.s.template_parameter == "none":
            return []
        return [one_line(text if self.s.template_parameter == "text" else (name or "there"))]

    # --- sending -----------------------------------------------------------------------

    async def _send_text(self, chat: str, text: str) -> str:
        try:
            if not await self.window_open("+" + chat):
                wamid = await self._outside_window(chat, text)
            else:
                wamid = await self._send(chat, "text", {"body": text, "preview_url": False})
        except GatewayError:
            self._answering.pop(chat, None)
            raise
        self._note_answered(chat)
        return wamid

    async def send_notice(self, chat: str, text: str, template: Template | None = None) -> str:
        """An owner alert: free text while the owner's number wrote to the business within
        24 h, else `template` with the text as its one parameter, else `OutsideWindow`."""
        if await self.window_open("+" + chat):
            return await self._paced(chat, self._send, chat, "text",
                                     {"body": text, "preview_url": False})
        if template is None:
            raise OutsideWindow(f"{mask('+' + chat)} has not written to the business in the "
                                "last 24 h and no alerts.template is configured",
                                OUTSIDE_WINDOW)
        return await self._paced(chat, self.send_template, chat, template.name,
                                 [one_line(text)], template.language)

    async def send_template(self, chat: str, name: str, params: list[str],
                            language: str = "") -> str:
        template: dict[str, Any] = {
            "name": name, "language": {"code": language or self.s.template_language}}
        if params:
            template["components"] = [{"type": "body", "parameters": [
                {"type": "text", "text": p} for p in params]}]
        return await self._send(chat, "template", template)

    async def _send_media(self, chat: str, media: OutboundMedia) -> str:
        """An image or a document: uploaded to `/{phone_number_id}/media`, then sent by
        its media id with the caption (and the file name for documents)."""
        if not await self.window_open("+" + chat):
            raise OutsideWindow(f"{media.kind} outside the 24-hour window", OUTSIDE_WINDOW)
        media_id = await self.graph.upload(media.data, media.mimetype, media.filename)
        return await self.send_media_ref(chat, media.kind, media_id, media.caption,
                                         media.filename)

    async def send_media_ref(self, chat: str, kind: str, ref: str, caption: str = "",
                             filename: str = "") -> str:
        """An image or a document by public https URL or by an uploaded media id."""
        if kind not in ("image", "document"):
            raise CloudError(f"cannot send {kind!r}: use image or document")
        payload: dict[str, Any] = ({"link": ref} if ref.startswith(("http://", "https://"))
                                   else {"id": ref})
        if caption:
            payload["caption"] = caption
        if filename and kind == "document":
            payload["filename"] = filename
        return await self._send(chat, kind, payload)

    async def _mark_read(self, chat: str, msg_ids: list[str], sender: str = "") -> None:
        self._answering[chat] = list(msg_ids)  # the turn's reply answers these
        if msg_ids:  # reading the newest marks the earlier ones read too
            await self._status(msg_ids[-1], typing=False)

    async def _set_typing(self, chat: str, typing: bool) -> None:
        # The indicator rides on a read receipt of the customer's last message and ends by
        # itself when the reply arrives (or after 25 s): there is no "paused".
        last = self._last_id.get(chat)
        if typing and last:
            await self._status(last, typing=True)

    async def _status(self, msg_id: str, typing: bool) -> None:
        body: dict[str, Any] = {"messaging_product": "whatsapp", "status": "read",
                                "message_id": msg_id}
        if typing:
            body["typing_indicator"] = {"type": "text"}
        await self.graph.call("POST", self.graph.messages_url, json=body)

    async def download(self, message: InboundMessage, max_bytes: int) -> bytes:
        media_id = message.media
        if not isinstance(media_id, str) or not media_id:
            raise CloudError(f"message {message.msg_id} has no media id")
        return await self.graph.download(media_id, max_bytes)

    async def phone_number(self) -> dict[str, Any]:
        """The number's details; proves the token (used by `wabot doctor`)."""
        return await self.graph.phone_number()


def one_line(value: str) -> str:
    """A template parameter: no newlines, tabs or runs of spaces (Meta refuses them)."""
    return re.sub(r"\s+", " ", value).strip()[:1000]
