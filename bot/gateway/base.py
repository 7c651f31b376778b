"""The transport seam: everything the pipeline needs from WhatsApp, and nothing more."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from bot.models import InboundMessage
from bot.phones import group_jid, is_group_customer

if TYPE_CHECKING:
    from fastapi import APIRouter

    from bot.gateway.phone import PhoneWatch
    from bot.gateway.restrictions import Restrictions

InboundHandler = Callable[[InboundMessage], Awaitable[None]]
# A LID (`digits@lid`) → the phone JID user our own customer store knows for it, or None.
LidDirectory = Callable[[str], Awaitable[str | None]]
StatusListener = Callable[[str], None]


class GatewayError(RuntimeError):
    """A transport call failed or timed out; the message says which and why."""


class NotDelivered(GatewayError):
    """A send that provably never left (not connected): safe to send again later."""


class NotOwner(NotDelivered):
    """Another node of the fleet serves the number now: nothing was sent, and nothing of
    the turn is written here; the owner answers the message from the journal."""


class DeliveryUnknown(GatewayError):
    """A send that timed out: WhatsApp may have it. Never resent blindly."""


@dataclass(frozen=True, slots=True)
class OutboundMedia:
    """A picture or a document to send, already read and size-checked by the caller."""

    kind: Literal["image", "document"]
    data: bytes
    mimetype: str  # "image/jpeg", "application/pdf", …
    filename: str  # shown to the customer for documents
    caption: str = ""


@dataclass(frozen=True, slots=True)
class Template:
    """An approved message template (the Cloud API): its name and language code."""

    name: str
    language: str


class ExitReason(Protocol):
    """Why a gateway gave up for good (`str()` names it); `needs_operator` ones want a
    human: the daemon exits 78 and the owner is alerted."""

    @property
    def needs_operator(self) -> bool: ...


class Linkable(Protocol):
    """A transport linked to its number from the console: a QR code, or a pair code asked
    for a phone number while running (WhatsApp Web)."""

    @property
    def qr_png_path(self) -> Path: ...

    @property
    def pair_code(self) -> str | None: ...

    async def request_pair_code(self, phone: str) -> str: ...


class Pace(Protocol):
    """The number's send pace (`bot.gateway.pacer.Pacer`): `send` waits for a slot, unless
    `chat` is `own` (the owner's own chat), then calls `send(*args)`."""

    async def send(self, chat: str, own: str | None, send: Callable[..., Awaitable[str]],
                   *args: Any) -> str: ...


async def _unbound(message: InboundMessage) -> None:
    raise GatewayError("no inbound handler registered before messages arrived")


@dataclass(frozen=True, slots=True)
class Binding:
    """What the number's unit hands its gateway once, before `start()`.

    `on_message`: the one consumer of inbound messages (the unit's intake).
    `lid_directory`: a LID WhatsApp's own map forgot, from our customer store.
    `on_backlog_complete`: the offline backlog was delivered (WhatsApp Web's offline sync).
    `on_status`: each new status line (the console's `connection.changed`).
    `restrictions`: bans and limits the transport learns of (WhatsApp Web).
    `phone`: the business phone's last sign of life (WhatsApp Web's linked device).
    `pacer`: the number's send pace, applied to every send of a `paced` transport.
    `fence`: raises when this process may no longer send for the number (its lease in the
    fleet lapsed or moved: `bot.fleet.lease.Lease.check`); checked right before each send.
    A transport uses what applies to it and ignores the rest.
    """

    on_message: InboundHandler = _unbound
    lid_directory: LidDirectory | None = None
    on_backlog_complete: Callable[[], Awaitable[None]] | None = None
    on_status: StatusListener | None = None
    restrictions: Restrictions | None = None
    phone: PhoneWatch | None = None
    pacer: Pace | None = None
    fence: Callable[[], None] | None = None


class Gateway(ABC):
    """Connect, receive normalized messages, send text, mark read, show typing.

    `chat` arguments are transport addresses (a WhatsApp JID string). Implementations
    raise `GatewayError` on failure: a failed send is reported, never swallowed.

    What a transport can do beyond that is declared here with a default, so code outside
    `bot.gateway` asks the seam, never the class: `connected`, `connected_as`, `status`,
    `finished`, `linking`, `may_write_first`, `routers`, `paced`, `redelivers`,
    `own_chat`, `send_notice`.
    """

    # Sends go through the number's pacer (`bot/gateway/pacer.py`). A transport whose
    # provider paces it (the Cloud API) says False.
    paced = True
    # A handler's error reaches the sender, who delivers the message again (the Cloud API's
    # webhook answers non-2xx): nothing needs holding in memory.
    redelivers = False
    # The number has a chat with itself ("Message yourself") where the owner reads alerts.
    # The Cloud API has none: it cannot send to its own number.
    own_chat = True

    def __init__(self) -> None:
        self.binding = Binding()
        self._finished: asyncio.Future[ExitReason] | None = None

    def bind(self, binding: Binding) -> None:
        """The unit's callbacks and state, once, before `start()`."""
        self.binding = binding

    def on_message(self, handler: InboundHandler) -> None:
        """Register the one consumer of inbound messages (the unit's intake)."""
        self.binding = replace(self.binding, on_message=handler)

    @property
    def lid_directory(self) -> LidDirectory | None:
        return self.binding.lid_directory

    async def dispatch(self, message: InboundMessage) -> None:
        await self.binding.on_message(message)

    # ── what the daemon and the console read ───────────────────────────────────────────

    @property
    def connected(self) -> asyncio.Event | None:
        """Set while sends can go out; None: always (nothing to connect to)."""
        return None

    @property
    def connected_as(self) -> str | None:
        """Our own number (E.164), once the transport knows it."""
        return None

    @property
    def status(self) -> str | None:
        """One line on the connection, as systemd's STATUS shows it; None: nothing to say."""
        return None

    @property
    def finished(self) -> asyncio.Future[ExitReason]:
        """Resolved with the reason when the gateway has given up for good (never, for a
        transport with no connection that can end)."""
        if self._finished is None:
            self._finished = asyncio.get_running_loop().create_future()
        return self._finished

    @property
    def linking(self) -> Linkable | None:
        """How the console links this number (QR, pair code); None: nothing to link."""
        return None

    @property
    def routers(self) -> Sequence[APIRouter]:
        """What the transport serves on the console's HTTP server (a webhook receiver)."""
        return ()

    async def may_write_first(self, phone: str) -> str | None:
        """Why a message we start (a follow-up) cannot reach `phone` now, or None when it
        can (the Cloud API's 24-hour window)."""
        return None

    def report(self, line: str) -> None:
        """A line for systemd's STATUS (a restriction, say); transports without one drop it."""
        return None

    @abstractmethod
    async def start(self) -> None:
        """Connect and begin delivering inbound messages."""

    @abstractmethod
    async def stop(self) -> None:
        """Disconnect; idempotent."""

    async def send_text(self, chat: str, text: str) -> str:
        """Send a text message; returns the transport's message id."""
        return await self._paced(chat, self._send_text, chat, text)

    @abstractmethod
    async def _send_text(self, chat: str, text: str) -> str:
        """The transport's own send, unpaced."""

    async def send_notice(self, chat: str, text: str, template: Template | None = None) -> str:
        """A message from the business to its owner (an alert), not part of a customer's
        conversation: `send_text`, except where the transport limits who may be written
        to (the Cloud API sends `template` outside the chat's 24-hour window)."""
        return await self.send_text(chat, text)

    async def mark_read(self, chat: str, msg_ids: list[str], sender: str = "") -> None:
        """Blue ticks for `msg_ids` (the Cloud API also shows "typing…" with them)."""
        self._check_fence()
        await self._mark_read(chat, msg_ids, sender)

    @abstractmethod
    async def _mark_read(self, chat: str, msg_ids: list[str], sender: str = "") -> None: ...

    async def set_typing(self, chat: str, typing: bool) -> None:
        """Composing presence on (True) or paused (False)."""
        self._check_fence()
        await self._set_typing(chat, typing)

    @abstractmethod
    async def _set_typing(self, chat: str, typing: bool) -> None: ...

    def _check_fence(self) -> None:
        """Nothing leaves for a number another node serves now (`Binding.fence`)."""
        if self.binding.fence is not None:
            try:
                self.binding.fence()
            except NotOwner:
                raise
            except Exception as exc:
                raise NotOwner(str(exc)) from exc

    async def send_media(self, chat: str, media: OutboundMedia) -> str:
        """Send an image (shown inline) or a document (a file with its name), with the
        caption under it; returns the transport's message id.

        Callers bound the size before calling (`knowledge.max_media_bytes`). Transports
        map `kind` to their own message types (WhatsApp Web: image/document messages; the
        Cloud API: `image`/`document` media messages) in `_send_media` and raise
        `GatewayError` on failure.
        """
        return await self._paced(chat, self._send_media, chat, media)

    async def _send_media(self, chat: str, media: OutboundMedia) -> str:
        """The default raises: a transport without media support says so, never drops it."""
        raise GatewayError(f"{type(self).__name__} cannot send media")

    async def _paced(self, chat: str, send: Callable[..., Awaitable[str]], *args: Any) -> str:
        """Every send, whoever makes it, waits for the number's pacer (not a transport whose
        provider paces it); the owner's own chat never waits. The fence is checked after
        the wait, right before the transport's call."""
        async def fenced(*args: Any) -> str:
            self._check_fence()  # another node may serve the number now: never sent
            return await send(*args)

        pacer = self.binding.pacer
        if pacer is None or not self.paced:
            return await fenced(*args)
        own = self.connected_as
        return await pacer.send(chat, self.chat_for(own) if own else None, fenced, *args)

    async def send_image(self, chat: str, data: bytes, mimetype: str, caption: str = "",
                         filename: str = "image") -> str:
        return await self.send_media(chat, OutboundMedia("image", data, mimetype, filename,
                                                         caption))

    async def send_document(self, chat: str, data: bytes, mimetype: str, filename: str,
                            caption: str = "") -> str:
        return await self.send_media(chat, OutboundMedia("document", data, mimetype,
                                                         filename, caption))

    def chat_for(self, phone: str) -> str:
        """The transport address of a customer's chat, from their E.164 number (or the
        `lid:<digits>` key of a customer known only by LID, or a group's `g:` key)."""
        if phone.startswith("lid:"):
            return phone.removeprefix("lid:") + "@lid"
        if is_group_customer(phone):
            return group_jid(phone)
        return phone.removeprefix("+") + "@s.whatsapp.net"

    async def download(self, message: InboundMessage, max_bytes: int) -> bytes:
        """The media bytes of an inbound message; transports without media raise."""
        raise GatewayError(f"{type(self).__name__} cannot download media")
