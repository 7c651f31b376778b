"""The event hub: parts of the daemon `emit` what happened; listeners fan it out.

Two kinds of subscriber:
- listeners (`emit`): synchronous, must not block (the outbox spawns its own write): an
  event is emitted from the reply path, which never waits for a webhook. Webhooks, metrics.
- handlers (`tell`): what the number's own parts do after something happened to one
  customer — a turn done (follow-up rules, the offline backlog), a turn failed or a message
  capped (answer it later, alert the owner), a turn committed (memory work). Awaited in
  the order they were added; one that fails is logged and never stops the others.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from loguru import logger

from bot.models import CustomerKey

Listener = Callable[[str, dict[str, Any]], None]
Handler = Callable[[CustomerKey], Awaitable[None] | None]

TURN_DONE = "turn.done"  # an inbound turn ended, answered or not
TURN_FAILED = "turn.failed"  # the customer got the failure reply or none
TURN_COMMITTED = "turn.committed"  # the agent stored a turn that said something
CAPPED = "message.capped"  # a message waits for the customer's daily cap


class Events:
    def __init__(self, listeners: Iterable[Listener] = ()) -> None:
        self.listeners: list[Listener] = list(listeners)
        self._handlers: dict[str, list[Handler]] = {}

    def emit(self, name: str, data: dict[str, Any]) -> None:
        for listener in self.listeners:
            try:
                listener(name, data)
            except Exception:  # a broken listener never breaks the turn that emitted
                logger.opt(exception=True).warning("event listener failed on {}", name)

    def on(self, name: str, handler: Handler) -> None:
        self._handlers.setdefault(name, []).append(handler)

    async def tell(self, name: str, key: CustomerKey) -> None:
        for handler in self._handlers.get(name, ()):
            try:
                result = handler(key)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.opt(exception=True).warning("{} handler failed", name)
