"""Delivery like a person: read receipt, "typing…", a pause that fits the text, bubbles."""

from __future__ import annotations

import random
import re
from collections.abc import Callable

from loguru import logger

from bot.clock import Clock
from bot.gateway.base import Gateway, GatewayError
from bot.settings import PresenterSettings

SentListener = Callable[[str, str, str], None]  # (chat, text, kind)

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


class Presenter:
    def __init__(self, gateway: Gateway, clock: Clock, settings: PresenterSettings,
                 rng: random.Random | None = None) -> None:
        self.gateway = gateway
        self.clock = clock
        self.s = settings
        self.rng = rng or random.Random()
        self.listeners: list[SentListener] = []

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

    async def deliver(self, chat: str, text: str, kind: str = "reply") -> int:
        """Send `text` as bubbles; returns how many were sent. A failed send raises
        GatewayError (the caller records the turn as failed)."""
        bubbles = split_bubbles(text, self.s.bubble_chars, self.s.max_bubbles)
        try:
            for i, bubble in enumerate(bubbles):
                if i and self.s.enabled:
                    await self.clock.sleep(self.s.between_bubbles_seconds)
                await self._typing(chat, True)
                await self.clock.sleep(self.typing_seconds(bubble))
                await self.gateway.send_text(chat, bubble)
                for listener in self.listeners:
                    listener(chat, bubble, kind)
        finally:
            await self._typing(chat, False)
        return len(bubbles)
