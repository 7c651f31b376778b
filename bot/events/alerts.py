"""Owner alerts: things the business owner must hear about without watching a log.

A turn failed, a customer hit the daily cap, a customer asked for a human (the agent's
`ask_for_human` tool), WhatsApp logged the device out, the daemon restarted after a crash.
Every alert, whatever the transport, is kept (`bot.stores.alerts`: the console's alerts
page with its unread count, after a restart too) and is the `owner.alert` webhook event.
On WhatsApp (`alerts.to_self`) it goes to `alerts.owner_number`, or else to the number's
"Message yourself" chat. The Cloud API has no such chat and writes first only with an
approved template: there it goes to `owner_number` as text while that phone wrote to the
business within 24 h, else as `alerts.template`; the log and the page say so when neither
can reach the owner (issue #24.6: every alert used to be dropped on the Cloud API).
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
from bot.gateway.base import Gateway, GatewayError, Template
from bot.phones import mask
from bot.settings import AlertSettings
from bot.stores.alerts import AlertStore

ASK_HUMAN = "ask_for_human"
QUIET = timedelta(minutes=30)  # between two alerts of one subject from the pipeline


class Alerts:
    def __init__(self, settings: AlertSettings, events: Events, gateway: Gateway,
                 clock: Clock, store: AlertStore | None = None,
                 template: Template | None = None) -> None:
        self.s = settings
        self.events = events
        self.gateway = gateway
        self.clock = clock
        self.store = store
        self.template = template  # the Cloud API's, outside the owner's 24-hour window
        self.recent: deque[dict[str, Any]] = deque(maxlen=settings.keep)  # this run's
        self.unread = 0  # kept alerts not read on the console
        self._tasks: set[asyncio.Task[Any]] = set()
        self._last: dict[str, datetime] = {}
        self._keeping = asyncio.Lock()  # kept in the order they happened
        self._keeps: set[asyncio.Task[int | None]] = set()

    async def start(self) -> None:
        """Read the unread count, prune old alerts, and say where alerts go."""
        if self.store is not None:
            try:
                await self.store.prune(self.clock.now())
                self.unread = await self.store.unread()
            except Exception as exc:  # the page shows none; alerts still go out
                logger.warning("owner alerts: the kept alerts could not be read: {}", exc)
        if self.s.to_self and not self.s.owner_number and not self.gateway.own_chat:
            logger.warning("owner alerts reach the console's alerts page and the owner.alert "
                           "webhook only: {}", self.where().removeprefix("Not on WhatsApp: "))
        elif self.s.owner_number and not self.gateway.own_chat and self.template is None:
            logger.info("owner alerts reach {} on WhatsApp only while that phone has written "
                        "to the business within 24 h (set alerts.template for the rest)",
                        mask(self.s.owner_number))

    def where(self) -> str:
        """Where alerts go besides the console page and the webhook, in the owner's words."""
        if not self.s.to_self:
            return "Not on WhatsApp: alerts.to_self is off."
        if self.s.owner_number:
            shown = mask(self.s.owner_number)
            if self.gateway.own_chat:
                return f"Also on WhatsApp, to {shown} (alerts.owner_number)."
            if self.template is not None:
                return (f"Also on WhatsApp, to {shown}: as text while that phone has written "
                        "to the business within 24 h, else as the template "
                        f"{self.template.name!r}.")
            return (f"Also on WhatsApp, to {shown}, but only while that phone has written to "
                    "the business within 24 h: set alerts.template (an approved template) "
                    "for the rest.")
        if self.gateway.own_chat:
            return "Also on WhatsApp, in your \"Message yourself\" chat."
        return ("Not on WhatsApp: the Cloud API cannot write to the business's own number. "
                "Set alerts.owner_number (your phone) and alerts.template (an approved "
                "template) to get them there.")

    async def __call__(self, subject: str, text: str) -> bool:
        """The `AlertOwner` call of the pipeline's reliability paths. `subject` is
        `kind` or `kind:+phone`; one alert per subject per `QUIET` (a flood of failures is
        one message, not hundreds). True when WhatsApp took it to the owner."""
        now = self.clock.now()
        last = self._last.get(subject)
        if last is not None and now - last < QUIET:
            return False
        self._last[subject] = now
        kind, _, phone = subject.partition(":")
        return await self.alert(kind.replace("-", "_"), text, phone)

    async def alert(self, kind: str, text: str, phone: str = "") -> bool:
        """Tell the owner: kept for the page, the webhook, and WhatsApp where it can reach
        them (True when it did)."""
        item: dict[str, Any] = {"at": self.clock.now().isoformat(), "kind": kind,
                                "text": text, "phone": phone}
        self.recent.appendleft(item)
        self.unread += 1
        shown = text.replace(phone, mask(phone)) if phone else text
        logger.bind(customer=mask(phone) if phone else "").warning(
            "owner alert ({}): {}", kind, shown)
        self.events.emit("owner.alert", dict(item))
        kept = self._keep(item)  # never waits: the database may be why we alert
        sent, outcome = await self._whatsapp(text)
        item["whatsapp"] = outcome
        if kept is not None and outcome:
            self._spawn(self._note(kept, outcome))
        return sent

    async def _whatsapp(self, text: str) -> tuple[bool, str]:
        """(sent, what happened) for the WhatsApp copy; "" when it was not wanted."""
        if not self.s.to_self:
            return False, ""
        to = self.s.owner_number or (self.gateway.connected_as if self.gateway.own_chat
                                     else None)
        if not to:
            if self.gateway.own_chat:
                return False, "not sent: WhatsApp is not linked yet"
            logger.warning("owner alert not sent on WhatsApp: set alerts.owner_number and "
                           "alerts.template (the Cloud API has no \"Message yourself\" "
                           "chat); it is on the console's alerts page")
            return False, "not sent: no alerts.owner_number"
        try:
            await self.gateway.send_notice(self.gateway.chat_for(to), f"⚠️ wabot: {text}",
                                           self.template)
        except Exception as exc:  # GatewayError, or the database (maybe why we alert)
            why = str(exc) if isinstance(exc, GatewayError) else type(exc).__name__
            logger.warning("owner alert not sent on WhatsApp to {} ({}); it is on the "
                           "console's alerts page", mask(to), why)
            return False, f"not sent: {why}"[:300]
        return True, f"sent to {mask(to)}"

    def _keep(self, item: dict[str, Any]) -> asyncio.Task[int | None] | None:
        if self.store is None:
            return None
        store = self.store

        async def keep() -> int | None:
            try:
                async with self._keeping:
                    item["id"] = await store.add(datetime.fromisoformat(item["at"]),
                                                 item["kind"], item["text"], item["phone"])
            except Exception as exc:
                logger.warning("owner alert not kept for the console ({}): it was logged "
                               "above", exc)
                return None
            return int(item["id"])

        task = asyncio.create_task(keep())
        for tasks in (self._tasks, self._keeps):
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        return task

    async def _written(self) -> None:
        """The alerts raised so far are in the store (not their WhatsApp sends, which may
        wait for a connection)."""
        if self._keeps:
            await asyncio.gather(*list(self._keeps), return_exceptions=True)

    async def _note(self, kept: asyncio.Task[int | None], outcome: str) -> None:
        alert_id = await kept
        if alert_id is not None and self.store is not None:
            try:
                await self.store.note_whatsapp(alert_id, outcome)
            except Exception as exc:
                logger.debug("owner alert {}: WhatsApp outcome not kept: {}", alert_id, exc)

    async def kept(self, limit: int = 200) -> list[dict[str, Any]]:
        """The kept alerts, newest first (this run's only when there is no store)."""
        if self.store is None:
            return [dict(a, read=a.get("read", False)) for a in list(self.recent)[:limit]]
        await self._written()
        return await self.store.recent(limit)

    async def mark_read(self, ids: list[int] | None = None) -> int:
        """Mark alerts read (None: all of them); returns how many were unread."""
        if self.store is None:
            changed, self.unread = self.unread, 0
            return changed
        await self._written()
        changed = await self.store.mark_read(self.clock.now(), ids)
        self.unread = await self.store.unread()
        return changed

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
