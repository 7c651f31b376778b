"""Our own presence: "available" while replying, "unavailable" otherwise.

whatsmeow presence.go SendPresence: until the client says "available", delivery receipts go
out inactive (`sendActiveReceipts` stays 0) and other users may not see "typing…"; a linked
device left available keeps the owner's phone from getting notifications. So: available →
composing → send → paused → unavailable, around each reply.

Right after pairing the push name is not known yet and SendPresence fails with ErrNoPushName
("can't send presence without PushName set", errors.go) until the app state sync brings it:
that is expected, logged once, and never fails a reply.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from loguru import logger
from neonize.utils.enum import Presence as GoPresence

from bot.gateway.base import GatewayError

T = TypeVar("T")


class PresenceHost(Protocol):
    async def go_call(self, what: str, call: Callable[[Any], Awaitable[T]],
                  limit_s: float | None = None) -> T: ...


class Presence:
    def __init__(self) -> None:
        self.available_now = False
        self._warned_no_push_name = False

    async def available(self, host: PresenceHost) -> None:
        if not self.available_now:
            self.available_now = await self._send(host, available=True)

    async def unavailable(self, host: PresenceHost) -> None:
        if self.available_now:
            await self._send(host, available=False)
            self.available_now = False

    async def _send(self, host: PresenceHost, *, available: bool) -> bool:
        state = GoPresence.AVAILABLE if available else GoPresence.UNAVAILABLE
        try:
            await host.go_call(f"set presence {state.name.lower()}",
                           lambda c: c.send_presence(state))
        except GatewayError as exc:
            if "pushname" in str(exc).lower().replace(" ", ""):
                if not self._warned_no_push_name:
                    self._warned_no_push_name = True
                    logger.info("presence not set yet: WhatsApp has not sent our push name "
                                "(normal right after linking); replies go out regardless")
            else:
                logger.debug("presence update failed: {}", exc)
            return False
        return True
