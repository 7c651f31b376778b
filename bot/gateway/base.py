"""The transport seam: everything the pipeline needs from WhatsApp, and nothing more."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from bot.models import InboundMessage
from bot.phones import group_jid, is_group_customer

InboundHandler = Callable[[InboundMessage], Awaitable[None]]
# A LID (`digits@lid`) → the phone JID user our own customer store knows for it, or None.
LidDirectory = Callable[[str], Awaitable[str | None]]


class GatewayError(RuntimeError):
    """A transport call failed or timed out; the message says which and why."""


class NotDelivered(GatewayError):
    """A send that provably never left (not connected): safe to send again later."""


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


class Gateway(ABC):
    """Connect, receive normalized messages, send text, mark read, show typing.

    `chat` arguments are transport addresses (a WhatsApp JID string). Implementations
    raise `GatewayError` on failure: a failed send is reported, never swallowed.
    """

    # Sends go through the number's pacer (`bot/gateway/pacer.py`). A transport whose
    # provider paces it (the Cloud API) says False.
    paced = True

    def __init__(self) -> None:
        self._handler: InboundHandler | None = None
        self.lid_directory: LidDirectory | None = None

    def on_message(self, handler: InboundHandler) -> None:
        """Register the one consumer of inbound messages (the Inbox)."""
        self._handler = handler

    async def dispatch(self, message: InboundMessage) -> None:
        if self._handler is None:
            raise GatewayError("no inbound handler registered before messages arrived")
        await self._handler(message)

    @abstractmethod
    async def start(self) -> None:
        """Connect and begin delivering inbound messages."""

    @abstractmethod
    async def stop(self) -> None:
        """Disconnect; idempotent."""

    @abstractmethod
    async def send_text(self, chat: str, text: str) -> str:
        """Send a text message; returns the transport's message id."""

    @abstractmethod
    async def mark_read(self, chat: str, msg_ids: list[str], sender: str = "") -> None: ...

    @abstractmethod
    async def set_typing(self, chat: str, typing: bool) -> None:
        """Composing presence on (True) or paused (False)."""

    async def send_media(self, chat: str, media: OutboundMedia) -> str:
        """Send an image (shown inline) or a document (a file with its name), with the
        caption under it; returns the transport's message id.

        Callers bound the size before calling (`knowledge.max_media_bytes`). Transports
        map `kind` to their own message types (WhatsApp Web: image/document messages; the
        Cloud API: `image`/`document` media messages) and raise `GatewayError` on failure.
        The default raises: a transport without media support says so, never drops it.
        """
        raise GatewayError(f"{type(self).__name__} cannot send media")

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
