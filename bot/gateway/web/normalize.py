"""Normalization: a neonize `MessageEv` as the pipeline's `InboundMessage`, or why it is not one.

Pure functions over whatsmeow's protobufs plus the LID lookup handed in through
`NormalizeContext`; the gateway (`bot.gateway.web.gateway`) calls `normalize_event` for every
message event and uses `parse_jid`/`mask_address` for the chats it sends to.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import ProtocolMessage
from neonize.utils.jid import build_jid

from bot.clock import plausible
from bot.gateway.base import GatewayError
from bot.models import InboundMessage, MessageKind
from bot.phones import (
    PhoneError,
    from_whatsapp,
    group_customer,
    is_lid_customer,
    lid_customer,
    mask,
)

PHONE_SERVERS = frozenset({"s.whatsapp.net", "hosted"})
LID_SERVERS = frozenset({"lid", "hosted.lid"})


class DropReason(StrEnum):
    EMPTY = "empty"
    GROUP = "group"
    STATUS = "status"
    BROADCAST = "broadcast"
    NEWSLETTER = "newsletter"
    UNSUPPORTED_CHAT = "unsupported chat"
    SELF_CHAT = "self chat"
    REACTION = "reaction"
    PROTOCOL = "protocol"
    EDIT = "edit"
    POLL_VOTE = "poll vote"
    KEY_DISTRIBUTION = "key distribution"
    ECHO = "echo"
    UNRESOLVED_LID = "unresolved lid"


@dataclass(frozen=True, slots=True)
class Dropped:
    """An event that is not a customer message, and why; `detail` never holds a phone."""

    reason: DropReason
    detail: str = ""


LidResolver = Callable[[Any], Awaitable[str | None]]  # LID JID → phone JID user, None if unknown


@dataclass(frozen=True, slots=True)
class NormalizeContext:
    tenant: str
    resolve_lid: LidResolver
    now: datetime  # used when the event carries no timestamp
    allow_groups: bool = False
    own_user: str = ""  # our number's JID user, to drop the owner's "message yourself" chat
    sent_ids: Collection[str] = ()


@dataclass(frozen=True, slots=True)
class _Content:
    kind: MessageKind
    text: str
    caption: str = ""
    media: Any = None


# whatsmeow's events.Message.UnwrapRaw strips the first six before we see the event; the
# others it leaves wrapped. Unwrapping all of them here keeps normalize_event total.
_WRAPPERS = (
    "deviceSentMessage", "botInvokeMessage", "ephemeralMessage", "viewOnceMessage",
    "viewOnceMessageV2", "documentWithCaptionMessage", "viewOnceMessageV2Extension",
    "lottieStickerMessage", "pollCreationMessageV4", "groupMentionedMessage",
)  # fmt: skip
_DROP_FIELDS = (
    ("reactionMessage", DropReason.REACTION), ("encReactionMessage", DropReason.REACTION),
    ("protocolMessage", DropReason.PROTOCOL), ("editedMessage", DropReason.EDIT),
    ("pollUpdateMessage", DropReason.POLL_VOTE), ("keepInChatMessage", DropReason.PROTOCOL),
    ("pinInChatMessage", DropReason.PROTOCOL),
)  # fmt: skip
_KEY_FIELDS = frozenset(
    {"senderKeyDistributionMessage", "fastRatchetKeySenderKeyDistributionMessage"}
)
_IGNORED_FIELDS = _KEY_FIELDS | {"messageContextInfo"}
_MEDIA_FIELDS = (
    ("imageMessage", MessageKind.IMAGE), ("videoMessage", MessageKind.VIDEO),
    ("ptvMessage", MessageKind.VIDEO), ("audioMessage", MessageKind.AUDIO),
    ("documentMessage", MessageKind.DOCUMENT), ("stickerMessage", MessageKind.STICKER),
)  # fmt: skip
_POLL_FIELDS = ("pollCreationMessage", "pollCreationMessageV2", "pollCreationMessageV3",
                "pollCreationMessageV5", "pollCreationMessageV6")  # fmt: skip
_TEL = re.compile(r"^(?:item\d+\.)?TEL[^:]*:(.+)$", re.MULTILINE)


async def normalize_event(ev: Any, ctx: NormalizeContext) -> InboundMessage | Dropped:
    """One neonize `MessageEv` as the pipeline's `InboundMessage`, or why it is not one."""
    info = ev.Info
    source = info.MessageSource
    chat = source.Chat
    if not info.ID or not chat.Server:
        return Dropped(DropReason.EMPTY, "no message id or chat")
    if (routed := _route(source, ctx)) is not None:
        return routed
    if source.IsFromMe and info.ID in ctx.sent_ids:
        return Dropped(DropReason.ECHO)
    if ev.IsEdit:
        return Dropped(DropReason.EDIT)
    content = _classify(_unwrap(ev.Message))
    if isinstance(content, Dropped):
        return content
    sender = jid_str(source.Sender) if source.Sender.User else jid_str(chat)
    raw_chat = jid_str(chat)
    if chat.Server == "g.us" or source.IsGroup:
        # The group is the conversation (see `bot.phones.group_customer`); the sender is
        # only the receipt's participant (whatsmeow receipt.go MarkRead: "must be set in
        # group chats"). Its name is not the group's.
        phone, lid, address, push_name = group_customer(chat.User), "", raw_chat, ""
    else:
        who = await _party(source, ctx)
        if isinstance(who, Dropped):
            return who
        phone, lid = who
        if source.IsFromMe and phone.removeprefix("+") == ctx.own_user:
            return Dropped(DropReason.SELF_CHAT)
        if chat.Server == "broadcast":  # answered in the DM, so read and typed there too
            raw_chat = sender
        # answered by LID until the phone number is known
        address = lid if is_lid_customer(phone) else phone.removeprefix("+") + "@s.whatsapp.net"
        push_name = "" if source.IsFromMe else info.Pushname  # from us, it is our own name
    return InboundMessage(
        tenant=ctx.tenant,
        phone=phone,
        msg_id=info.ID,
        timestamp=_timestamp(info.Timestamp, ctx.now),
        text=content.text,
        kind=content.kind,
        chat=address,
        push_name=push_name,
        from_owner=source.IsFromMe,
        lid=lid,
        caption=content.caption,
        media=content.media,
        chat_jid=raw_chat,
        sender_jid=sender,
    )


async def _party(source: Any, ctx: NormalizeContext) -> tuple[str, str] | Dropped:
    # The owner typing on the phone: Sender is us, the customer is the chat.
    party = source.Chat if source.IsFromMe or not source.Sender.User else source.Sender
    alt = source.RecipientAlt if source.IsFromMe else source.SenderAlt
    return await _customer(party, alt, ctx)


def _route(source: Any, ctx: NormalizeContext) -> Dropped | None:
    chat = source.Chat
    if chat.Server == "broadcast":
        if chat.User != "status" and not source.IsFromMe:
            # whatsmeow types/message.go IsIncomingBroadcast: a broadcast-list message "shows
            # up in the direct chat with the Sender" — for the customer it is a DM.
            return None
        return Dropped(DropReason.STATUS if chat.User == "status" else DropReason.BROADCAST)
    if chat.Server == "newsletter":
        return Dropped(DropReason.NEWSLETTER)
    if chat.Server == "g.us" or source.IsGroup:
        if not ctx.allow_groups:
            return Dropped(DropReason.GROUP)
        return Dropped(DropReason.GROUP, "owner message in a group") if source.IsFromMe else None
    if chat.Server not in PHONE_SERVERS | LID_SERVERS:
        return Dropped(DropReason.UNSUPPORTED_CHAT, f"chat on server {chat.Server!r}")
    return None


async def _customer(jid: Any, alt: Any, ctx: NormalizeContext) -> tuple[str, str] | Dropped:
    """(E.164 phone, LID or "") of a party.

    A LID is mapped to the phone number (SenderAlt, whatsmeow's LID map, our customer
    store); when nothing knows it, the message is still kept, under `lid:<digits>`: whatsmeow
    has already acknowledged it (whatsmeow receipt.go maybeDeferredAck sends the ack at once unless SynchronousAck), so
    dropping it loses it. A phone-addressed sender's LID comes in SenderAlt: keep it too.
    """
    user, lid = jid.User, ""
    if jid.Server in LID_SERVERS:
        lid = f"{jid.User}@lid"
        if alt.Server in PHONE_SERVERS and alt.User:
            user = alt.User
        else:
            try:
                user = await ctx.resolve_lid(build_jid(jid.User, "lid")) or ""
            except Exception:
                user = ""
            if not user:
                return lid_customer(jid.User), lid
    elif jid.Server in PHONE_SERVERS and alt.Server in LID_SERVERS and alt.User:
        lid = f"{alt.User}@lid"
    if jid.Server not in PHONE_SERVERS | LID_SERVERS:
        return Dropped(DropReason.UNSUPPORTED_CHAT, f"sender on server {jid.Server!r}")
    try:
        return from_whatsapp(user), lid
    except PhoneError:
        return Dropped(DropReason.UNSUPPORTED_CHAT, "sender without a phone number")


def _unwrap(msg: Any) -> Any:
    for _ in range(5):
        wrapper = next((name for name in _WRAPPERS if msg.HasField(name)), None)
        if wrapper is None or not getattr(msg, wrapper).HasField("message"):
            return msg
        msg = getattr(msg, wrapper).message
    return msg


def _classify(msg: Any) -> _Content | Dropped:
    present = {field.name for field, _ in msg.ListFields()}
    for name, reason in _DROP_FIELDS:
        if name in present:
            detail = _protocol_type(msg.protocolMessage) if name == "protocolMessage" else name
            return Dropped(reason, detail)
    content = present - _IGNORED_FIELDS
    if not content:
        keys_only = bool(present & _KEY_FIELDS)
        return Dropped(DropReason.KEY_DISTRIBUTION) if keys_only else Dropped(DropReason.EMPTY)
    if content & {"conversation", "extendedTextMessage"}:
        text = msg.conversation or msg.extendedTextMessage.text
        return _Content(MessageKind.TEXT, text) if text.strip() else Dropped(DropReason.EMPTY)
    for name, kind in _MEDIA_FIELDS:
        if name in content:
            sub = getattr(msg, name)
            if name == "audioMessage" and sub.PTT:
                kind = MessageKind.VOICE
            caption = getattr(sub, "caption", "")
            return _Content(kind, caption, caption, media=msg)
    return _describe(msg, content)


def _describe(msg: Any, content: set[str]) -> _Content:
    """Locations, contacts and polls as one readable line for the agent."""
    if loc := next((getattr(msg, n) for n in ("locationMessage", "liveLocationMessage")
                    if n in content), None):  # fmt: skip
        coords = f"{loc.degreesLatitude:.6f},{loc.degreesLongitude:.6f}"
        parts = (getattr(loc, "name", ""), getattr(loc, "address", ""), coords)
        return _Content(MessageKind.LOCATION, ", ".join(p for p in parts if p))
    if "contactMessage" in content or "contactsArrayMessage" in content:
        cards = (
            [msg.contactMessage]
            if "contactMessage" in content
            else list(msg.contactsArrayMessage.contacts)
        )
        return _Content(MessageKind.CONTACT, "; ".join(_contact_line(c) for c in cards))
    if poll := next((getattr(msg, n) for n in _POLL_FIELDS if n in content), None):
        options = " / ".join(o.optionName for o in poll.options)
        return _Content(MessageKind.POLL, f"{poll.name} [{options}]" if options else poll.name)
    return _Content(MessageKind.OTHER, "")


def _contact_line(card: Any) -> str:
    numbers = [n.strip() for n in _TEL.findall(card.vcard)]
    return f"{card.displayName} ({', '.join(numbers)})" if numbers else card.displayName


def _protocol_type(pm: Any) -> str:
    try:
        return str(ProtocolMessage.Type.Name(pm.type))
    except ValueError:
        return f"type {pm.type}"


def _timestamp(raw: int, fallback: datetime) -> datetime:
    # goneonize encodes Info.Timestamp with UnixMilli (goneonize/utils/encoder.go); older
    # builds used Unix(). 1e11 s is the year 5138, 1e11 ms is 1973: no overlap.
    if raw <= 0:
        return fallback
    seconds = raw / 1000 if raw >= 100_000_000_000 else raw
    try:
        return plausible(datetime.fromtimestamp(seconds, UTC), fallback)
    except (OverflowError, OSError, ValueError):
        return fallback


def jid_str(jid: Any) -> str:
    """`user@server`, without the device part."""
    return f"{jid.User}@{jid.Server}" if jid.User else str(jid.Server)


def parse_jid(address: str) -> Any:
    """A JID protobuf (every required field set) from `user@server` or bare digits."""
    user, sep, server = address.partition("@")
    user = user.split(":", 1)[0]
    server = server if sep else "s.whatsapp.net"
    if not user or not server:
        raise GatewayError(f"not a WhatsApp address: {mask_address(address)!r}")
    return build_jid(user, server)


def mask_address(address: str) -> str:
    """A chat address fit for a log line: phone numbers masked like `bot.phones.mask`."""
    user, _, server = address.partition("@")
    if not server or server in PHONE_SERVERS:
        return mask("+" + user.split(":", 1)[0])
    return f"{user[:4]}****@{server}" if len(user) > 8 else address


def declared_length(media: Any) -> int:
    """The byte length a media message announces (0 if it names none), before downloading."""
    for name, _ in _MEDIA_FIELDS:
        if media.HasField(name):
            return int(getattr(media, name).fileLength)
    return 0
