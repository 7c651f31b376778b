"""The App: the lifecycle of the process — what starts in which order, what stops in reverse,
and the background tasks it owns. The parts are built by `bot.wiring`.

Start: the shared stores → the number (heartbeat, knowledge, webhooks) → the console →
the number's transport → what the journal holds → follow-ups → the background loops.
Stop, in reverse: stop receiving and firing follow-ups → finish turns in flight (bounded
grace) → the follow-up scheduler → background tasks → the transport → the stores last.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from contextlib import suppress
from types import TracebackType
from typing import TYPE_CHECKING, Any

from loguru import logger

from bot.agents.registry import EventSink
from bot.business import Business
from bot.clock import Clock, SystemClock
from bot.fleet.claim import Claim
from bot.fleet.numbers import NumberStore
from bot.gateway.base import Gateway
from bot.llm import LLM
from bot.messages import language_code
from bot.settings import Settings
from bot.unit import NumberUnit
from bot.web.console import Console
from bot.web.directory import Consoles
from bot.wiring import Shared, build_claim, build_shared, build_unit

if TYPE_CHECKING:
    from fastapi import APIRouter

    from bot.gateway.cloud.server import WebhookServer
    from bot.web.server import WebServer


class App:
    def __init__(self, settings: Settings, gateway: Gateway, *, clock: Clock | None = None,
                 llm: LLM | None = None, business: Business | None = None,
                 on_agent_event: EventSink | None = None, heartbeat: bool = True,
                 serve_http: bool = False, extra_routers: Sequence[APIRouter] = (),
                 fleet: bool = False, shared: Shared | None = None,
                 webhook_server: bool = True) -> None:
        """`serve_http`: run the console (`wabot run` does; tests and `chat` do not).
        `extra_routers`: mounted on the console's server as they are, beside the routers the
        gateway offers (the Cloud API's webhook receiver); see `bot.web.server`.
        `heartbeat`: publish the daemon's heartbeat (`chat` and `simulate` do not).
        `fleet`: hold the number's lease (`wabot run`): WhatsApp is connected only once this
        process holds it; until then webhooks reaching it are journaled for the owner.
        `shared`: the process's stores and model client when it serves several numbers
        (started and stopped by its owner, not here); `settings` are then this number's.
        `webhook_server`: a Cloud API number's own webhook server when the console does
        not serve it (off when the process's console serves every number's webhook)."""
        self._owns_shared = shared is None
        self.shared: Shared = shared or build_shared(settings, clock or SystemClock(), llm)
        self.claim: Claim | None = build_claim(self.shared, settings.tenant) if fleet else None
        claim = self.claim
        self.unit: NumberUnit = build_unit(self.shared, gateway, settings=settings,
                                           business=business,
                                           on_agent_event=on_agent_event, heartbeat=heartbeat,
                                           claim=claim)
        u = self.unit
        self.console = Console(
            settings=u.settings, clock=u.clock, gateway=gateway, customers=u.customers,
            memory=u.memory, runs=u.runs, events=u.events, alerts=u.alerts, outbox=u.outbox,
            metrics=self.shared.metrics, followups=u.followups, live=u.live,
            zone=u.business.tz, language=language_code(u.business.language),
            changes=self.shared.changes)
        # Every number's console (this one's; the others' when this App is the home).
        self.consoles = Consoles(self.console, self.serving, node=self.shared.node)
        self.web = self._web_server(serve_http, extra_routers)
        # The Cloud API's webhook: served by the console, or by a server of its own when the
        # console is off; its stores record the per-message statuses.
        from bot.gateway.cloud.server import attach

        self.webhook: WebhookServer | None = attach(
            gateway, u.settings, u.customers, own_server=self.web is None and webhook_server)
        self.background: set[asyncio.Task[None]] = set()
        self._started = False
        # Set once the stores are up: other numbers on them may start (a standby's `start`
        # returns only when it holds its number).
        self.stores_up = asyncio.Event()

    def _web_server(self, serve_http: bool,
                    extra_routers: Sequence[APIRouter]) -> WebServer | None:
        s = self.unit.settings
        if not serve_http or not s.http.enabled:
            return None
        from bot.web.auth import Auth, ensure_token
        from bot.web.server import WebServer

        auth = Auth(ensure_token(s), s.http.session_hours * 3600, s.http.failed_auth_per_minute)
        return WebServer(self.console, auth, s.http, consoles=self.consoles,
                         extra_routers=[*extra_routers, *self.unit.gateway.routers])

    @property
    def settings(self) -> Settings:
        """The number's settings (fixed texts in its language)."""
        return self.unit.settings

    @property
    def reindex(self) -> asyncio.Event:
        """Set by SIGHUP: re-index the knowledge that changed."""
        return self.unit.reindex

    def serving(self) -> bool:
        """This process may send for the number now (it holds the lease, or is no fleet)."""
        lease = self.claim.lease if self.claim is not None else None
        return self.claim is None or (lease is not None and lease.valid)

    def _state(self) -> str:
        """The number's state as `wabot numbers list` shows it."""
        gateway = self.unit.gateway
        done = gateway.finished
        if done.done() and not done.cancelled() and done.exception() is None:
            return str(done.result())[:16]
        if gateway.connected is None or gateway.connected.is_set():
            return "connected"
        return "linking" if gateway.connected_as is None else "offline"

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def start(self) -> None:
        if self._owns_shared:
            await self.shared.start()
            if self.shared.changes is not None:  # pauses from other nodes' consoles
                self.spawn(self.shared.changes.run(self.settings.fleet.renew_seconds),
                           "customer-changes")
        self.stores_up.set()
        # From here `stop` undoes what was done, also when a stop comes while this process
        # waits for its number's lease (a standby).
        self._started = True
        await self.unit.prepare(self.spawn)
        if self.web is not None:  # before WhatsApp: the page says why it is not connected
            await self.web.start()
            if self.claim is not None:  # where other nodes forward sends for our numbers
                self.claim.console_url = self.web.node_url
        if self.claim is not None:
            await NumberStore(self.shared.db, self.shared.clock).register(self.settings)
            if self.webhook is not None:  # a standby journals what reaches it for the owner
                await self.webhook.start()
            await self.claim.wait(self.unit.gateway.report)
            self.unit.inbox.serve()
            self.spawn(self.claim.keep(self._state), "lease")
        await self.unit.connect(self.spawn)
        if self.claim is not None:
            self.spawn(self.claim.catch_up(self.unit.inbox.catch_up), "fleet-catch-up")
        elif self.webhook is not None:
            await self.webhook.start()
        logger.info("wabot started for tenant {}", self.unit.tenant)

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        if self.webhook is not None:
            await self.webhook.stop()  # Meta keeps what arrives meanwhile for redelivery
        if self.web is not None:
            await self.web.stop()
        self.consoles.close()
        await self.unit.finish(self.unit.settings.stop_grace_seconds)
        for task in list(self.background):
            task.cancel()
        for task in list(self.background):
            with suppress(asyncio.CancelledError):
                await task
        await self.unit.close()
        if self.claim is not None:  # after the transport stopped: the next owner may send
            await self.claim.release()
        if self._owns_shared:
            await self.shared.stop()
        logger.info("wabot stopped")

    async def __aenter__(self) -> App:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()
