"""What `Inbox.feed` did with a message, and non-text kinds in words the agent reads."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from bot.models import InboundMessage, MessageKind


class Fed(StrEnum):
    """What `feed` did with a message."""

    QUEUED = "queued"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    OWNER = "owner"
    DEFERRED = "deferred"  # journaled while stopping: answered after the next start
    FILTERED = "filtered"  # a filter took it (paused chat, opt-out, deny list, rate limit…)
    DENIED = "denied"  # access lists: no agent, no model call, no reply
    RATE_LIMITED = "rate_limited"  # past a flood's bound: in history, read by the next turn
    HELD = "held"  # over a per-minute cap: joins the next turn the cap allows
    CAPPED = "capped"  # over the daily tokens: answered when the cap allows (revisit)
    PAUSED = "paused"  # the owner took the chat over: kept in history, not answered
    COMMAND = "command"  # an owner command typed in the chat ("#bot off")
    AUTO_REPLIED = "auto_replied"  # a configured fixed reply, no model call
    INVALID = "invalid"  # a sender id no WhatsApp number has: dropped, never journaled


class JournalUnavailable(RuntimeError):
    """The journal write failed (database locked, failing over): nothing was recorded."""


@dataclass(slots=True)
class Proactive:
    """A turn the agent starts itself (a follow-up): `instruction` says why."""

    instruction: str
    kind: str
    done: asyncio.Future[bool]


# What the agent reads for messages it cannot see (later features transcribe/describe them).
KIND_NOTES = {
    MessageKind.VOICE: "[the customer sent a voice note, which you cannot listen to]",
    MessageKind.AUDIO: "[the customer sent an audio file, which you cannot listen to]",
    MessageKind.IMAGE: "[the customer sent an image, which you cannot see]",
    MessageKind.VIDEO: "[the customer sent a video, which you cannot watch]",
    MessageKind.DOCUMENT: "[the customer sent a document, which you cannot open]",
    MessageKind.STICKER: "[the customer sent a sticker]",
    MessageKind.LOCATION: "[the customer shared a location]",
    MessageKind.CONTACT: "[the customer shared a contact card]",
    MessageKind.POLL: "[the customer sent a poll]",
}
UNANSWERED_KINDS = {MessageKind.REACTION, MessageKind.OTHER}


def describe_kind(msg: InboundMessage, notes: dict[MessageKind, str] = KIND_NOTES) -> str:
    """What arrived, in words the agent can read, with the caption or details appended."""
    note = notes.get(msg.kind, f"[the customer sent a {msg.kind.value} message]")
    return f"{note} {msg.text}".strip() if msg.text else note


Describer = Callable[[InboundMessage], Awaitable[str]]
# A filter sees every new inbound message (after journal and dedupe, before queueing) and
# returns None to let it through, or what happened to it: the journal records that outcome.
Filter = Callable[[InboundMessage], Awaitable["Fed | None"]]
