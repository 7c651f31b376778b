"""Owner alerts: one line to the owner's own "Message yourself" chat, and to the log.

Deliberately small: the reliability paths (the journal unreachable, a customer at the daily
cap) need to tell the owner something at once. Anything richer (a console, other channels)
plugs in behind the same call, `await alerts(subject, text)`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from loguru import logger

from bot.clock import Clock
from bot.gateway.base import Gateway, GatewayError


class AlertOwner(Protocol):
    async def __call__(self, subject: str, text: str) -> bool: ...


class OwnerAlerts:
    """Sends an alert at most once per `quiet_minutes` per subject (a flood of failures is
    one message, not hundreds). Returns True when the owner's chat received it."""

    def __init__(self, gateway: Gateway, clock: Clock, *, quiet_minutes: float = 30) -> None:
        self.gateway = gateway
        self.clock = clock
        self.quiet = timedelta(minutes=quiet_minutes)
        self._last: dict[str, datetime] = {}

    async def __call__(self, subject: str, text: str) -> bool:
        now = self.clock.now()
        last = self._last.get(subject)
        if last is not None and now - last < self.quiet:
            return False
        self._last[subject] = now
        logger.warning("owner alert ({}): {}", subject, text)
        own = getattr(self.gateway, "connected_as", None)  # the WhatsApp gateway knows it
        if not isinstance(own, str) or not own:
            return False
        try:
            await self.gateway.send_text(self.gateway.chat_for(own), f"⚠️ wabot: {text}")
        except GatewayError as exc:
            logger.warning("could not alert the owner's own chat: {}", exc)
            return False
        return True
