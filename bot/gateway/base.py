"""The transport seam: everything the pipeline needs from WhatsApp, and nothing more."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable

from bot.models import InboundMessage

InboundHandler = Callable[[InboundMessage], Awaitable[None]]
# A LID (`digits@lid`) → the phone JID user our own customer store knows for it, or None.
LidDirectory = Callable[[str], Awaitable[str | None]]


class GatewayError(RuntimeError):
    """A transport call failed or timed out; the message says which and why."""


class NotDelivered(GatewayError):
    """A send that provably never left (not connected): safe to send again later."""


class DeliveryUnknown(GatewayError):
    """A send that timed out: WhatsApp may have it. Never resent blindly."""


class Gateway(ABC):
    """Connect, receive normalized messages, send text, mark read, show typing.

    `chat` arguments are transport addresses (a WhatsApp JID string). Implementations
    raise `GatewayError` on failure: a failed send is reported, never swallowed.
    """

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

    def chat_for(self, phone: str) -> str:
        """The transport address of a customer's chat, from their E.164 number (or the
        `lid:<digits>` key of a customer known only by LID)."""
        if phone.startswith("lid:"):
            return phone.removeprefix("lid:") + "@lid"
        return phone.removeprefix("+") + "@s.whatsapp.net"

    async def download(self, message: InboundMessage, max_bytes: int) -> bytes:
        """The media bytes of an inbound message; transports without media raise."""
        raise GatewayError(f"{type(self).__name__} cannot download media")
