"""One WhatsApp number: its parts (built by `bot.wiring.build_unit`) and their start and stop.

Inbound goes gateway → `intake` → `inbox` → `chats` → agent → `presenter` → gateway; the
follow-ups and the "answered later" paths feed the same chats. The stores, the model client
and the HTTP server are the process's (`bot.wiring.Shared`); the App starts and stops the
units between them.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from loguru import logger

from bot.agents.agent import AgentDeps
from bot.agents.lifecycle import run_churn_sweep
from bot.agents.memory_keeper import MemoryKeeper
from bot.agents.registry import AgentRegistry
from bot.business import Business
from bot.clock import Clock
from bot.events.alerts import Alerts
from bot.events.hub import Events
from bot.events.outbox import Outbox
from bot.followups import FollowUpScheduler
from bot.gateway.base import Binding, ExitReason, Gateway
from bot.gateway.pacer import Pacer
from bot.gateway.phone import PhoneWatch
from bot.gateway.restrictions import Restrictions
from bot.knowledge.library import Library, log_report, reindex_on
from bot.ops.status import STALE_BEATS, Live, Monitor, read_heartbeat
from bot.pipeline.chats import Chats
from bot.pipeline.inbox import Inbox
from bot.pipeline.intake import Intake
from bot.pipeline.later.backlog import Backlog
from bot.pipeline.later.capped_and_failed import Revisit
from bot.pipeline.later.undelivered import Redelivery
from bot.pipeline.presenter import Presenter
from bot.pipeline.takeover import Takeover
from bot.settings import Settings
from bot.stores.customers import CustomerStore
from bot.stores.db import Database
from bot.stores.deliveries import DeliveryStore
from bot.stores.identity import Identity
from bot.stores.memory_observed import ObservedMemory
from bot.stores.runs import RunStore
from bot.stores.usage_lines import BusinessUsage

Spawn = Callable[[Coroutine[Any, Any, None], str], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class NumberUnit:
    settings: Settings  # the process's, with this number's fixed texts in its language
    business: Business
    clock: Clock
    gateway: Gateway
    events: Events
    alerts: Alerts
    outbox: Outbox
    deps: AgentDeps
    registry: AgentRegistry
    keeper: MemoryKeeper
    presenter: Presenter
    chats: Chats
    inbox: Inbox
    intake: Intake
    backlog: Backlog
    restrictions: Restrictions
    pacer: Pacer
    phone: PhoneWatch | None
    followups: FollowUpScheduler | None
    takeover: Takeover
    revisit: Revisit
    redelivery: Redelivery
    identity: Identity
    deliveries: DeliveryStore
    usage_lines: BusinessUsage
    library: Library | None
    customers: CustomerStore
    memory: ObservedMemory
    runs: RunStore
    db: Database
    live: Callable[[], Live]
    monitor: Monitor | None  # the daemon's heartbeat; None for `chat` and `simulate`
    fence: Callable[[], None] | None = None  # the number's lease in the fleet (`bot.fleet`)
    reindex: asyncio.Event = field(default_factory=asyncio.Event)  # set by SIGHUP

    @property
    def tenant(self) -> str:
        return self.settings.tenant

    # --- start -----------------------------------------------------------------------

    async def prepare(self, spawn: Spawn) -> None:
        """Before the console serves: the kept alerts, the knowledge index, webhooks."""
        await self.alerts.start()
        if self.library is not None:
            # Before the gateway: the first answers already search an up-to-date index
            # (only changed sources are re-read, so a restart costs a digest per file).
            await self.library.start()
            log_report(await self.library.sync())
            spawn(reindex_on(self.library, self.reindex), "knowledge")
        self.gateway.finished.add_done_callback(self._on_finished)
        # Bound before anything can deliver: a standby's webhook journals for the owner.
        self.gateway.bind(Binding(
            on_message=self.intake, lid_directory=self.identity.phone_for_lid,
            on_backlog_complete=self.backlog.complete, on_status=self._status_changed,
            restrictions=self.restrictions, phone=self.phone, pacer=self.pacer,
            fence=self.fence))
        spawn(self.outbox.run(), "webhooks")
        spawn(self._prune_runs(), "run-log-retention")

    async def connect(self, spawn: Spawn) -> None:
        """The heartbeat, WhatsApp (or the Cloud API), then what the journal holds, then
        the loops. In a fleet, once this process holds the number (a standby publishes
        no heartbeat for it)."""
        if self.monitor is not None:
            await self.check_crash()  # before our own heartbeat replaces the last run's
            await self.monitor.start()
        await self.gateway.start()
        connected = self.gateway.connected
        if connected is not None:
            # WhatsApp connects in the background and refuses sends until it has: answer
            # what the journal holds once replies can go out.
            spawn(self._recover_when(connected, spawn), "recover")
        else:
            await self._catch_up(spawn)
        if self.followups is not None:
            await self.followups.start()
        await self.identity.start()  # after follow-ups: a merge moves their jobs
        spawn(self.registry.run_sweeper(self.settings.agents.sweep_seconds), "sweeper")
        if self.phone is not None:
            spawn(self.phone.run(self.alerts), "phone-watch")
        if self.monitor is not None:
            spawn(self.monitor.run(), "heartbeat")
        m = self.settings.memory
        if m.churn_after_days > 0:
            spawn(run_churn_sweep(self.customers, self.memory, self.clock, self.tenant,
                                  m.churn_after_days, m.churn_sweep_minutes * 60),
                  "churn-sweep")

    async def _recover_when(self, connected: asyncio.Event, spawn: Spawn) -> None:
        await connected.wait()
        await self._catch_up(spawn)

    async def _catch_up(self, spawn: Spawn) -> None:
        """Messages held at the last stop, then journaled ones never answered."""
        await self.intake.restore()
        await self.redelivery.settle_crashed()  # before the journal: not a second turn
        await self.inbox.recover()
        spawn(self.revisit.run(), "revisit")
        spawn(self.redelivery.run(), "redelivery")

    # --- stop ------------------------------------------------------------------------

    async def finish(self, grace: float) -> None:
        """Stop firing follow-ups and accepting turns; finish the turns in flight."""
        if self.followups is not None:
            self.followups.close()  # due follow-ups wait in the store for the next start
        self.inbox.close()
        await self.intake.stop(grace)
        if not await self.inbox.drain(grace):
            logger.warning("turns still running after {} s were cancelled; their messages "
                           "stay in the journal and are answered after restart", grace)
        if self.followups is not None:
            await self.followups.stop()
        await self.keeper.stop()
        if self.library is not None:
            await self.library.idle()  # never cancel a re-index inside its transaction

    async def close(self) -> None:
        """After the background tasks: alerts and webhooks out, then the transport."""
        await self.alerts.drain()
        await self.outbox.close()
        await self.gateway.stop()
        if self.monitor is not None:
            await self.monitor.stop()

    # --- what the unit watches ---------------------------------------------------------

    def _status_changed(self, status: str) -> None:
        """`connection.changed` for every new STATUS line of the transport."""
        self.events.emit("connection.changed", {"status": status})

    def _on_finished(self, done: asyncio.Future[ExitReason]) -> None:
        if done.cancelled() or done.exception() is not None:
            return
        reason = done.result()
        if reason.needs_operator:
            self.alerts.fire(f"whatsapp_{reason}", self.gateway.status or str(reason))

    async def check_crash(self) -> None:
        """Alert when the previous run of this number ended without a clean stop."""
        beat = await read_heartbeat(self.db, self.tenant)
        if beat is None or beat.stopped_at is not None or beat.pid == os.getpid():
            return
        stale = timedelta(seconds=STALE_BEATS * self.settings.heartbeat_seconds)
        if self.clock.now() - beat.beat_at >= stale:
            self.alerts.fire("restarted_after_crash",
                             f"wabot restarted after a crash: the previous run (pid {beat.pid} "
                             f"on {beat.host}) stopped without shutting down")

    async def prune_runs(self) -> int:
        """Drop runs older than `runs.retention_days`; returns how many."""
        days = self.settings.runs.retention_days
        gone = await self.runs.prune(self.tenant, self.clock.now() - timedelta(days=days))
        if gone:
            logger.info("run log: {} runs older than {} days removed", gone, days)
        return gone

    async def _prune_runs(self) -> None:
        while True:
            try:
                await self.prune_runs()
            except Exception as exc:
                logger.warning("run log pruning failed: {}", exc)
            await self.clock.sleep(3600)
