"""The wiring: every part built from `Settings`, each given its dependencies when it is made.

`Shared` is what the process shares among its WhatsApp numbers (the stores, the model
client, metrics); `build_unit` builds one number on top of it (`bot.unit.NumberUnit`). The
order below is the order of dependence: nothing is set on a part after it is built; what
happens later (a turn done, a turn failed, a message capped) reaches the parts that care
through the number's event hub (`bot.events.hub`). Single parts the CLI builds alone
(the model client, the memory store, the business profile) are in `bot.parts`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from loguru import logger

from bot.agents.agent import AgentDeps, Budget, CustomerAgent, Reply
from bot.agents.memory_keeper import MemoryKeeper
from bot.agents.registry import AgentRegistry, EventSink
from bot.agents.state import WINDOW_PAGE, CacheSync, fit_window
from bot.agents.tools import default_tools
from bot.business import Business
from bot.clock import Clock
from bot.events.alerts import Alerts
from bot.events.hub import CAPPED, TURN_COMMITTED, TURN_DONE, TURN_FAILED, Events
from bot.events.outbox import Outbox
from bot.fleet.changes import CustomerChanges
from bot.fleet.claim import Claim
from bot.fleet.lease import Leases, NodeState, new_node_id
from bot.fleet.notify import Wakeup
from bot.followups import FollowUpScheduler
from bot.gateway.base import Gateway, Template
from bot.gateway.pacer import Pacer
from bot.gateway.phone import PhoneWatch
from bot.gateway.restrictions import Restriction, Restrictions
from bot.knowledge.tools import knowledge_tools
from bot.llm import LLM, CallLog
from bot.models import CustomerKey
from bot.ops.status import Live, Monitor
from bot.parts import build_library, build_llm, build_memory, load_business_for, with_canned_texts
from bot.pipeline.chats import Chats
from bot.pipeline.inbox import Inbox
from bot.pipeline.intake import Intake
from bot.pipeline.later.backlog import Backlog
from bot.pipeline.later.capped_and_failed import Revisit
from bot.pipeline.later.undelivered import Redelivery
from bot.pipeline.limits import Access, RateLimiter
from bot.pipeline.media import Media, remember_text
from bot.pipeline.optout import OptOut
from bot.pipeline.presenter import Presenter
from bot.pipeline.takeover import Takeover
from bot.pipeline.voice_budget import VoiceBudget
from bot.settings import Settings
from bot.stores.alerts import AlertStore
from bot.stores.customers import Customer, CustomerStore, Resident
from bot.stores.db import Database, pool_options
from bot.stores.deliveries import DeliveryStore
from bot.stores.identity import Identity, moving_followups
from bot.stores.memory_base import Profile
from bot.stores.memory_observed import ObservedMemory
from bot.stores.runs import RunRow, RunStore
from bot.stores.stamps import ChangeStamps
from bot.stores.usage_lines import BusinessUsage
from bot.unit import NumberUnit
from bot.web.metrics import Metrics


class Residents:
    """The numbers' cached customer rows, for the shared customer store to read instead of
    the database (each number adds its agent registry)."""

    def __init__(self) -> None:
        self._by_tenant: dict[str, Resident] = {}

    def add(self, tenant: str, resident: Resident) -> None:
        self._by_tenant[tenant] = resident

    def __call__(self, key: CustomerKey) -> Customer | None:
        resident = self._by_tenant.get(key.tenant)
        return resident(key) if resident is not None else None


@dataclass(frozen=True, slots=True)
class Shared:
    """What every number of the process uses: stores, the model client, metrics."""

    settings: Settings
    clock: Clock
    llm: LLM
    db: Database
    customers: CustomerStore
    memory: ObservedMemory
    runs: RunStore
    metrics: Metrics
    residents: Residents = field(default_factory=Residents)
    node: str = ""  # this process in the fleet: one node, whatever the numbers it serves
    wakeup: Wakeup | None = None  # the fleet's notifications (PostgreSQL), one connection
    node_state: NodeState = field(default_factory=NodeState)  # draining, for every lease
    changes: CustomerChanges | None = None  # customers changed on other nodes (PostgreSQL)

    async def start(self) -> None:
        # The state directory holds the WhatsApp login keys and the conversations.
        self.settings.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        await self.db.create_all()
        await self.memory.start()
        if self.changes is not None:
            await self.changes.start()

    async def stop(self) -> None:
        """Last: the units wrote to the stores until now."""
        if self.wakeup is not None:
            await self.wakeup.close()
        try:  # this node leaves the fleet (its numbers were given back by their units)
            await Leases(self.db, self.node, 0).leave()
        except Exception as exc:
            logger.debug("fleet: node row not removed: {}", exc)
        await self.llm.close()
        await self.memory.close()
        await self.customers.close()
        await self.db.close()


def build_shared(settings: Settings, clock: Clock, llm: LLM | None = None) -> Shared:
    residents = Residents()
    db = Database(settings.sql_url, **pool_options(settings))
    s = settings.llm
    wakeup = None if db.is_sqlite else Wakeup(settings.sql_url)
    customers = CustomerStore(db, clock=clock, resident=residents)
    memory = ObservedMemory(build_memory(settings, db))
    memory.listeners.append(customers.memory_writes)  # a first contact's memory is empty
    return Shared(
        settings=settings, clock=clock, llm=llm or build_llm(settings), db=db,
        customers=customers, memory=memory, runs=RunStore(db),
        metrics=Metrics(s.price_in_per_million, s.price_out_per_million),
        residents=residents, node=new_node_id(settings.fleet.node_id),
        wakeup=wakeup, changes=None if db.is_sqlite else CustomerChanges(db, clock, wakeup))


def build_claim(shared: Shared, number: str) -> Claim:
    """This process's hold on one of its numbers (`wabot run`), as its node of the fleet."""
    f = shared.settings.fleet
    leases = Leases(shared.db, shared.node, f.lease_seconds, shared.node_state)
    return Claim(leases, number, f.renew_seconds, shared.wakeup)


def agent_loader(deps: AgentDeps) -> Callable[[CustomerKey], Any]:
    async def load(key: CustomerKey) -> tuple[CustomerAgent, bool]:
        # A first contact (the journal's write found no row and no SQL memory): nothing to
        # read, unless the memory is elsewhere (MongoDB: an owner's lines may be there).
        new = deps.customers.first_contact(key)
        if new and deps.writer.together:
            return CustomerAgent(key, deps, None, Profile(), [], complete=True), True
        # The filters read the row a moment ago (change stamps clear that copy).
        customer = None if new else await deps.customers.get(key, max_age=2.0)
        profile = await deps.memory.profile(key, with_stages=False)
        rows = await deps.memory.recent(key, WINDOW_PAGE, profile.summarized_upto)
        window = fit_window(rows, deps.budget.history)
        complete = len(rows) < WINDOW_PAGE and len(window) == len(rows)
        return CustomerAgent(key, deps, customer, profile, window, complete), customer is None

    return load


def run_sink(shared: Shared, enabled: bool) -> Callable[..., RunRow | None]:
    """Metrics now; the run log's row is stored by the turn's one write."""
    def on_run(key: CustomerKey, at: datetime, kind: str, calls: CallLog, reply: Reply,
               seconds: float) -> RunRow | None:
        shared.metrics.on_run(key.tenant, calls.calls, seconds)
        if enabled and calls.calls:
            return RunRow.of(kind, calls, reply.text, reply.failed, seconds)
        return None

    return on_run


def build_unit(shared: Shared, gateway: Gateway, *, settings: Settings | None = None,
               business: Business | None = None, on_agent_event: EventSink | None = None,
               heartbeat: bool = True, claim: Claim | None = None) -> NumberUnit:
    """One WhatsApp number: its gateway, inbox, agents, presenter, pacer, follow-ups.

    `settings`: the number's (default: the process's). `heartbeat`: publish the daemon's
    heartbeat for `wabot status` (`chat` and `simulate` must not pose as the daemon of
    their tenant). `claim`: the number's lease in the fleet (`wabot run`): until it is held
    the inbox only journals, and every send and turn write is fenced by it."""
    profile = business or load_business_for(settings or shared.settings)
    s = with_canned_texts(settings or shared.settings, profile)
    clock, customers, memory, tenant = shared.clock, shared.customers, shared.memory, s.tenant
    outbox = Outbox(shared.db, tenant, s.webhooks, clock)
    events = Events([shared.metrics.listener(tenant), outbox.listen])
    a = s.alerts
    alerts = Alerts(a, events, gateway, clock, AlertStore(shared.db, tenant),
                    Template(a.template, a.template_language or s.cloud.template_language)
                    if a.template else None)
    usage_lines = BusinessUsage(shared.db, tenant)  # memory work, transcription, the probe
    tools = default_tools()
    budget = Budget(context=s.llm.context_tokens, history=s.llm.history_tokens,
                    facts=s.memory.facts_tokens, summary=s.memory.summary_tokens,
                    featured=s.knowledge.featured_tokens if s.knowledge.enabled else None)
    deps = AgentDeps(customers=customers, memory=memory, llm=shared.llm, tools=tools,
                     business=profile, budget=budget, failure_reply=s.agents.failure_reply,
                     events=events, on_run=run_sink(shared, s.runs.enabled),
                     stamp=claim.stamp if claim is not None else None)

    def agent_event(event: str, key: CustomerKey) -> None:
        if event == "agent_created":
            events.emit("customer.created", {"phone": key.phone})
        if on_agent_event is not None:
            on_agent_event(event, key)

    registry = AgentRegistry(
        agent_loader(deps), clock, idle_seconds=s.agents.idle_evict_minutes * 60,
        max_agents=s.agents.max_cached_agents, on_event=agent_event,
        stamps=ChangeStamps(s.state_dir, tenant), on_stamped=customers.uncache)
    if shared.changes is not None:  # a pause from another node's console
        shared.changes.follow(tenant, registry.changed_elsewhere)
    # The cached agents are the cache: every write in this process reaches them.
    sync = CacheSync(registry.peek, registry.drop, budget.history)
    customers.listeners.append(sync.customer_changed)
    memory.listeners.append(sync)
    shared.residents.add(tenant, registry.resident_customer)
    # Summaries and insights run in the background on the same client, with the summary
    # model and room for a whole summary in one answer.
    background_llm = shared.llm.using(s.llm.summary_model or shared.llm.model,
                                      temperature=0.2,
                                      max_tokens=max(600, s.memory.summary_tokens))
    keeper = MemoryKeeper(memory, customers, background_llm, clock, s.memory, budget,
                          known_unsummarized=sync.unsummarized, business_usage=usage_lines)
    events.on(TURN_COMMITTED, keeper.schedule)

    # ── WhatsApp's pace and restrictions, the presenter ──
    p = s.pacing
    restrictions = Restrictions(clock, s.state_dir)
    pacer = Pacer(clock, p.messages_per_minute, p.burst, restrictions)
    # WhatsApp Web: the linked device needs the business phone to show itself now and then.
    phone = (PhoneWatch(clock, s.state_dir, timedelta(days=p.phone_offline_warn_days))
             if gateway.linking is not None else None)
    deliveries = DeliveryStore(shared.db, tenant)
    presenter = Presenter(gateway, clock, s.presenter, ledger=deliveries, events=events)
    media = Media(shared.llm, customers, memory, presenter, s.media,
                  voice_budget=VoiceBudget(s.voice_budget, usage_lines, customers,
                                           s.limits.daily_tokens))
    takeover = Takeover(customers, memory, gateway, clock, s.takeover, profile.tz)
    chats = Chats(tenant, customers, registry, presenter, clock, s.inbox, events,
                  describe=media.describe, hold=takeover)
    backlog = Backlog(tenant, chats.enqueue_late, customers.journal_mark, clock,
                      max_age=timedelta(hours=p.backlog_max_age_hours), turns=p.backlog_turns,
                      settle_seconds=p.backlog_settle_seconds, alert=alerts)
    events.on(TURN_DONE, backlog.turn_done)

    # ── follow-ups, opt-out, limits, what is answered later ──
    f = s.followups
    followups = FollowUpScheduler(
        tenant, s.sql_url, f, customers=customers, memory=memory, chats=chats,
        business=profile, clock=clock,
        reachable=gateway.may_write_first,  # the Cloud API's 24-hour window, before the model
        restricted=restrictions.proactive_until,  # deferred while restricted, not lost
    ) if f.enabled else None
    if followups is not None:
        for tool in followups.tools():
            tools.add(tool)
        events.on(TURN_DONE, followups.on_inbound)
    optout = OptOut(f.optout, customers, memory, presenter, chats, clock,
                    followups.cancel if followups else None)
    tools.add(optout.tool)
    limiter = RateLimiter(customers, presenter, clock, s.limits,
                          lambda key: chats.has_pending(key) or backlog.holds(key),
                          chats.enqueue, chats.tasks, alerts,
                          remember=lambda msg: remember_text(memory, msg), events=events)
    # Capped and failed messages are answered when the cap or the model allows.
    revisit = Revisit(tenant, customers, chats, shared.llm, clock, s.retry, profile.tz,
                      limiter.over_budget, usage_lines)
    events.on(CAPPED, revisit.note)
    events.on(TURN_FAILED, revisit.note)
    events.on(TURN_DONE, revisit.done)  # a retry ended: the next one need not wait

    def turn_failed(key: CustomerKey) -> None:
        alerts.fire("turn_failed", f"a turn for {key.phone} failed: the customer got the "
                    "failure reply or none (see the log)", key.phone)

    events.on(TURN_FAILED, turn_failed)
    redelivery = Redelivery(tenant, deliveries, presenter, memory, customers, clock,
                            s.presenter, alerts, gateway.connected)

    # ── knowledge: catalog and document search, media sends ──
    library = build_library(s, shared.db, clock, shared.llm, business,
                            deps.new_catalog) if s.knowledge.enabled else None
    if library is not None:
        for tool in knowledge_tools(library, gateway, s.knowledge.results,
                                    s.knowledge.max_media_bytes):
            tools.add(tool)
    if s.alerts.ask_human_tool:
        tools.add(alerts.tool())

    # Who may talk (access) → STOP/START (opt-out, never rate limited) → is a human handling
    # the chat (takeover) → how much (limits) → kinds with a fixed outcome (media). The
    # limiter must stay the last filter that awaits anything when it lets a message through:
    # it counts the turn the message is about to start.
    inbox = Inbox(tenant, customers, chats, events, s.inbox,
                  filters=[Access(s.access), optout, takeover, limiter, media.filter],
                  take_backlog=backlog.take, serving=claim is None,
                  nudge=claim.nudge if claim is not None else None)
    identity = Identity(  # LID customers → phone numbers
        tenant, customers, memory, busy=chats.busy, dropped=registry.drop,
        rekeyers=[moving_followups(followups)] if followups is not None else [])
    intake = Intake(inbox.feed, clock, alerts, spill=s.state_dir / "held-inbound.jsonl",
                    observe=identity.observe, redelivers=gateway.redelivers)

    def live() -> Live:
        return Live(connected_as=gateway.connected_as or "", agents_cached=len(registry),
                    turns=chats.turns, failures=chats.failures)

    def restricted(restriction: Restriction) -> None:
        line = f"restricted by WhatsApp: {restriction.line()}"
        alerts.fire(f"whatsapp_{restriction.kind}",
                    f"{line}. Follow-ups wait until it ends; replies to customers who write "
                    "go on where WhatsApp allows them.")
        gateway.report(line)  # systemd's STATUS

    def customer_changed(key: CustomerKey, field: str, value: Any) -> None:
        if key.tenant != tenant:  # the store is shared by every number of the process
            return
        if field == "stage":
            events.emit("customer.stage_changed", {"phone": key.phone, "stage": value})
        elif field == "opted_out" and value:
            events.emit("customer.opted_out", {"phone": key.phone})

    restrictions.listeners.append(restricted)
    customers.on_change.append(customer_changed)
    return NumberUnit(
        settings=s, business=profile, clock=clock, gateway=gateway, events=events,
        alerts=alerts, outbox=outbox, deps=deps, registry=registry, keeper=keeper,
        presenter=presenter, chats=chats, inbox=inbox, intake=intake, backlog=backlog,
        restrictions=restrictions, pacer=pacer, phone=phone, followups=followups,
        takeover=takeover, revisit=revisit, redelivery=redelivery, identity=identity,
        deliveries=deliveries, usage_lines=usage_lines, library=library,
        customers=customers, memory=memory, runs=shared.runs, db=shared.db, live=live,
        monitor=Monitor(shared.db, tenant, clock, s.heartbeat_seconds, live)
        if heartbeat else None, fence=claim.check if claim is not None else None)
