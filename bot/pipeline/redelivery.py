"""Replies that never left (the transport was disconnected): sent when it is back, or the
owner told when they are too old to send.

A turn whose reply could not be delivered stores the customer's lines but not the answer
(memory must not claim it was said); its bubbles stay `undelivered` in the delivery log.
Each pass here expires the ones older than `delivery.retry_minutes` (a note in the
history, an owner alert) and resends the rest oldest first, only the bubbles that provably
never left; the answer joins the history once delivered.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from loguru import logger

from bot.alerts import AlertOwner
from bot.clock import Clock
from bot.gateway.base import GatewayError, NotDelivered
from bot.models import CustomerKey, MemoryMessage, Role
from bot.phones import mask
from bot.pipeline.presenter import Presenter
from bot.settings import DeliverySettings
from bot.stores.deliveries import Bubble, DeliveryLog
from bot.stores.memory_base import MemoryStore


def said(plan: list[Bubble]) -> str:
    return "\n\n".join(b.text for b in plan if b.state == "sent")


class Redelivery:
    def __init__(self, tenant: str, log: DeliveryLog, presenter: Presenter,
                 memory: MemoryStore, clock: Clock, settings: DeliverySettings,
                 alert: AlertOwner | None = None) -> None:
        self.tenant = tenant
        self.log = log
        self.presenter = presenter
        self.memory = memory
        self.clock = clock
        self.s = settings
        self.alert = alert
        self.delivered = 0
        self.expired = 0

    async def run_once(self, send: bool = True) -> int:
        """One pass: expire the old, resend the young (when `send`: the transport is
        connected); returns replies delivered."""
        now = self.clock.now()
        oldest = now - timedelta(minutes=self.s.retry_minutes)
        for reply_id in await self.log.undelivered(before=oldest):
            await self._expire(reply_id)
        done = 0
        if not send:
            return 0
        for reply_id in await self.log.undelivered(since=oldest):
            plan = await self.log.bubbles(reply_id)
            try:
                await self.presenter.resume(plan, kind="redelivery")
            except NotDelivered:
                break  # still disconnected: the next pass tries again, oldest first
            except GatewayError as exc:
                logger.bind(customer=mask(plan[0].phone)).warning(
                    "an undelivered reply was refused again: {}", exc)
                continue
            await self._remember(plan, Role.AGENT, "\n\n".join(b.text for b in plan))
            done += 1
        self.delivered += done
        return done

    async def _expire(self, reply_id: str) -> None:
        plan = await self.log.bubbles(reply_id)
        await self.log.mark_rest(reply_id, 0, "expired", self.clock.now())
        self.expired += 1
        if not plan:
            return
        phone = plan[0].phone
        went_out = said(plan)
        if went_out:
            await self._remember(plan, Role.AGENT, went_out)
        missing = "\n\n".join(b.text for b in plan if b.state != "sent")
        await self._remember(plan, Role.NOTE, "[this reply of yours could not be delivered "
                             f"(WhatsApp was disconnected) and was never sent: {missing}]")
        if self.alert is not None:
            await self.alert(f"reply_undelivered:{phone}",
                             f"A reply to {phone} could not be delivered within "
                             f"{self.s.retry_minutes:g} minutes and was dropped: {missing}")

    async def _remember(self, plan: list[Bubble], role: Role, text: str) -> None:
        phone = plan[0].phone
        if not phone:
            return
        await self.memory.append(CustomerKey(self.tenant, phone),
                                 [MemoryMessage(role, text, self.clock.now())])

    async def run(self, connected: asyncio.Event | None = None) -> None:
        """Forever: a pass every `retry_every_seconds`; replies are resent only while the
        transport is connected, and expire (the owner is told) either way."""
        while True:
            try:
                await self.run_once(send=connected is None or connected.is_set())
            except Exception:
                logger.exception("retrying undelivered replies failed")
            await self.clock.sleep(self.s.retry_every_seconds)
