"""The event hub: parts of the daemon `emit` what happened; listeners fan it out.

Listeners are synchronous and must not block (the outbox spawns its own write): an event
is emitted from the reply path, which never waits for a webhook.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from loguru import logger

Listener = Callable[[str, dict[str, Any]], None]


class Events:
    def __init__(self) -> None:
        self.listeners: list[Listener] = []

    def emit(self, name: str, data: dict[str, Any]) -> None:
        for listener in self.listeners:
            try:
                listener(name, data)
            except Exception:  # a broken listener never breaks the turn that emitted
                logger.opt(exception=True).warning("event listener failed on {}", name)
