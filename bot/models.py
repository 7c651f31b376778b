"""The nouns every part of wabot speaks: customers, messages, stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class CustomerKey:
    """One customer of one business: isolation lives in this type.

    `tenant` is the business (one WhatsApp number, one daemon); `phone` is the
    customer's number in E.164 (`+` and digits), as WhatsApp delivered it.
    """

    tenant: str
    phone: str

    def __str__(self) -> str:
        return f"{self.tenant}/{self.phone}"


class Stage(StrEnum):
    LEAD = "lead"
    CUSTOMER = "customer"
    ACTIVE_USER = "active_user"
    CHURNED = "churned"


class MessageKind(StrEnum):
    TEXT = "text"
    VOICE = "voice"
    AUDIO = "audio"
    IMAGE = "image"
    VIDEO = "video"
    DOCUMENT = "document"
    STICKER = "sticker"
    LOCATION = "location"
    CONTACT = "contact"
    REACTION = "reaction"
    POLL = "poll"
    OTHER = "other"


class Role(StrEnum):
    """Who said a line of a customer's history."""

    CUSTOMER = "customer"
    AGENT = "agent"
    OWNER = "owner"  # the business owner typing from the phone (human takeover)
    NOTE = "note"  # an event the agent should know about, e.g. "voice note could not be heard"


@dataclass(slots=True)
class InboundMessage:
    """One message that reached the business number, normalized from the transport."""

    tenant: str
    phone: str  # customer E.164
    msg_id: str
    timestamp: datetime
    text: str = ""
    kind: MessageKind = MessageKind.TEXT
    chat: str = ""  # transport address of the chat (a WhatsApp JID); empty = derive from phone
    push_name: str = ""
    from_owner: bool = False  # typed by the business owner on the phone, not by wabot
    lid: str = ""  # the customer's WhatsApp LID, when WhatsApp told us one
    caption: str = ""
    media: object | None = field(default=None, repr=False)  # transport handle for downloads
    # The JIDs WhatsApp itself used (`user@server`, no device), possibly `…@lid`: whatsmeow
    # rewrites a phone JID to the LID only inside SendMessage (send.go), so read receipts,
    # typing and revokes must go to these. `sender_jid` is the participant in groups.
    chat_jid: str = ""
    sender_jid: str = ""
    backlog: bool = False  # delivered in WhatsApp's offline sync after downtime, not live

    @property
    def key(self) -> CustomerKey:
        return CustomerKey(self.tenant, self.phone)


@dataclass(frozen=True, slots=True)
class MemoryMessage:
    """One line of a customer's permanent history."""

    role: Role
    text: str
    at: datetime
    kind: str = "chat"  # chat | followup | owner | note
    msg_id: str = ""  # the WhatsApp id for inbound lines: appending it twice is a no-op
    seq: int = 0  # store-assigned order; 0 before it is stored


@dataclass(frozen=True, slots=True)
class Outbound:
    """What the gateway was asked to do, as the in-memory gateway records it."""

    action: str  # "text" | "image" | "document" | "read" | "composing" | "paused"
    chat: str
    text: str = ""
    at: datetime | None = None
