"""Delivery like a person: read receipt, "typing…", a pause that fits the text, bubbles."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from loguru import logger

from bot.clock import Clock
from bot.events.hub import Events
from bot.gateway.base import DeliveryUnknown, Gateway, GatewayError, NotDelivered, NotOwner
from bot.settings import PresenterSettings
from bot.stores.deliveries import FAILED, SENDING, UNDELIVERED, UNKNOWN, DeliveryStore

_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")
WHATSAPP_MAX_CHARS = 4096  # WhatsApp takes more, but nobody reads a longer bubble


def split_bubbles(text: str, bubble_chars: int = 320, max_bubbles: int = 4) -> list[str]:
    """Split a reply into natural bubbles: paragraphs first, long ones at sentence ends.

    Never more than `max_bubbles`: the rest joins the last bubble, so nothing is dropped.
    """
    pieces: list[str] = []
    for para in re.split(r"\n\s*\n", text.strip()):
        para = para.strip()
        if not para:
            continue
        if len(para) <= bubble_chars:
            pieces.append(para)
            continue
        current = ""
        for sentence in _SENTENCE_END.split(para):
            if current and len(current) + 1 + len(sentence) > bubble_chars:
                pieces.append(current)
                current = sentence
            else:
                current = f"{current} {sentence}".strip()
        if current:
            pieces.append(current)
    if len(pieces) > max_bubbles:
        pieces = [*pieces[: max_bubbles - 1], "\n\n".join(pieces[max_bubbles - 1:])]
    return [chunk for p in pieces for chunk in _hard_wrap(p)]


def _hard_wrap(text: str) -> list[str]:
    return [text[i:i + WHATSAPP_MAX_CHARS] for i in range(0, len(text), WHATSAPP_MAX_CHARS)]


@dataclass(slots=True)
class Tracked:
    """A reply whose delivery is recorded bubble by bubble (`bot/stores/deliveries.py`)."""

    phone: str
    journal_ids: list[str] = field(default_factory=list)
    row: int | None = None  # the delivery row, once one was needed
    status: str = ""  # after a failure: UNDELIVERED, UNKNOWN or FAILED


class Presenter:
    def __init__(self, gateway: Gateway, clock: Clock, settings: PresenterSettings,
                 rng: random.Random | None = None, ledger: DeliveryStore | None = None,
                 events: Events | None = None) -> None:
        self.gateway = gateway
        self.clock = clock
        self.s = settings
        self.rng = rng or random.Random()
        self.ledger = ledger
        self.events = events
        self._kept: set[str] = set()  # chats still "typing…" after `deliver(keep_typing=True)`

    def sent(self, chat: str, text: str, kind: str) -> None:
        """`message.sent` (and `followup.sent`) on the number's event hub."""
        if self.events is None:
            return
        data = {"chat": chat, "kind": kind, "text": text}
        self.events.emit("message.sent", data)
        if kind == "followup":
            self.events.emit("followup.sent", data)

    def typing_seconds(self, text: str) -> float:
        if not self.s.enabled:
            return 0.0
        base = len(text) / self.s.chars_per_second
        base *= 1 + self.rng.uniform(-self.s.jitter, self.s.jitter)
        return min(self.s.max_typing_seconds, max(self.s.min_typing_seconds, base))

    async def mark_read(self, chat: str, msg_ids: list[str], sender: str = "") -> None:
        """Blue ticks after a short human pause. Cosmetic: a failure is logged, not raised."""
        if self.s.enabled and self.s.read_delay_seconds:
            await self.clock.sleep(self.s.read_delay_seconds)
        try:
            await self.gateway.mark_read(chat, msg_ids, sender)
        except GatewayError as exc:
            logger.warning("read receipt failed: {}", exc)

    async def _typing(self, chat: str, on: bool) -> None:
        if not self.s.enabled:
            return
        try:
            await self.gateway.set_typing(chat, on)
        except GatewayError as exc:
            logger.debug("presence update failed: {}", exc)

    async def deliver(self, chat: str, text: str, kind: str = "reply",
                      track: Tracked | None = None, *, keep_typing: bool = False) -> int:
        """Send `text` as bubbles; returns how many were sent. A failed send raises
        GatewayError (the caller records the turn as failed); with `track`, what went out
        is recorded before each next bubble, and a failure says which bubble it hit.

        `keep_typing`: after the last bubble went out, "typing…" is left for `done_typing`,
        so the caller's write comes first. Between a reply leaving and its turn's write a
        crash sends the reply again (the next owner cannot tell it went): on WhatsApp Web
        ending "typing…" is two more calls through the Go layer in that gap. The bubble
        itself already ends the indicator on the customer's phone."""
        bubbles = split_bubbles(text, self.s.bubble_chars, self.s.max_bubbles)
        return await self.send_bubbles(chat, bubbles, kind, track, keep_typing=keep_typing)

    async def done_typing(self, chat: str) -> None:
        """End the "typing…" a `deliver(keep_typing=True)` left on; nothing otherwise."""
        if chat in self._kept:
            self._kept.discard(chat)
            await self._typing(chat, False)

    async def send_bubbles(self, chat: str, bubbles: list[str], kind: str = "reply",
                           track: Tracked | None = None, start: int = 0, *,
                           keep_typing: bool = False) -> int:
        """Send `bubbles[start:]`; returns how many of them went out."""
        sent = start
        all_out = False
        try:
            for i in range(start, len(bubbles)):
                bubble = bubbles[i]
                if i > start and self.s.enabled:
                    await self.clock.sleep(self.s.between_bubbles_seconds)
                await self._typing(chat, True)
                await self.clock.sleep(self.typing_seconds(bubble))
                try:
                    await self.gateway.send_text(chat, bubble)
                except GatewayError as exc:
                    await self._failed(track, chat, kind, bubbles, sent, exc)
                    raise
                sent = i + 1
                self.sent(chat, bubble, kind)
                if sent < len(bubbles):  # before the next bubble: a crash resumes there
                    await self._record(track, chat, kind, bubbles, sent, SENDING)
            all_out = True
        finally:
            if all_out and keep_typing and self.s.enabled:
                self._kept.add(chat)
            else:
                await self._typing(chat, False)
        return sent - start

    async def _failed(self, track: Tracked | None, chat: str, kind: str, bubbles: list[str],
                      sent: int, exc: GatewayError) -> None:
        if track is None or isinstance(exc, NotOwner):  # the owner node answers instead
            return
        # Only a send that provably never left is sent again; a timeout may have reached
        # WhatsApp, and a refusal would be refused again.
        track.status = (UNDELIVERED if isinstance(exc, NotDelivered)
                        else UNKNOWN if isinstance(exc, DeliveryUnknown) else FAILED)
        await self._record(track, chat, kind, bubbles, sent, track.status, str(exc))

    async def _record(self, track: Tracked | None, chat: str, kind: str, bubbles: list[str],
                      sent: int, status: str, error: str = "") -> None:
        if track is None or self.ledger is None:
            return
        now = self.clock.now()
        if track.row is None:
            track.row = await self.ledger.open(track.phone, chat, kind, bubbles,
                                               track.journal_ids, sent, status, now, error)
        else:
            await self.ledger.progress(track.row, sent, status, now, error)
