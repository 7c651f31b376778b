"""Meta's webhook payloads → `InboundMessage`s and per-message status changes.

One payload may hold several entries, changes, messages and statuses, for several numbers
of the same app: only those addressed to this daemon's `phone_number_id` are taken.
Unknown message types become `OTHER` (kept, not answered): never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.clock import plausible
from bot.models import InboundMessage, MessageKind
from bot.stores.outbound import StatusUpdate

_MEDIA = {"image": MessageKind.IMAGE, "video": MessageKind.VIDEO,
          "document": MessageKind.DOCUMENT, "sticker": MessageKind.STICKER}


@dataclass(slots=True)
class Events:
    messages: list[InboundMessage] = field(default_factory=list)
    statuses: list[StatusUpdate] = field(default_factory=list)
    foreign: int = 0  # addressed to another number of the same app


def _when(value: Any, fallback: datetime) -> datetime:
    try:
        return plausible(datetime.fromtimestamp(int(value), tz=UTC), fallback)
    except (TypeError, ValueError, OverflowError, OSError):
        return fallback


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


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
                msg = message(raw, tenant, names, now)
                if msg is not None:
                    events.messages.append(msg)
            for raw in _dicts(value.get("statuses")):
                events.statuses.append(status(raw, now))
    return events


def message(raw: dict[str, Any], tenant: str, names: dict[str, str],
            now: datetime) -> InboundMessage | None:
    wa_id, msg_id = str(raw.get("from") or ""), str(raw.get("id") or "")
    if not wa_id.isdigit() or not msg_id:
        return None
    kind, text, media, caption = content(raw)
    return InboundMessage(
        tenant=tenant, phone="+" + wa_id, msg_id=msg_id[:128],
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
        return k, text, str(body.get("id") or "") or None, caption
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
    recipient = str(raw.get("recipient_id") or "")
    return StatusUpdate(wamid=str(raw.get("id") or "")[:160],
                        phone="+" + recipient if recipient else "",
                        status=str(raw.get("status") or "unknown")[:20],
                        at=_when(raw.get("timestamp"), now), error=error[:300])
