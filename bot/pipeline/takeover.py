"""Human takeover: the owner writing in a customer's chat from the phone pauses its agent.

The pause is one column, `customers.paused_until`, read from the customer's cached agent
(or the database when none is cached). `wabot pause` from another process leaves a change
stamp the daemon checks first, so it takes effect before the agent's next reply.

- An owner message (from-me, not sent by wabot) pauses the chat for `takeover.pause_hours`
  from when it was written, and falls through to the inbox, which records it in the
  customer's history as the owner's line: the agent later knows what the human promised.
- `#bot off` pauses until switched back on (`FOREVER`), `#bot on` resumes, `#bot status`
  reports. The whole message must be the command (any case). WhatsApp has no private notes:
  the customer receives what the owner typed before wabot sees it, so a command is revoked
  ("This message was deleted") when the transport can, and the answer goes to the owner's
  own "Message yourself" chat, never to the customer.
- While paused, customer messages are journaled `paused` and recorded in history, never
  answered, not even when the pause ends: the agent answers the next message, with the
  whole exchange in its context.
- A reply the model produced while the owner stepped in is held back (`hold`), with a note
  in history saying it was not sent.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Protocol, runtime_checkable

from loguru import logger

from bot.business import local_time
from bot.clock import Clock
from bot.gateway.base import Gateway, GatewayError
from bot.models import CustomerKey, InboundMessage, MemoryMessage, MessageKind, Role
from bot.phones import mask
from bot.pipeline.inbox import UNANSWERED_KINDS, Fed
from bot.pipeline.media import note_for, remember_inbound
from bot.settings import TakeoverSettings
from bot.stores.customers import Contact, Customer, CustomerStore
from bot.stores.memory_base import MemoryStore
from bot.text import visible

FOREVER = datetime(9999, 1, 1, tzinfo=UTC)  # "#bot off": until switched back on
COMMAND = re.compile(r"^\s*#bot\s+(off|on|status)\s*$", re.IGNORECASE)

NOTE_OFF = ("The business owner switched you off in this chat and is answering personally "
            "until switching you back on.")
NOTE_ON = "The business owner switched you back on in this chat."
NOTE_HELD = ("Your reply just above was NOT sent: the business owner took over the chat "
             "while you were writing it.")


@runtime_checkable
class Revoker(Protocol):
    """A transport that can delete one of our own messages for everyone."""

    async def revoke(self, chat: str, msg_id: str) -> None: ...


def is_paused(customer: Customer | None, now: datetime) -> bool:
    return bool(customer and customer.paused_until and customer.paused_until > now)


def pause_text(until: datetime | None, now: datetime, zone: tzinfo = UTC) -> str:
    """How a chat's pause reads for the owner (in the business's timezone)."""
    if until is None or until <= now:
        return "on: the agent answers"
    if until >= FOREVER:
        return "off: the agent is silent until `#bot on` or `wabot resume`"
    return f"paused until {local_time(until, zone)}"


async def pause(customers: CustomerStore, key: CustomerKey, until: datetime,
                now: datetime) -> None:
    """Pause a chat until `until`. A customer who never wrote is created, so the pause
    applies to their first message too."""
    if await customers.get(key) is None:
        await customers.touch(key, Contact(), now)
    await customers.set_paused_until(key, until)


async def resume(customers: CustomerStore, key: CustomerKey) -> bool | None:
    """Clear a chat's pause; False when the customer is unknown, None when it was not
    paused (nothing to do)."""
    customer = await customers.get(key)
    if customer is None:
        return False
    if customer.paused_until is None:
        return None
    return await customers.set_paused_until(key, None)


class Takeover:
    """The inbox filter for owner messages and paused chats, and the pre-delivery hold."""

    def __init__(self, customers: CustomerStore, memory: MemoryStore, gateway: Gateway,
                 clock: Clock, settings: TakeoverSettings, zone: tzinfo = UTC) -> None:
        self.customers = customers
        self.memory = memory
        self.gateway = gateway
        self.clock = clock
        self.s = settings
        self.zone = zone  # the business's: times in the owner's reports and the logs

    async def __call__(self, msg: InboundMessage) -> Fed | None:
        if msg.from_owner:
            return await self._owner(msg)
        if msg.kind in UNANSWERED_KINDS or (msg.kind is MessageKind.TEXT and not visible(msg.text)):
            return None  # the inbox ignores it either way
        customer = await self.customers.get(msg.key)
        if not is_paused(customer, self.clock.now()):
            return None
        # Kept for the agent's context; no downloads while the owner is handling the chat.
        text = msg.text if msg.kind is MessageKind.TEXT else note_for(msg)
        await remember_inbound(self.customers, self.memory, msg, text)
        return Fed.PAUSED

    async def hold(self, key: CustomerKey) -> bool:
        """True when the chat was paused while its turn ran: the reply must not go out."""
        # The filter read the row fresh when the turn began; pauses set in this process
        # refresh it, so a row a couple of seconds old is enough here.
        if not is_paused(await self.customers.get(key, max_age=2.0), self.clock.now()):
            return False
        logger.bind(customer=mask(key.phone)).info("reply held back: the owner took over")
        return True

    async def held(self, key: CustomerKey) -> None:
        """After a held-back reply was stored: say so in history, right below it."""
        await self._note(key, NOTE_HELD)

    # --- owner messages ------------------------------------------------------------------

    async def _owner(self, msg: InboundMessage) -> Fed | None:
        if msg.kind is MessageKind.REACTION:
            return Fed.IGNORED  # a 👍 from the owner is not taking over the conversation
        if (self.s.commands and msg.kind is MessageKind.TEXT
                and (found := COMMAND.match(msg.text))):
            await self._command(msg, found.group(1).lower())
            return Fed.COMMAND
        now = self.clock.now()
        until = min(msg.timestamp, now) + timedelta(hours=self.s.pause_hours)
        if until > now:  # an owner message recovered from long ago pauses nothing
            customer = await self.customers.get(msg.key)
            current = customer.paused_until if customer else None
            if current is None or current < until:
                await pause(self.customers, msg.key, until, now)
                logger.bind(customer=mask(msg.phone)).info(
                    "owner wrote in the chat: agent paused until {}", local_time(until, self.zone))
        return None  # the inbox records the owner's line in the customer's history

    async def _command(self, msg: InboundMessage, command: str) -> None:
        key, now = msg.key, self.clock.now()
        log = logger.bind(customer=mask(msg.phone), msg_id=msg.msg_id)
        if command == "off":
            await pause(self.customers, key, FOREVER, now)
            await self._note(key, NOTE_OFF)
        elif command == "on":
            await resume(self.customers, key)
            await self._note(key, NOTE_ON)
        customer = await self.customers.get(key)
        state = pause_text(customer.paused_until if customer else None, now, self.zone)
        log.info("owner command #bot {}: {}", command, state)
        await self._revoke(msg)
        await self.report_to_owner(f"wabot · {msg.phone}: {state}")

    async def _revoke(self, msg: InboundMessage) -> None:
        if not self.s.revoke_commands:
            return
        if not isinstance(self.gateway, Revoker):
            logger.debug("this transport cannot revoke: the command stays visible in the chat")
            return
        try:
            await self.gateway.revoke(msg.chat or self.gateway.chat_for(msg.phone), msg.msg_id)
        except GatewayError as exc:
            logger.warning("could not delete the owner's command from the chat: {}", exc)

    async def report_to_owner(self, text: str) -> None:
        """To the owner's own "Message yourself" chat, when we know our number."""
        own = self.gateway.connected_as
        if not self.s.report_to_self or not own:
            return
        try:
            await self.gateway.send_text(self.gateway.chat_for(own), text)
        except GatewayError as exc:
            logger.warning("could not report to the owner's own chat: {}", exc)

    # --- history -------------------------------------------------------------------------

    async def _note(self, key: CustomerKey, text: str) -> None:
        await self.memory.append(key, [MemoryMessage(Role.NOTE, text, self.clock.now(),
                                                     kind="note")])
