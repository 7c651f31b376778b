"""Opt-out: a customer who writes STOP / BAJA is never messaged proactively again.

An inbox filter takes messages that are exactly a configured keyword (ignoring case, accents
and punctuation): the customer is marked opted out, their pending follow-ups are cancelled,
and they get one fixed confirmation instead of an agent turn. START / ALTA opts them back in.
The agent can do the same through the `set_opt_out` tool when a customer says it in other
words ("please stop writing to me").

Opting out concerns messages we start. A customer who writes again is answered as usual:
they wrote first.
"""

from __future__ import annotations

import asyncio
import json
import re
import unicodedata
from collections.abc import Awaitable, Callable
from typing import Any

from loguru import logger

from bot.agents.tools import Tool, TurnContext
from bot.clock import Clock
from bot.gateway.base import GatewayError
from bot.models import CustomerKey, InboundMessage, MemoryMessage, Role
from bot.phones import mask
from bot.pipeline.chats import Chats
from bot.pipeline.inbox import Fed
from bot.pipeline.presenter import Presenter
from bot.settings import OptOutSettings
from bot.stores.customers import Contact, CustomerStore
from bot.stores.memory_base import MemoryStore

Canceller = Callable[[CustomerKey], Awaitable[int]]


def plain(text: str) -> str:
    """Lower case, no accents, no punctuation, single spaces: '¡BAJA!' → 'baja'.

    Format characters (zero-width space, joiners, soft hyphen) are dropped first: "S\u200bTOP"
    shows as STOP, and a keyboard or a copy-paste may have put them there.
    """
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(re.sub(r"[^\w\s]", " ", bare).split())


class OptOut:
    def __init__(self, settings: OptOutSettings, customers: CustomerStore, memory: MemoryStore,
                 presenter: Presenter, chats: Chats, clock: Clock,
                 cancel_followups: Canceller | None = None) -> None:
        self.s = settings
        self.customers = customers
        self.memory = memory
        self.presenter = presenter
        self.chats = chats
        self.clock = clock
        self.cancel_followups = cancel_followups
        self.stop_words = {plain(w) for w in settings.stop_words}
        self.start_words = {plain(w) for w in settings.start_words}

    async def __call__(self, msg: InboundMessage) -> Fed | None:
        """The inbox filter: takes STOP and START messages, lets everything else through."""
        if msg.from_owner or msg.chat.endswith("@g.us"):
            return None
        words = plain(msg.text)
        if words in self.stop_words:
            opted_out, reply = True, self.s.stop_reply
        elif words in self.start_words:
            customer = await self.customers.get(msg.key)
            if customer is None or not customer.opted_out:
                return None  # not opted out: "start" is just a message for the agent
            opted_out, reply = False, self.s.start_reply
        else:
            return None
        await self.customers.touch(msg.key, Contact(msg.push_name, msg.chat, msg.lid),
                                   self.clock.now(), inbound=1)
        await self.set(msg.key, opted_out)
        self._confirm(msg, reply)
        return Fed.FILTERED

    async def set(self, key: CustomerKey, opted_out: bool) -> None:
        await self.customers.set_opted_out(key, opted_out)
        cancelled = 0
        if opted_out and self.cancel_followups is not None:
            cancelled = await self.cancel_followups(key)
        logger.bind(customer=mask(key.phone)).info(
            "customer opted {} proactive messages{}", "out of" if opted_out else "back in to",
            f"; {cancelled} pending follow-up(s) cancelled" if cancelled else "")

    def _confirm(self, msg: InboundMessage, reply: str) -> None:
        """Send the confirmation like any reply, as one of the inbox's tasks (the stop
        drain and the virtual clock wait for it; the filter itself must not sleep)."""
        task = asyncio.create_task(self._send(msg, reply), name="optout-confirmation")
        self.chats.tasks.add(task)
        task.add_done_callback(self.chats.tasks.discard)

    async def _send(self, msg: InboundMessage, reply: str) -> None:
        chat = msg.chat or self.presenter.gateway.chat_for(msg.phone)
        now = self.clock.now()
        await self.memory.append(msg.key, [
            MemoryMessage(Role.CUSTOMER, msg.text, msg.timestamp, msg_id=msg.msg_id),
            MemoryMessage(Role.AGENT, reply, now, kind="optout")])
        try:
            await self.presenter.mark_read(chat, [msg.msg_id])
            sent = await self.presenter.deliver(chat, reply, kind="optout")
            await self.customers.add_usage(msg.key, msgs_out=sent)
        except GatewayError as exc:
            logger.bind(customer=mask(msg.phone)).error(
                "opt-out confirmation could not be delivered: {}", exc)

    # --- the agent's tool --------------------------------------------------------------

    @property
    def tool(self) -> Tool:
        return Tool("set_opt_out", SET_OPT_OUT_DESCRIPTION, SET_OPT_OUT_PARAMETERS,
                    self._tool_set)

    async def _tool_set(self, ctx: TurnContext, args: dict[str, Any]) -> str:
        value = args.get("opted_out")
        if not isinstance(value, bool):
            raise ValueError("opted_out must be true or false")
        await self.set(ctx.key, value)
        note = ("confirm in one short sentence that we will not write first again"
                if value else "confirm briefly that they will hear from us again")
        return json.dumps({"ok": True, "opted_out": value, "next": note})


SET_OPT_OUT_DESCRIPTION = (
    "The customer asked not to be contacted any more (in any words: 'stop writing to me', "
    "'no me manden más mensajes'): opted_out=true, and we never write first again. "
    "opted_out=false when they ask to hear from us again. Not for a simple 'no thanks'.")
SET_OPT_OUT_PARAMETERS = {"type": "object", "properties": {
    "opted_out": {"type": "boolean"}}, "required": ["opted_out"]}
