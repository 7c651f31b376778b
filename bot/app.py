"""The composition root: builds every part from Settings and owns start/stop order.

Start: stores → LLM → agents → presenter → inbox → gateway → recovery → follow-ups →
background tasks.
Stop, in reverse: stop firing follow-ups and accepting → finish turns in flight (bounded
grace) → the follow-up scheduler → background tasks → gateway → LLM → stores last.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from contextlib import suppress
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from loguru import logger

from bot.agents.agent import AgentDeps, Budget, CustomerAgent, Reply
from bot.agents.lifecycle import run_churn_sweep
from bot.agents.memory_keeper import MemoryKeeper
from bot.agents.registry import AgentRegistry, EventSink
from bot.agents.state import WINDOW_PAGE, CacheSync, fit_window
from bot.agents.tools import default_tools
from bot.business import DEFAULT_BUSINESS, Business, Product, load_business
from bot.clock import Clock, SystemClock
from bot.events.alerts import Alerts
from bot.events.hub import Events
from bot.events.outbox import Outbox
from bot.followups import FollowUpScheduler
from bot.gateway.base import Binding, Gateway
from bot.gateway.pacer import Pacer
from bot.gateway.phone import PhoneWatch
from bot.gateway.restrictions import Restriction, Restrictions
from bot.knowledge.library import Library, index_for, log_report, reindex_on
from bot.knowledge.tools import knowledge_tools
from bot.llm import LLM, CallLog
from bot.messages import Canned
from bot.models import CustomerKey, InboundMessage
from bot.ops.status import Live, Monitor
from bot.pipeline.backlog import Backlog
from bot.pipeline.inbox import Inbox
from bot.pipeline.intake import Intake
from bot.pipeline.limits import Access, RateLimiter
from bot.pipeline.media import Media, remember_text
from bot.pipeline.optout import OptOut
from bot.pipeline.presenter import Presenter
from bot.pipeline.redelivery import Redelivery
from bot.pipeline.revisit import Revisit
from bot.pipeline.takeover import Takeover
from bot.pipeline.voice_budget import VoiceBudget
from bot.settings import Settings
from bot.stores.customers import CustomerStore
from bot.stores.db import Database
from bot.stores.deliveries import DeliveryStore
from bot.stores.identity import Identity, moving_followups
from bot.stores.memory_base import MemoryStore
from bot.stores.memory_observed import ObservedMemory
from bot.stores.runs import RunRow, RunStore
from bot.stores.stamps import ChangeStamps
from bot.stores.usage_lines import BusinessUsage
from bot.web.console import Console

if TYPE_CHECKING:
    from fastapi import APIRouter


def load_business_for(settings: Settings) -> Business:
    """The configured business profile; the embedded default when none is configured."""
    if settings.business_file is not None:
        return load_business(settings.business_file)
    local = Path("config/business.yaml")
    if local.is_file():
        return load_business(local)
    logger.warning("no business profile configured: agents speak for a generic shop. "
                   "Copy config/business.example.yaml to config/business.yaml and edit it "
                   "(or set WABOT_BUSINESS_FILE)")
    return DEFAULT_BUSINESS


def build_llm(settings: Settings) -> LLM:
    s = settings.llm
    return LLM.from_settings(
        api_key=s.api_key.get_secret_value() if s.api_key else None, base_url=s.base_url,
        model=s.model, timeout=s.timeout, max_retries=s.max_retries,
        temperature=s.temperature, max_tokens=s.max_reply_tokens)


def build_memory(settings: Settings, db: Database) -> MemoryStore:
    if settings.mongodb_url is not None:
        from bot.stores.memory_mongo import MongoMemoryStore

        return MongoMemoryStore(settings.mongodb_url.get_secret_value(),
                                database=settings.mongodb_database)
    from bot.stores.memory_sql import SqlMemoryStore

    return SqlMemoryStore(db)


def with_canned_texts(settings: Settings, business: Business) -> Settings:
    """The settings with every fixed message filled in the business's language, unless the
    owner wrote their own (bot.messages)."""
    f, lim = settings.followups, settings.limits
    canned = Canned.resolve(business.language, {
        "failure_reply": settings.agents.failure_reply, "rate_notice": lim.notice,
        "budget_notice": lim.budget_notice, "stop_reply": f.optout.stop_reply,
        "start_reply": f.optout.start_reply})
    optout = f.optout.model_copy(update={"stop_reply": canned.stop_reply,
                                         "start_reply": canned.start_reply})
    return settings.model_copy(update={
        "agents": settings.agents.model_copy(update={"failure_reply": canned.failure_reply}),
        "limits": lim.model_copy(update={"notice": canned.rate_notice,
                                         "budget_notice": canned.budget_notice}),
        "followups": f.model_copy(update={"optout": optout})})


def build_library(settings: Settings, db: Database, clock: Clock, llm: LLM,
                  business: Business | None,
                  on_catalog: Callable[[list[Product]], None] | None = None) -> Library:
    """The tenant's knowledge. The catalog is re-read from the business profile at each
    sync (what `wabot catalog import` wrote), unless a profile was given in code."""
    from bot.knowledge.embeddings import Embedder

    k = settings.knowledge
    products = ((lambda: business.products) if business is not None
                else (lambda: load_business_for(settings).products))
    embedder = Embedder(llm.client, k.embeddings_model) if k.embeddings_model else None
    return Library(index_for(db), settings.tenant, products, k.dir, clock,
                   chunk_chars=k.chunk_chars, embedder=embedder, on_catalog=on_catalog)


class App:
    def __init__(self, settings: Settings, gateway: Gateway, *, clock: Clock | None = None,
                 llm: LLM | None = None, business: Business | None = None,
                 on_agent_event: EventSink | None = None, heartbeat: bool = True,
                 serve_http: bool = False, extra_routers: Sequence[APIRouter] = ()) -> None:
        """`serve_http`: run the console (`wabot run` does; tests and `chat` do not).
        `extra_routers`: mounted on the console's server as they are (a transport's
        webhook receiver, e.g. at `/webhooks/whatsapp`), as are the FastAPI routers a
        gateway lists in a `routers` attribute; see `bot.web.server`."""
        self.settings = settings
        self.gateway = gateway
        self.clock = clock or SystemClock()
        self.business = business or load_business_for(settings)
        self.llm = llm or build_llm(settings)
        self.db = Database(settings.sql_url)
        self.customers = CustomerStore(self.db, clock=self.clock)
        self.memory = ObservedMemory(build_memory(settings, self.db))
        s = settings = with_canned_texts(settings, self.business)
        self.settings = settings
        self.deps = AgentDeps(
            customers=self.customers, memory=self.memory, llm=self.llm, tools=default_tools(),
            business=self.business,
            budget=Budget(context=s.llm.context_tokens, history=s.llm.history_tokens,
                          facts=s.memory.facts_tokens, summary=s.memory.summary_tokens),
            failure_reply=s.agents.failure_reply)
        # Summaries and insights run in the background on the same client, with the
        # summary model and room for a whole summary in one answer.
        background_llm = LLM(self.llm.client, s.llm.summary_model or self.llm.model,
                             temperature=0.2, max_tokens=max(600, s.memory.summary_tokens))
        self.keeper = MemoryKeeper(self.memory, self.customers, background_llm, self.clock,
                                   s.memory, self.deps.budget)
        self.deps.after_turn = self.keeper.schedule
        # Background memory work and transcription: the business's lines, not a customer's.
        self.usage_lines = BusinessUsage(self.db, s.tenant)
        self.keeper.business_usage = self.usage_lines
        self.registry = AgentRegistry(
            self._load_agent, self.clock, idle_seconds=s.agents.idle_evict_minutes * 60,
            max_agents=s.agents.max_cached_agents, on_event=self._agent_event,
            stamps=ChangeStamps(s.state_dir, s.tenant))
        self._on_agent_event = on_agent_event
        # The cached agents are the cache: every write in this process reaches them.
        sync = CacheSync(self.registry.peek, self.registry.drop, self.deps.budget.history)
        self.customers.listeners.append(sync.customer_changed)
        self.customers.resident = self.registry.resident_customer
        self.memory.listeners.append(sync)
        self.keeper.known_unsummarized = sync.unsummarized
        self.registry.on_stamped = self.customers.uncache
        self.deliveries = DeliveryStore(self.db, s.tenant)
        self.presenter = Presenter(gateway, self.clock, s.presenter, ledger=self.deliveries)
        self.media = Media(self.llm, self.customers, self.memory, self.presenter, s.media)
        self.media.voice_budget = VoiceBudget(s.voice_budget, self.usage_lines, self.customers,
                                              s.limits.daily_tokens)
        self.inbox = Inbox(s.tenant, self.customers, self.registry, self.presenter,
                           self.clock, s.inbox, describe=self.media.describe)
        f = s.followups
        self.followups = FollowUpScheduler(
            s.tenant, s.sql_url, f, customers=self.customers, memory=self.memory,
            inbox=self.inbox, business=self.business, clock=self.clock) if f.enabled else None
        self.optout = OptOut(f.optout, self.customers, self.memory, self.presenter, self.inbox,
                             self.clock, self.followups.cancel if self.followups else None)
        self.deps.tools.add(self.optout.tool)
        if self.followups is not None:
            for tool in self.followups.tools():
                self.deps.tools.add(tool)
            self.inbox.after_inbound.append(self.followups.on_inbound)
            # The Cloud API's 24-hour window is checked before the model writes a follow-up.
            self.followups.policy.reachable = gateway.may_write_first
        self.identity = Identity(s.tenant, self.customers, self.memory, busy=self.inbox.busy,
                                 dropped=self.registry.drop)  # LID customers → phone numbers
        if self.followups is not None:
            self.identity.rekeyers.append(moving_followups(self.followups))
        self.events = Events()
        self.alerts = Alerts(s.alerts, self.events, gateway, self.clock)
        self.redelivery = Redelivery(
            s.tenant, self.deliveries, self.presenter, self.memory, self.customers,
            self.clock, s.presenter, self.alerts, gateway.connected)
        self._wire_pacing()
        # ── knowledge: catalog and document search, media sends ──
        self.reindex = asyncio.Event()  # set by SIGHUP: re-index changed sources
        self.library = build_library(settings, self.db, self.clock, self.llm, business,
                                     self._new_catalog) if s.knowledge.enabled else None
        if self.library is not None:
            for tool in knowledge_tools(self.library, gateway, s.knowledge.results,
                                        s.knowledge.max_media_bytes):
                self.deps.tools.add(tool)
            self.deps.budget.featured = s.knowledge.featured_tokens
        # ── end knowledge ──
        self.takeover = Takeover(self.customers, self.memory, gateway, self.clock, s.takeover,
                                 self.business.tz)
        self.limiter = RateLimiter(self.customers, self.presenter, self.clock, s.limits,
                                   self.inbox.has_pending, self.inbox.enqueue,
                                   self.inbox.tasks, self.alerts,
                                   remember=lambda msg: remember_text(self.memory, msg))
        # Capped and failed messages are answered when the cap or the model allows.
        self.revisit = Revisit(s.tenant, self.customers, self.inbox, self.llm, self.clock,
                               s.retry, self.business.tz, self.limiter.over_budget,
                               self.usage_lines)
        self.limiter.on_capped.append(self.revisit.note)
        self.inbox.on_failed.append(self.revisit.note)
        # Who may talk (access) → STOP/START (opt-out, never rate limited) → is a human
        # handling the chat (takeover) → how much (limits) → kinds with a fixed outcome
        # (media). The limiter must stay the last filter that awaits anything when it lets
        # a message through: it counts the turn the message is about to start.
        self.inbox.filters += [Access(s.access), self.optout, self.takeover, self.limiter,
                               self.media.filter]
        self.inbox.hold = self.takeover.hold
        self.inbox.after_hold = self.takeover.held
        self.intake = Intake(self.inbox.feed, self.clock, self.alerts,
                             spill=s.state_dir / "held-inbound.jsonl")
        # The daemon publishes its heartbeat for `wabot status`; `chat` and `simulate` must
        # not pose as the daemon of their tenant.
        self.monitor = Monitor(self.db, s.tenant, self.clock, s.heartbeat_seconds,
                               self._live) if heartbeat else None
        self.background: set[asyncio.Task[None]] = set()
        self._started = False
        self._wire_console(serve_http, extra_routers)
        # --- the Cloud API transport: per-message statuses; its webhook is served by
        # the console (`extra_routers`), or by a server of its own when the console is off
        from bot.gateway.cloud.server import attach

        self.webhook = attach(gateway, settings, self.customers, own_server=self.web is None)
        # --- end of the Cloud API transport ---------------------------------------------

    # --- the owner's console: run log, events, webhooks, alerts, metrics, HTTP -------------

    def _wire_console(self, serve_http: bool, extra_routers: Sequence[APIRouter]) -> None:
        from bot.web.metrics import Metrics

        s = self.settings
        self.runs = RunStore(self.db)
        self.metrics = Metrics(s.llm.price_in_per_million, s.llm.price_out_per_million)
        self.outbox = Outbox(self.db, s.tenant, s.webhooks, self.clock)
        self.events.listeners += [self.metrics.on_event, self.outbox.listen]
        if s.alerts.ask_human_tool:
            self.deps.tools.add(self.alerts.tool())
        self.deps.on_run = self._on_run
        self.presenter.listeners.append(self._on_sent)
        self.inbox.on_failed.append(self._on_failed)
        self.inbox.on_received.append(lambda msg: self.events.emit("message.received", {
            "phone": msg.phone, "msg_id": msg.msg_id, "kind": msg.kind.value,
            "text": msg.text, "from_owner": msg.from_owner}))
        self.customers.on_change.append(self._on_customer_change)
        self.console = Console(
            settings=s, clock=self.clock, gateway=self.gateway, customers=self.customers,
            memory=self.memory, runs=self.runs, events=self.events, alerts=self.alerts,
            outbox=self.outbox, metrics=self.metrics, followups=self.followups,
            live=self._live, zone=self.business.tz)
        self.web = None
        if serve_http and s.http.enabled:
            from bot.web.auth import Auth, ensure_token
            from bot.web.server import WebServer

            auth = Auth(ensure_token(s), s.http.session_hours * 3600,
                        s.http.failed_auth_per_minute)
            # A transport that receives webhooks (e.g. the Cloud API) offers its routers.
            routers = [*extra_routers, *self.gateway.routers]
            self.web = WebServer(self.console, auth, s.http, extra_routers=routers)

    # --- one send pace, the offline backlog, WhatsApp's restrictions ----------------------

    def _wire_pacing(self) -> None:
        p, gateway = self.settings.pacing, self.gateway
        self.restrictions = Restrictions(self.clock, self.settings.state_dir)
        self.pacer = Pacer(self.clock, p.messages_per_minute, p.burst, self.restrictions)
        if gateway.paced:  # every send, whoever makes it (not the Cloud API's)
            self.pacer.install(gateway, self._own_chat)
        self.backlog = Backlog(
            self.settings.tenant, self.inbox.enqueue_late, self.customers.journal_mark, self.clock,
            max_age=timedelta(hours=p.backlog_max_age_hours), turns=p.backlog_turns,
            settle_seconds=p.backlog_settle_seconds, alert=self.alerts)
        self.inbox.take_backlog, self.inbox.backlog_holds = self.backlog.take, self.backlog.holds
        self.inbox.after_inbound.append(self.backlog.turn_done)
        self.restrictions.listeners.append(self._restricted)
        if self.followups is not None:  # deferred while restricted, not lost
            self.followups.policy.restricted = self.restrictions.proactive_until
        self.phone: PhoneWatch | None = None
        if gateway.linking is not None:  # WhatsApp Web: the linked device needs the phone
            self.phone = PhoneWatch(
                self.clock, self.settings.state_dir, timedelta(days=p.phone_offline_warn_days))

    def _own_chat(self) -> str | None:
        own = self.gateway.connected_as
        return self.gateway.chat_for(own) if own else None

    def _restricted(self, restriction: Restriction) -> None:
        line = f"restricted by WhatsApp: {restriction.line()}"
        self.alerts.fire(f"whatsapp_{restriction.kind}",
                         f"{line}. Follow-ups wait until it ends; replies to customers who "
                         "write go on where WhatsApp allows them.")
        self.gateway.report(line)  # systemd's STATUS

    def _agent_event(self, event: str, key: CustomerKey) -> None:
        if event == "agent_created":
            self.events.emit("customer.created", {"phone": key.phone})
        if self._on_agent_event is not None:
            self._on_agent_event(event, key)

    def _on_run(self, key: CustomerKey, at: datetime, kind: str, calls: CallLog,
                reply: Reply, seconds: float) -> RunRow | None:
        """Metrics now; the run log's row is stored by the turn's one write."""
        self.metrics.on_run(calls.calls, seconds)
        if self.settings.runs.enabled and calls.calls:
            return RunRow.of(kind, calls, reply.text, reply.failed, seconds)
        return None

    def _on_sent(self, chat: str, text: str, kind: str) -> None:
        data = {"chat": chat, "kind": kind, "text": text}
        self.events.emit("message.sent", data)
        if kind == "followup":
            self.events.emit("followup.sent", data)

    def _on_failed(self, key: CustomerKey) -> None:
        self.events.emit("turn.failed", {"phone": key.phone})
        self.alerts.fire("turn_failed", f"a turn for {key.phone} failed: the customer got "
                         "the failure reply or none (see the log)", key.phone)

    def _on_customer_change(self, key: CustomerKey, field: str, value: Any) -> None:
        if field == "stage":
            self.events.emit("customer.stage_changed", {"phone": key.phone, "stage": value})
        elif field == "opted_out" and value:
            self.events.emit("customer.opted_out", {"phone": key.phone})

    def _on_finished(self, done: asyncio.Future[Any]) -> None:
        if done.cancelled() or done.exception() is not None:
            return
        reason = done.result()
        if reason.needs_operator:
            self.alerts.fire(f"whatsapp_{reason}", self.gateway.status or str(reason))

    def _status_changed(self, status: str) -> None:
        """`connection.changed` for every new STATUS line of the transport."""
        self.events.emit("connection.changed", {"status": status})

    async def _check_crash(self) -> None:
        """Alert when the previous run of this tenant ended without a clean stop."""
        import os

        from bot.ops.status import STALE_BEATS, read_heartbeat

        beat = await read_heartbeat(self.db, self.settings.tenant)
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
        gone = await self.runs.prune(self.settings.tenant,
                                     self.clock.now() - timedelta(days=days))
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

    async def _start_console(self) -> None:
        self.gateway.finished.add_done_callback(self._on_finished)
        if self.web is not None:
            await self.web.start()
        self.spawn(self.outbox.run(), "webhooks")
        self.spawn(self._prune_runs(), "run-log-retention")

    async def _stop_console(self) -> None:
        await self.alerts.drain()
        await self.outbox.close()

    # --- end of the console ---------------------------------------------------------------

    def _new_catalog(self, products: list[Product]) -> None:
        """The products a re-index read (an import, then SIGHUP): the prompt's featured
        list follows, so it never quotes a price the search no longer has."""
        if products != self.deps.business.products:
            self.deps.business = self.deps.business.model_copy(update={"products": products})

    async def _load_agent(self, key: CustomerKey) -> tuple[CustomerAgent, bool]:
        # The filters read the row a moment ago (change stamps clear that copy).
        customer = await self.customers.get(key, max_age=2.0)
        profile = await self.memory.profile(key, with_stages=False)
        rows = await self.memory.recent(key, WINDOW_PAGE, profile.summarized_upto)
        window = fit_window(rows, self.deps.budget.history)
        complete = len(rows) < WINDOW_PAGE and len(window) == len(rows)
        agent = CustomerAgent(key, self.deps, customer, profile, window, complete)
        return agent, customer is None

    def _live(self) -> Live:
        return Live(connected_as=self.gateway.connected_as or "",
                    agents_cached=len(self.registry), turns=self.inbox.turns,
                    failures=self.inbox.failures)

    async def _phone_for_lid(self, lid: str) -> str | None:
        """A LID WhatsApp's own map forgot, from the customers we stored it for."""
        customer = await self.customers.find_by_lid(self.settings.tenant, lid)
        if customer is None or not customer.phone.startswith("+"):
            return None
        return customer.phone.removeprefix("+")

    async def _on_inbound(self, msg: InboundMessage) -> None:
        try:  # a LID customer whose number this message names becomes that customer
            await self.identity.observe(msg)
        except Exception:  # merged on a later message or start; the message goes on
            logger.opt(exception=True).warning("merging a LID customer failed")
        if self.gateway.redelivers:
            # The Cloud API webhook answers non-2xx when this raises and Meta delivers the
            # message again: nothing to hold in memory.
            await self.inbox.feed(msg)
            return
        # A failed journal write is retried with backoff and the message held meanwhile.
        await self.intake(msg)

    async def _recover_when(self, connected: asyncio.Event) -> None:
        await connected.wait()
        await self._catch_up()

    async def _catch_up(self) -> None:
        """Messages held at the last stop, then journaled ones never answered."""
        await self.intake.restore()
        await self.redelivery.settle_crashed()  # before the journal: not a second turn
        await self.inbox.recover()
        self.spawn(self.revisit.run(), "revisit")
        self.spawn(self.redelivery.run(), "redelivery")

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def start(self) -> None:
        # The state directory holds the WhatsApp login keys and the conversations.
        self.settings.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        await self.db.create_all()
        if self.monitor is not None:
            await self._check_crash()  # before our own heartbeat replaces the last run's
            await self.monitor.start()
        await self.memory.start()
        if self.library is not None:
            # Before the gateway: the first answers already search an up-to-date index
            # (only changed sources are re-read, so a restart costs a digest per file).
            await self.library.start()
            log_report(await self.library.sync())
            self.spawn(reindex_on(self.library, self.reindex), "knowledge")
        await self._start_console()  # before WhatsApp: the page says why it is not connected
        self.gateway.bind(Binding(
            on_message=self._on_inbound, lid_directory=self._phone_for_lid,
            on_backlog_complete=self.backlog.complete, on_status=self._status_changed,
            restrictions=self.restrictions, phone=self.phone))
        await self.gateway.start()
        if self.webhook is not None:
            await self.webhook.start()
        connected = self.gateway.connected
        if connected is not None:
            # WhatsApp connects in the background and refuses sends until it has: answer
            # what the journal holds once replies can go out.
            self.spawn(self._recover_when(connected), "recover")
        else:
            await self._catch_up()
        if self.followups is not None:
            await self.followups.start()
        await self.identity.start()  # after follow-ups: a merge moves their jobs
        self.spawn(self.registry.run_sweeper(self.settings.agents.sweep_seconds), "sweeper")
        if self.phone is not None:
            self.spawn(self.phone.run(self.alerts), "phone-watch")
        if self.monitor is not None:
            self.spawn(self.monitor.run(), "heartbeat")
        m = self.settings.memory
        if m.churn_after_days > 0:
            self.spawn(run_churn_sweep(self.customers, self.memory, self.clock,
                                       self.settings.tenant, m.churn_after_days,
                                       m.churn_sweep_minutes * 60), "churn-sweep")
        self._started = True
        logger.info("wabot started for tenant {}", self.settings.tenant)

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        if self.webhook is not None:
            await self.webhook.stop()  # Meta keeps what arrives meanwhile for redelivery
        if self.web is not None:
            await self.web.stop()
        if self.followups is not None:
            self.followups.close()  # due follow-ups wait in the store for the next start
        self.inbox.close()
        await self.intake.stop(self.settings.stop_grace_seconds)
        if not await self.inbox.drain(self.settings.stop_grace_seconds):
            logger.warning("turns still running after {} s were cancelled; their messages "
                           "stay in the journal and are answered after restart",
                           self.settings.stop_grace_seconds)
        if self.followups is not None:
            await self.followups.stop()
        await self.keeper.stop()
        if self.library is not None:
            await self.library.idle()  # never cancel a re-index inside its transaction
        for task in list(self.background):
            task.cancel()
        for task in list(self.background):
            with suppress(asyncio.CancelledError):
                await task
        await self._stop_console()
        await self.gateway.stop()
        await self.llm.close()
        await self.memory.close()
        if self.monitor is not None:
            await self.monitor.stop()
        await self.customers.close()
        await self.db.close()
        logger.info("wabot stopped")

    async def __aenter__(self) -> App:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()
