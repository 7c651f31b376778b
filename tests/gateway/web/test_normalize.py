"""MessageEv → InboundMessage | Dropped, with real neonize protobuf events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from neonize.aioze.events import MessageEv
from neonize.proto.waCommon.WACommon_pb2 import MessageKey
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import (
    AudioMessage,
    ContactMessage,
    DocumentMessage,
    ExtendedTextMessage,
    FutureProofMessage,
    ImageMessage,
    LocationMessage,
    Message,
    PollCreationMessage,
    ProtocolMessage,
    ReactionMessage,
    SenderKeyDistributionMessage,
    StickerMessage,
    VideoMessage,
)

from bot.gateway.memory import MemoryGateway
from bot.gateway.web.gateway import NeonizeGateway
from bot.gateway.web.normalize import Dropped, DropReason, NormalizeContext, normalize_event
from bot.models import InboundMessage, MessageKind
from tests.gateway.web.builders import (
    BUSINESS,
    CUSTOMER,
    CUSTOMER_E164,
    CUSTOMER_LID,
    GROUP,
    StandInClient,
    event,
    jid,
    text,
)
from tests.gateway.web.conftest import TENANT

SENT_AT = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
NOW = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
CHAT = f"{CUSTOMER}@s.whatsapp.net"


async def no_lookup(lid: Any) -> str | None:
    raise AssertionError("no LID lookup expected")


def context(**options: Any) -> NormalizeContext:
    options.setdefault("resolve_lid", no_lookup)
    return NormalizeContext(tenant=TENANT, now=NOW, own_user=BUSINESS, **options)


async def normalize(ev: Any, **options: Any) -> InboundMessage | Dropped:
    return await normalize_event(ev, context(**options))


def inbound(**fields: Any) -> InboundMessage:
    """What a plain message from the customer normalizes to, with `fields` changed."""
    base: dict[str, Any] = {
        "tenant": TENANT,
        "phone": CUSTOMER_E164,
        "msg_id": "3EB0C767D26A1B2C",
        "timestamp": SENT_AT,
        "chat": CHAT,
        "push_name": "Ana",
        "chat_jid": CHAT,  # the JIDs WhatsApp used, for receipts and typing
        "sender_jid": CHAT,
    }
    return InboundMessage(**(base | fields))


# --- what the customer sends ------------------------------------------------------------


async def test_plain_text() -> None:
    result = await normalize(event(text("hola, ¿tienen la camisa azul?")))

    assert result == inbound(text="hola, ¿tienen la camisa azul?", kind=MessageKind.TEXT)


async def test_extended_text() -> None:
    msg = Message(extendedTextMessage=ExtendedTextMessage(text="mira https://x.example/a"))

    assert await normalize(event(msg)) == inbound(text="mira https://x.example/a")


async def test_image_with_caption_keeps_the_message_for_download() -> None:
    msg = Message(imageMessage=ImageMessage(caption="¿la tienen en M?", mimetype="image/jpeg"))

    result = await normalize(event(msg))

    assert result == inbound(
        kind=MessageKind.IMAGE, text="¿la tienen en M?", caption="¿la tienen en M?", media=msg
    )


async def test_image_without_caption() -> None:
    msg = Message(imageMessage=ImageMessage(mimetype="image/jpeg"))

    assert await normalize(event(msg)) == inbound(kind=MessageKind.IMAGE, text="", media=msg)


async def test_voice_note_is_ptt_audio() -> None:
    msg = Message(audioMessage=AudioMessage(PTT=True, seconds=7, mimetype="audio/ogg"))

    assert await normalize(event(msg)) == inbound(kind=MessageKind.VOICE, media=msg)


async def test_plain_audio_is_not_a_voice_note() -> None:
    msg = Message(audioMessage=AudioMessage(PTT=False, mimetype="audio/mpeg"))

    assert await normalize(event(msg)) == inbound(kind=MessageKind.AUDIO, media=msg)


async def test_video_with_caption() -> None:
    msg = Message(videoMessage=VideoMessage(caption="así llegó"))

    result = await normalize(event(msg))

    assert result == inbound(
        kind=MessageKind.VIDEO, text="así llegó", caption="así llegó", media=msg
    )


async def test_document_with_caption_as_older_builds_wrap_it() -> None:
    doc = Message(documentMessage=DocumentMessage(fileName="pedido.pdf", caption="mi pedido"))
    wrapped = Message(documentWithCaptionMessage=FutureProofMessage(message=doc))

    result = await normalize(event(wrapped))

    assert result == inbound(
        kind=MessageKind.DOCUMENT, text="mi pedido", caption="mi pedido", media=doc
    )


async def test_sticker() -> None:
    msg = Message(stickerMessage=StickerMessage(mimetype="image/webp"))

    assert await normalize(event(msg)) == inbound(kind=MessageKind.STICKER, media=msg)


async def test_location_becomes_a_readable_line() -> None:
    msg = Message(
        locationMessage=LocationMessage(
            degreesLatitude=19.432608,
            degreesLongitude=-99.133209,
            name="Tienda Centro",
            address="Av. Juárez 10",
        )
    )

    result = await normalize(event(msg))

    assert result == inbound(
        kind=MessageKind.LOCATION, text="Tienda Centro, Av. Juárez 10, 19.432608,-99.133209"
    )


async def test_contact_card_with_its_number() -> None:
    vcard = "BEGIN:VCARD\nVERSION:3.0\nFN:Luis\nitem1.TEL;waid=5215587654321:+52 1 55 8765 4321\nEND:VCARD"
    msg = Message(contactMessage=ContactMessage(displayName="Luis", vcard=vcard))

    result = await normalize(event(msg))

    assert result == inbound(kind=MessageKind.CONTACT, text="Luis (+52 1 55 8765 4321)")


async def test_poll_with_its_options() -> None:
    options = [PollCreationMessage.Option(optionName=n) for n in ("Azul", "Rojo")]
    msg = Message(pollCreationMessageV3=PollCreationMessage(name="¿Qué color?", options=options))

    result = await normalize(event(msg))

    assert result == inbound(kind=MessageKind.POLL, text="¿Qué color? [Azul / Rojo]")


async def test_unknown_content_is_other_not_an_error() -> None:
    msg = Message()
    msg.eventMessage.name = "Venta nocturna"

    result = await normalize(event(msg))

    assert isinstance(result, InboundMessage)
    assert (result.kind, result.text) == (MessageKind.OTHER, "")


async def test_disappearing_message_is_unwrapped() -> None:
    msg = Message(ephemeralMessage=FutureProofMessage(message=text("¿siguen abiertos?")))

    assert await normalize(event(msg)) == inbound(text="¿siguen abiertos?")


async def test_key_distribution_riding_along_a_text_is_ignored() -> None:
    msg = text("hola")
    msg.senderKeyDistributionMessage.CopyFrom(SenderKeyDistributionMessage(groupID="x"))

    assert await normalize(event(msg)) == inbound(text="hola")


@pytest.mark.parametrize("raw", [1_767_600_000, 1_767_600_000_000], ids=["s", "ms"])
async def test_timestamp_in_seconds_or_milliseconds(raw: int) -> None:
    result = await normalize(event(text(), timestamp=raw))

    assert isinstance(result, InboundMessage)
    assert result.timestamp == SENT_AT
    assert result.timestamp.tzinfo is UTC


async def test_missing_timestamp_falls_back_to_now() -> None:
    result = await normalize(event(text(), timestamp=0))

    assert isinstance(result, InboundMessage)
    assert result.timestamp == NOW


# --- LIDs: mapped to the phone, never a customer of their own -----------------------------


async def test_lid_sender_mapped_through_sender_alt() -> None:
    lid = jid(CUSTOMER_LID, "lid")
    ev = event(text("hola"), chat=lid, sender=lid, sender_alt=jid(CUSTOMER, device=3))

    result = await normalize(ev)

    lid_chat = f"{CUSTOMER_LID}@lid"
    assert result == inbound(text="hola", lid=lid_chat, chat_jid=lid_chat, sender_jid=lid_chat)


async def test_lid_sender_without_alt_is_looked_up_in_whatsmeow(
    running: tuple[NeonizeGateway, StandInClient],
) -> None:
    gateway, client = running
    client.lids[CUSTOMER_LID] = CUSTOMER
    ev = event(text("hola"), chat=jid(CUSTOMER_LID, "lid"), sender=jid(CUSTOMER_LID, "lid", 2))

    result = await gateway.normalize(ev, client)

    lid_chat = f"{CUSTOMER_LID}@lid"  # the device part is not the chat's
    assert result == inbound(text="hola", lid=lid_chat, chat_jid=lid_chat, sender_jid=lid_chat)
    [(args, _)] = client.called("get_pn_from_lid")
    assert (args[0].User, args[0].Server, args[0].Device) == (CUSTOMER_LID, "lid", 0)


async def test_unknown_lid_is_kept_under_the_lid_and_answered_there() -> None:
    async def unknown(lid: Any) -> str | None:
        return None

    ev = event(text(), chat=jid(CUSTOMER_LID, "lid"))

    result = await normalize(ev, resolve_lid=unknown)

    assert isinstance(result, InboundMessage)
    assert (result.phone, result.chat, result.lid) == (
        f"lid:{CUSTOMER_LID}", f"{CUSTOMER_LID}@lid", f"{CUSTOMER_LID}@lid")


async def test_failing_lid_lookup_keeps_the_message_under_the_lid() -> None:
    async def broken(lid: Any) -> str | None:
        raise RuntimeError("store closed")

    result = await normalize(event(text(), chat=jid(CUSTOMER_LID, "lid")), resolve_lid=broken)

    assert isinstance(result, InboundMessage)
    assert result.phone == f"lid:{CUSTOMER_LID}"


# --- the owner typing on the business phone -----------------------------------------------


async def test_owner_typing_on_the_phone_is_passed_on_for_the_customer() -> None:
    ev = event(
        text("te lo aparto"), from_me=True, sender=jid(BUSINESS, device=0), push_name="Tienda"
    )

    result = await normalize(ev)

    assert result == inbound(text="te lo aparto", from_owner=True, push_name="",
                             sender_jid=f"{BUSINESS}@s.whatsapp.net")


async def test_owner_message_in_a_lid_chat_uses_the_recipient_alt() -> None:
    ev = event(
        text("listo"),
        chat=jid(CUSTOMER_LID, "lid"),
        sender=jid(BUSINESS, device=0),
        from_me=True,
        recipient_alt=jid(CUSTOMER),
    )

    result = await normalize(ev)

    assert result == inbound(text="listo", from_owner=True, push_name="", lid=f"{CUSTOMER_LID}@lid",
                             chat_jid=f"{CUSTOMER_LID}@lid", sender_jid=f"{BUSINESS}@s.whatsapp.net")


async def test_echo_of_what_wabot_sent_is_dropped() -> None:
    ev = event(text("¡Hola Ana!"), msg_id="OUT1", from_me=True, sender=jid(BUSINESS, device=0))

    assert await normalize(ev, sent_ids={"OUT1"}) == Dropped(DropReason.ECHO)


async def test_message_to_yourself_is_not_a_customer() -> None:
    ev = event(text("nota"), chat=jid(BUSINESS), sender=jid(BUSINESS, device=0), from_me=True)

    assert await normalize(ev) == Dropped(DropReason.SELF_CHAT)


# --- not customer messages ----------------------------------------------------------------


async def test_group_message_is_dropped_by_default() -> None:
    ev = event(text(), chat=jid(GROUP, "g.us"), sender=jid(CUSTOMER), is_group=True)

    assert await normalize(ev) == Dropped(DropReason.GROUP)


async def test_group_message_is_the_groups_conversation_when_groups_are_allowed() -> None:
    ev = event(text("hola grupo"), chat=jid(GROUP, "g.us"), sender=jid(CUSTOMER, device=4),
               is_group=True)

    result = await normalize(ev, allow_groups=True)

    # The group is its own conversation (never the member's DM); the member is the sender.
    group = f"{GROUP}@g.us"
    assert result == inbound(text="hola grupo", phone=f"g:{GROUP}", chat=group, push_name="",
                             chat_jid=group, sender_jid=CHAT)


async def test_legacy_group_id_fits_the_customer_key_and_maps_back() -> None:
    legacy = "5215512345678-1600000000"
    ev = event(text("hola"), chat=jid(legacy, "g.us"), sender=jid(CUSTOMER), is_group=True)

    result = await normalize(ev, allow_groups=True)

    assert isinstance(result, InboundMessage)
    assert len(result.phone) <= 20  # customers.phone and journal.phone are VARCHAR(20)
    assert MemoryGateway().chat_for(result.phone) == f"{legacy}@g.us"  # follow-ups go there


async def test_status_update_is_dropped() -> None:
    ev = event(text("mi estado"), chat=jid("status", "broadcast"), sender=jid(CUSTOMER))

    assert await normalize(ev) == Dropped(DropReason.STATUS)


async def test_incoming_broadcast_list_message_was_dropped_instead_of_answered_as_a_dm() -> None:
    ev = event(text("promo"), chat=jid("1767600000", "broadcast"), sender=jid(CUSTOMER))

    result = await normalize(ev)

    assert isinstance(result, InboundMessage)
    assert (result.phone, result.chat) == (CUSTOMER_E164, f"{CUSTOMER}@s.whatsapp.net")


async def test_our_own_broadcast_list_message_is_dropped() -> None:
    ev = event(text("promo"), chat=jid("1767600000", "broadcast"), sender=jid(BUSINESS),
               from_me=True)

    assert await normalize(ev) == Dropped(DropReason.BROADCAST)


async def test_newsletter_is_dropped() -> None:
    ev = event(text("news"), chat=jid("120363144038483540", "newsletter"))

    assert await normalize(ev) == Dropped(DropReason.NEWSLETTER)


async def test_reaction_is_dropped() -> None:
    key = MessageKey(remoteJID=CHAT, fromMe=True, ID="OUT1")
    msg = Message(reactionMessage=ReactionMessage(key=key, text="👍"))

    assert await normalize(event(msg)) == Dropped(DropReason.REACTION, "reactionMessage")


async def test_revoke_is_a_protocol_message() -> None:
    key = MessageKey(remoteJID=CHAT, fromMe=False, ID="3EB0AAAA")
    msg = Message(protocolMessage=ProtocolMessage(key=key, type=ProtocolMessage.REVOKE))

    assert await normalize(event(msg)) == Dropped(DropReason.PROTOCOL, "REVOKE")


async def test_ephemeral_setting_is_a_protocol_message() -> None:
    msg = Message(protocolMessage=ProtocolMessage(type=ProtocolMessage.EPHEMERAL_SETTING))

    assert await normalize(event(msg)) == Dropped(DropReason.PROTOCOL, "EPHEMERAL_SETTING")


async def test_edit_is_dropped() -> None:
    ev = event(text("corrijo"))
    ev.IsEdit = True

    assert await normalize(ev) == Dropped(DropReason.EDIT)


async def test_key_distribution_alone_is_dropped() -> None:
    msg = Message(senderKeyDistributionMessage=SenderKeyDistributionMessage(groupID="x"))

    assert await normalize(event(msg)) == Dropped(DropReason.KEY_DISTRIBUTION)


@pytest.mark.parametrize(
    "ev",
    [
        pytest.param(MessageEv(), id="blank event"),
        pytest.param(event(Message()), id="no content"),
        pytest.param(event(text("   ")), id="blank text"),
        pytest.param(event(text(), msg_id=""), id="no id"),
    ],
)
async def test_empty_or_malformed_event_is_dropped_without_exception(ev: Any) -> None:
    result = await normalize(ev)

    assert isinstance(result, Dropped)
    assert result.reason is DropReason.EMPTY


async def test_unsupported_chat_server_is_dropped() -> None:
    ev = event(text(), chat=jid("12345", "bot"))

    result = await normalize(ev)

    assert isinstance(result, Dropped)
    assert result.reason is DropReason.UNSUPPORTED_CHAT
