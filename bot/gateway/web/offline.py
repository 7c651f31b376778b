"""WhatsApp's offline sync: the messages it kept while we were offline, and their end.

whatsmeow connectionevents.go handleIB: `offline_preview` comes right after connecting when
the server kept events for us; everything until `offline` (OfflineSyncCompleted) is that
backlog, not live traffic. The messages in between are tagged `backlog`; the end is put in
the gateway's ordered queue as `DONE`, so it is told once every message before it in Go's
order has reached the inbox.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from loguru import logger

from bot.gateway.web.goclient import GoClient, guarded

DONE = object()  # OfflineSyncCompleted's place among the message events


class OfflineSync:
    def __init__(self, is_current: Callable[[GoClient | None], bool]) -> None:
        self._is_current = is_current
        self.syncing = False  # WhatsApp is delivering what it kept while we were offline
        self.on_complete: Callable[[GoClient], Awaitable[None]] | None = None
        self._ids: set[str] = set()  # delivered during the sync

    def note(self, msg_id: str) -> None:
        """A message event as Go hands it over (before any await: in Go's order)."""
        if self.syncing:
            self._ids.add(msg_id)

    def kept(self, msg_id: str) -> bool:
        """Whether the message came with the sync; asked once, when it is handled."""
        if msg_id not in self._ids:
            return False
        self._ids.discard(msg_id)
        return True

    @guarded("OfflineSyncPreviewEv")
    async def on_preview(self, client: GoClient, ev: Any) -> None:
        # Set before any await: message handlers that follow in Go's order must see it.
        if not self._is_current(client):
            return
        self.syncing = True
        logger.info("WhatsApp is delivering what arrived while offline: {} message(s)",
                    ev.Message)

    @guarded("OfflineSyncCompletedEv")
    async def on_completed(self, client: GoClient, ev: Any) -> None:
        if not self._is_current(client):
            return
        self.syncing = False
        logger.info("WhatsApp's offline backlog is complete ({} event(s))", ev.Count)
        if self.on_complete is not None:
            await self.on_complete(client)
