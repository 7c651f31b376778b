"""Owner alerts: things the business owner must hear about without watching a log.

A turn failed, a customer hit the daily cap, a customer asked for a human (the agent's
`ask_for_human` tool), WhatsApp logged the device out, the daemon restarted after a crash.
Each alert goes to the owner's "Message yourself" chat (`alerts.to_self`), out as the
`owner.alert` webhook, and onto the console page.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Coroutine
from datetime import datetime, timedelta
from typing import Any

from loguru import logger

from bot.agents.tools import Tool, TurnContext
from bot.clock import Clock
from bot.events.hub import Events
from bot.gateway.base import Gateway, GatewayError
from bot.phones import mask
from bot.settings import AlertSettings

ASK_HUMAN = "ask_for_human"
QUIET = timedelta(minutes=30)  # between two alerts of one subject from the pipeline


class Alerts:
    def __init__(self, settings: AlertSettings, events: Events, gateway: Gateway,
                 clock: Clock) -> None:
        self.s = settings
        self.events = events
        self.gateway = gateway
        self.clock = clock
        self.recent: deque[dict[str, Any]] = deque(maxlen=settings.keep)
        self._tasks: set[asyncio.Task[None]] = set()
        self._last: dict[str, datetime] = {}

    async def __call__(self, subject: str, text: str) -> bool:
        """The `AlertOwner` call of the pipeline's reliability paths. `subject` is
        `kind` or `kind:+phone`; one alert per subject per `QUIET` (a flood of failures is
        one message, not hundreds). True when the owner's own chat received it."""
        now = self.clock.now()
        last = self._last.get(subject)
        if last is not None and now - last < QUIET:
            return False
        self._last[subject] = now
        kind, _, phone = subject.partition(":")
        return await self.alert(kind.replace("-", "_"), text, phone)

    async def alert(self, kind: str, text: str, phone: str = "") -> bool:
        """Tell the owner: page, webhook, and their own chat (True when the chat got it)."""
        item = {"at": self.clock.now().isoformat(), "kind": kind, "text": text, "phone": phone}
        self.recent.appendleft(item)
        logger.bind(customer=mask(phone) if phone else "").warning(
            "owner alert ({}): {}", kind, text.replace(phone, mask(phone)) if phone else text)
        self.events.emit("owner.alert", item)
        own = self.gateway.connected_as
        if not self.s.to_self or not own:
            return False
        try:
            await self.gateway.send_text(self.gateway.chat_for(own), f"⚠️ wabot: {text}")
        except GatewayError as exc:
            logger.warning("could not send the alert to the owner's own chat: {}", exc)
            return False
        return True

    def fire(self, kind: str, text: str, phone: str = "") -> None:
        """`alert` from synchronous code: the caller does not wait for the send."""
        self._spawn(self.alert(kind, text, phone))

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def tool(self) -> Tool:
        """The agent's way to hand a conversation to a person."""

        async def run(ctx: TurnContext, args: dict[str, Any]) -> str:
            reason = str(args.get("reason", "")).strip()[:300] or "no reason given"
            await self.alert("human_requested",
                             f"{ctx.key.phone} asks for a person: {reason}", ctx.key.phone)
            return ("The owner has been told and will answer personally. Tell the customer "
                    "someone from the team will get back to them soon.")

        return Tool(
            name=ASK_HUMAN,
            description=("Call when the customer asks to talk to a person, or when only the "
                         "business owner can help (complaints, refunds, anything you cannot "
                         "answer). The owner is alerted at once."),
            parameters={"type": "object", "properties": {
                "reason": {"type": "string", "description": "what the customer needs, briefly"}},
                "required": ["reason"]},
            run=run)
