"""Delivery like a person: read receipt, "typing…", a pause that fits the text, bubbles."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from loguru import logger

from bot.clock import Clock
from bot.gateway.base import DeliveryUnknown, Gateway, GatewayError, NotDelivered
from bot.models import MemoryMessage, Role
from bot.settings import PresenterSettings
from bot.stores.deliveries import Bubble, DeliveryLog

SentListener = Callable[[str, str, str], None]  # (chat, text, kind)



class HasLines(Protocol):
    lines: list[MemoryMessage]


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
        self.log: DeliveryLog | None = None  # per-bubble delivery (set by the App)
        self._planned: dict[str, str] = {}  # reply id → the resumed plan's text

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
                      reply_id: str | None = None, phone: str = "") -> int:
        """Send `text` as bubbles; returns how many were sent. A failed send raises
        GatewayError (the caller records the turn as failed).

        With a `reply_id` (and a delivery log) each bubble's fate is recorded before the
        next send, and a reply already planned under that id resumes at its first bubble
        not sent: its stored bubbles, not `text`, are what the customer already started
        reading (a restart after a crash between bubbles)."""
        if self.log is None or reply_id is None:
            bubbles = split_bubbles(text, self.s.bubble_chars, self.s.max_bubbles)
            await self._send_all(chat, bubbles, kind)
            return len(bubbles)
        bubbles = split_bubbles(text, self.s.bubble_chars, self.s.max_bubbles)
        plan = await self.log.plan(reply_id, chat, bubbles, self.clock.now(), phone)
        if [b.text for b in plan] != bubbles:
            self._planned[reply_id] = "\n\n".join(b.text for b in plan)
        return await self.resume(plan, kind)

    async def settle_lines(self, reply_id: str, reply: HasLines) -> None:
        """After a resumed reply, the history keeps what the customer got: the stored
        plan's text replaces a re-asked model's different answer."""
        planned = self._planned.pop(reply_id, None)
        if planned is None:
            return
        reply.lines = [replace(m, text=planned) if m.role is Role.AGENT and m.text != planned
                       else m for m in reply.lines]

    async def resume(self, plan: list[Bubble], kind: str = "reply") -> int:
        """Send the bubbles of a planned reply that have not gone out; returns how many of
        the reply's bubbles are sent in all. A bubble whose fate is unknown (a send timed
        out) stops the reply: it is never resent, and the bubbles after it are held rather
        than sent after a gap the customer may not see (DeliveryUnknown is raised)."""
        assert self.log is not None
        log = self.log
        sent = sum(b.state == "sent" for b in plan)
        todo = [b for b in plan if b.state in ("pending", "undelivered")]
        blocked = [b for b in plan if b.state in ("unknown", "held")]
        if blocked:
            if todo:
                await log.mark_rest(plan[0].reply_id, todo[0].seq, "held", self.clock.now())
            raise DeliveryUnknown(f"bubble {blocked[0].seq + 1} of reply {plan[0].reply_id} "
                                  "may have been delivered: the rest is held")
        try:
            for i, b in enumerate(todo):
                if i and self.s.enabled:
                    await self.clock.sleep(self.s.between_bubbles_seconds)
                await self._typing(b.chat, True)
                await self.clock.sleep(self.typing_seconds(b.text))
                try:
                    wa_id = await self.gateway.send_text(b.chat, b.text)
                except NotDelivered:
                    await log.mark_rest(b.reply_id, b.seq, "undelivered", self.clock.now())
                    raise
                except DeliveryUnknown:
                    await log.mark(b.reply_id, b.seq, "unknown", self.clock.now())
                    await log.mark_rest(b.reply_id, b.seq + 1, "held", self.clock.now())
                    raise
                except GatewayError:
                    await log.mark_rest(b.reply_id, b.seq, "failed", self.clock.now())
                    raise
                # Recorded before the next send: a crash from here on never repeats it.
                await log.mark(b.reply_id, b.seq, "sent", self.clock.now(), wa_id)
                sent += 1
                for listener in self.listeners:
                    listener(b.chat, b.text, kind)
        finally:
            if todo:
                await self._typing(todo[0].chat, False)
        return sent

    async def _send_all(self, chat: str, bubbles: list[str], kind: str) -> None:
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
