"""Meta's webhook payloads → `InboundMessage`s and per-message status changes.

One payload may hold several entries, changes, messages and statuses, for several numbers
of the same app: only those addressed to this daemon's `phone_number_id` are taken.
Unknown message types become `OTHER` (kept, not answered): never an exception.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.clock import plausible
from bot.models import InboundMessage, MessageKind
from bot.phones import PhoneError, customer_key_error, from_whatsapp, mask
from bot.stores.outbound import StatusUpdate

# The ids Meta issues for media are digits; anything else would be spliced into a Graph URL
# sent with the access token (`../../<id>/messages`, `123?fields=access_token`).
MEDIA_ID = re.compile(r"[0-9]{1,32}")
# Meta's payloads nest about eight levels; json.loads recurses once per level and a body of
# a few thousand brackets ends in RecursionError (a 500 Meta would redeliver forever).
MAX_DEPTH = 64
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKETS = re.compile(rb"[\[\]{}]")

_MEDIA = {"image": MessageKind.IMAGE, "video": MessageKind.VIDEO,
          "document": MessageKind.DOCUMENT, "sticker": MessageKind.STICKER}


@dataclass(slots=True)
class Events:
    messages: list[InboundMessage] = field(default_factory=list)
    statuses: list[StatusUpdate] = field(default_factory=list)
    foreign: int = 0  # addressed to another number of the same app
    invalid: list[str] = field(default_factory=list)  # senders no WhatsApp number has (masked)


def _when(value: Any, fallback: datetime) -> datetime:
    try:
        return plausible(datetime.fromtimestamp(int(value), tz=UTC), fallback)
    except (TypeError, ValueError, OverflowError, OSError):
        return fallback


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def loads(body: bytes) -> Any:
    """The JSON of a webhook body; ValueError when it is not JSON or nests over MAX_DEPTH."""
    depth = 0
    for bracket in _BRACKETS.findall(_STRING.sub(b'""', body)):
        depth += 1 if bracket in (b"[", b"{") else -1
        if depth > MAX_DEPTH:
            raise ValueError(f"the webhook body nests deeper than {MAX_DEPTH} levels")
    return json.loads(body)


def media_id(value: Any) -> str | None:
    """The media id as Meta issues it (digits), else None."""
    text = str(value or "")
    return text if MEDIA_ID.fullmatch(text) else None


def parse(payload: Any, tenant: str, phone_number_id: str, now: datetime) -> Events:
    events = Events()
    if not isinstance(payload, dict):
        raise ValueError("the webhook body is not a JSON object")
    for entry in _dicts(payload.get("entry")):
        for change in _dicts(entry.get("changes")):
            value = change.get("value")
            if change.get("field") != "messages" or not isinstance(value, dict):
                continue
            meta = _dict(value.get("metadata"))
            if str(meta.get("phone_number_id", "")) != phone_number_id:
                events.foreign += 1
                continue
            names = {str(c.get("wa_id")): str((c.get("profile") or {}).get("name") or "")
                     for c in _dicts(value.get("contacts"))}
            for raw in _dicts(value.get("messages")):
                try:
                    msg = message(raw, tenant, names, now)
                except PhoneError:
                    events.invalid.append(mask(str(raw.get("from") or "")))
                    continue
                if msg is not None:
                    events.messages.append(msg)
            for raw in _dicts(value.get("statuses")):
                events.statuses.append(status(raw, now))
    return events


def message(raw: dict[str, Any], tenant: str, names: dict[str, str],
            now: datetime) -> InboundMessage | None:
    """One message, or None when it has no sender or id; PhoneError when its sender is no
    WhatsApp number (`bot.phones.customer_key_error`: a 40-digit `from` made a customer no
    list could show)."""
    wa_id, msg_id = str(raw.get("from") or ""), str(raw.get("id") or "")
    if not wa_id or not msg_id:
        return None
    phone = from_whatsapp(wa_id)
    kind, text, media, caption = content(raw)
    return InboundMessage(
        tenant=tenant, phone=phone, msg_id=msg_id[:128],
        timestamp=_when(raw.get("timestamp"), now), text=text, kind=kind, chat=wa_id,
        push_name=names.get(wa_id, ""), caption=caption, media=media)


def content(raw: dict[str, Any]) -> tuple[MessageKind, str, str | None, str]:
    """(kind, text, media id, caption) of one message."""
    kind = str(raw.get("type") or "")
    body = _dict(raw.get(kind))
    if kind == "text":
        return MessageKind.TEXT, str(body.get("body") or ""), None, ""
    if kind in _MEDIA or kind == "audio":
        k = (MessageKind.VOICE if body.get("voice") else MessageKind.AUDIO) \
            if kind == "audio" else _MEDIA[kind]
        caption = str(body.get("caption") or "")
        text = caption or str(body.get("filename") or "")
        return k, text, media_id(body.get("id")), caption
    if kind == "interactive":  # a tapped reply button or list row: what the customer chose
        reply = _dict(body.get("button_reply") or body.get("list_reply"))
        return MessageKind.TEXT, str(reply.get("title") or reply.get("id") or ""), None, ""
    if kind == "button":  # a quick-reply button of a template
        return MessageKind.TEXT, str(body.get("text") or body.get("payload") or ""), None, ""
    if kind == "reaction":
        return MessageKind.REACTION, str(body.get("emoji") or ""), None, ""
    if kind == "location":
        place = ", ".join(str(body[k]) for k in ("name", "address") if body.get(k))
        where = f"({body.get('latitude')}, {body.get('longitude')})"
        return MessageKind.LOCATION, f"{place} {where}".strip(), None, ""
    if kind == "contacts":
        cards = []
        for card in _dicts(raw.get("contacts")):
            name = str((card.get("name") or {}).get("formatted_name") or "")
            phones = " ".join(str(p.get("phone") or "") for p in _dicts(card.get("phones")))
            cards.append(f"{name} {phones}".strip())
        return MessageKind.CONTACT, "; ".join(cards), None, ""
    return MessageKind.OTHER, "", None, ""


def status(raw: dict[str, Any], now: datetime) -> StatusUpdate:
    errors = _dicts(raw.get("errors"))
    error = (f"{errors[0].get('code')}: {errors[0].get('title') or errors[0].get('message')}"
             if errors else "")
    recipient = "+" + str(raw.get("recipient_id") or "")
    return StatusUpdate(wamid=str(raw.get("id") or "")[:160],
                        phone=recipient if customer_key_error(recipient) is None else "",
                        status=str(raw.get("status") or "unknown")[:20],
                        at=_when(raw.get("timestamp"), now), error=error[:300])
