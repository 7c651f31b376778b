"""One customer's agent: builds the prompt, calls the model, runs tools, remembers both sides."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from loguru import logger

from bot.agents import prompt
from bot.agents.state import CachedState, fit_window
from bot.agents.tools import ToolBox, TurnContext
from bot.business import Business, Product
from bot.events.hub import TURN_COMMITTED, Events
from bot.llm import CALL_LOG, LLM, CallLog, Completion, LLMError
from bot.models import CustomerKey, MemoryMessage, Role, Stage
from bot.phones import mask
from bot.stores.customers import Contact, Customer, CustomerStore
from bot.stores.memory_base import MemoryStore, Profile, estimate_tokens
from bot.stores.memory_observed import ObservedMemory
from bot.stores.runs import RunRow
from bot.stores.turn_writer import Stamp, TurnRecord, TurnWriter

MAX_TOOL_ROUNDS = 3
# The run log: (customer, turn time, kind, the turn's model calls, its reply, seconds taken)
# → the row the turn's write stores with it (None: nothing to store).
RunSink = Callable[[CustomerKey, datetime, str, CallLog, "Reply", float], RunRow | None]


@dataclass(slots=True)
class Budget:
    """Prompt budget in tokens; the window gets what the fixed parts leave."""

    context: int = 6000
    history: int = 2500
    facts: int = 600
    summary: int = 800
    featured: int | None = None  # products listed in the prompt; None: all (no search tool)


@dataclass(slots=True)
class AgentDeps:
    """What every agent of one number shares: built once by the wiring (`bot.wiring`)."""

    customers: CustomerStore
    memory: MemoryStore
    llm: LLM
    tools: ToolBox
    business: Business
    budget: Budget = field(default_factory=Budget)
    failure_reply: str = "Sorry, I'm having trouble answering right now."
    # `turn.committed` after a turn that said something: summaries, insights (background).
    events: Events | None = None
    on_run: RunSink | None = None  # records the turn's model calls ("why did it say that")
    stamp: Stamp | None = None  # in a fleet: the number's lease, checked by every turn's write
    writer: TurnWriter = field(init=False)
    business_blocks: prompt.BusinessBlocks = field(init=False,
                                                   default_factory=prompt.BusinessBlocks)

    def __post_init__(self) -> None:
        inner = self.memory.inner if isinstance(self.memory, ObservedMemory) else self.memory
        self.writer = TurnWriter(self.customers.db, inner, self.stamp)

    def new_catalog(self, products: list[Product]) -> None:
        """The products a re-index read (an import, then SIGHUP): the prompt's featured
        list follows, so it never quotes a price the search no longer has."""
        if products != self.business.products:
            self.business = self.business.model_copy(update={"products": products})


@dataclass(slots=True)
class Turn:
    """One inbound line of a turn, as the agent sees it (already described for media)."""

    text: str
    msg_id: str
    at: datetime


@dataclass(slots=True)
class Reply:
    text: str
    failed: bool = False
    tokens_in: int = 0
    tokens_out: int = 0
    lines: list[MemoryMessage] = field(default_factory=list)  # to remember: said + answer
    inbound: int = 0  # customer lines in the turn
    run: RunRow | None = None  # the run log's row, stored by the turn's write


class CustomerAgent(CachedState):
    """Small on purpose: thousands stay cached. The customer row, profile and recent
    window live here (see `bot.agents.state`); the full history in the memory store."""

    __slots__ = ("deps", "key")

    def __init__(self, key: CustomerKey, deps: AgentDeps, customer: Customer | None,
                 profile: Profile, window: list[MemoryMessage] | None = None,
                 complete: bool = False) -> None:
        super().__init__(customer, profile, window or [], complete)
        self.key = key
        self.deps = deps

    @property
    def stage(self) -> Stage:
        return Stage(self.customer.stage) if self.customer else Stage.LEAD

    async def remember(self, role: Role, lines: list[Turn], kind: str = "chat") -> None:
        """Append lines to the customer's history (inbound ids dedupe on replay)."""
        await self.deps.memory.append(self.key, [
            MemoryMessage(role=role, text=t.text, at=t.at, kind=kind, msg_id=t.msg_id)
            for t in lines])

    async def handle(self, lines: list[Turn], contact: Contact, now: datetime,
                     instruction: str = "", kind: str = "chat") -> Reply:
        """Answer a turn from what the agent holds; nothing is written here.

        The caller delivers the reply, then `commit`s the turn: both sides, usage and the
        journal status in one write. Nothing is lost on a crash before that: the inbound
        messages are in the journal and are replayed after restart (their ids make the
        replay idempotent).
        """
        deps = self.deps
        inbound = sum(1 for t in lines if t.msg_id)
        if self.customer is None:
            # First contact: the turn's write creates the row; a tool changing the customer
            # before it (stage, opt-out) creates it first (the store's `expect`).
            deps.customers.expect(self.key, contact, now)
        said = [MemoryMessage(Role.CUSTOMER, t.text, t.at, msg_id=t.msg_id) for t in lines]
        messages = self._prompt(now, instruction, said, contact.name)
        calls, started = CallLog(), time.perf_counter()
        scope = CALL_LOG.set(calls)
        try:
            completion = await self._complete(messages, now)
        except LLMError as exc:
            logger.bind(customer=mask(self.key.phone)).warning("turn failed: {}", exc)
            if not said:  # a proactive turn: nothing is sent, nobody waits
                reply = Reply("", failed=True)
            else:
                # The failure reply is part of the conversation: history and export show it.
                failure = MemoryMessage(Role.AGENT, deps.failure_reply, now, kind="failure")
                reply = Reply(deps.failure_reply, failed=True, lines=[*said, failure],
                              inbound=inbound)
            reply.run = self._log_run(now, kind, calls, reply, started)
            return reply
        finally:
            CALL_LOG.reset(scope)
        text = completion.text
        answer = [MemoryMessage(Role.AGENT, text, now, kind=kind)] if text else []
        reply = Reply(text, tokens_in=completion.tokens_in, tokens_out=completion.tokens_out,
                      lines=said + answer, inbound=inbound)
        reply.run = self._log_run(now, kind, calls, reply, started)
        return reply

    async def commit(self, reply: Reply, contact: Contact, now: datetime, *, sent: int = 0,
                     journal_ids: list[str] | None = None, status: str = "answered") -> None:
        """The turn's one write; then the cached row and window follow it."""
        deps = self.deps
        create = self.customer is None
        rec = TurnRecord(self.key, now, contact, reply.inbound, reply.lines, sent,
                         reply.tokens_in, reply.tokens_out, journal_ids or [], status,
                         reply.run, create=create)
        jobs = deps.customers.first_jobs.get(self.key.tenant) if create and reply.inbound else None
        committed = None
        if jobs is not None:  # the lifecycle rules' first follow-up, in the same write
            rec.jobs, committed = jobs(self.key, now)
        try:
            stored = await deps.writer.write(rec)
        finally:
            if create:
                deps.customers.expected(self.key)
        self.add_stored(stored, deps.budget.history)
        if rec.customer is not None:  # created by this write
            self.customer = rec.customer
            deps.customers.created(self.key, rec.customer.model_copy(), now, sent,
                                   reply.tokens_in, reply.tokens_out)
            if committed is not None:
                committed()
        else:
            deps.customers.written(self.key, now, sent, reply.tokens_in, reply.tokens_out)
        c = self.customer
        if c is not None and rec.customer is None:
            c.last_contact = now
            if reply.inbound:
                c.last_inbound = now
            c.msgs_in += reply.inbound
            c.msgs_out += sent
            c.tokens_in += reply.tokens_in
            c.tokens_out += reply.tokens_out
            for name in ("name", "wa_jid", "lid"):
                if getattr(contact, name):
                    setattr(c, name, getattr(contact, name))
        if reply.lines and deps.events is not None:
            await deps.events.tell(TURN_COMMITTED, self.key)

    def _log_run(self, now: datetime, kind: str, calls: CallLog, reply: Reply,
                 started: float) -> RunRow | None:
        if self.deps.on_run is None:
            return None
        try:
            return self.deps.on_run(self.key, now, kind, calls, reply,
                                    time.perf_counter() - started)
        except Exception:  # the run log never costs the customer their answer
            logger.bind(customer=mask(self.key.phone)).exception("run not recorded")
            return None

    def _prompt(self, now: datetime, instruction: str, said: list[MemoryMessage],
                name: str = "") -> list[dict[str, Any]]:
        """`name`: the one this turn's messages carry, stored only when the turn commits
        (issue #24: a customer's first named message read "Name: unknown yet")."""
        b = self.deps.budget
        business_text = self.deps.business_blocks(self.deps.business, now, b.featured)
        customer_text = prompt.customer_block(
            name or (self.customer.name if self.customer else ""), self.stage, self.profile,
            b.facts, b.summary)
        # The tool definitions go with every request: they take their share of the budget.
        fixed = estimate_tokens(business_text + prompt.RULES + customer_text + instruction
                                + self.deps.tools.specs_json())
        history_budget = max(200, min(b.history, b.context - fixed - 200))
        new = sum(estimate_tokens(m.text) for m in said)
        window = fit_window(self.window, max(0, history_budget - new)) if self.window else []
        replayed = {m.msg_id for m in said if m.msg_id}  # stored before a crash, asked again
        window = [m for m in window if not m.msg_id or m.msg_id not in replayed]
        return prompt.build(business_text, customer_text, window + said, instruction)

    async def _complete(self, messages: list[dict[str, Any]], now: datetime) -> Completion:
        """Call the model, running tool calls for up to MAX_TOOL_ROUNDS rounds."""
        deps = self.deps
        ctx = TurnContext(self.key, now, self.stage, deps.customers, deps.memory)
        total_in = total_out = 0
        tools = deps.tools.specs()
        for round_no in range(MAX_TOOL_ROUNDS + 1):
            offer = tools if round_no < MAX_TOOL_ROUNDS else None
            completion = await deps.llm.complete(messages, offer)
            total_in += completion.tokens_in
            total_out += completion.tokens_out
            if not completion.tool_calls or offer is None:
                break
            messages.append({"role": "assistant", "content": completion.text or None,
                             "tool_calls": [
                                 {"id": c.id, "type": "function",
                                  "function": {"name": c.name, "arguments": c.raw_arguments}}
                                 for c in completion.tool_calls]})
            for call in completion.tool_calls:
                result = await deps.tools.run(ctx, call.name, call.arguments)
                logger.bind(customer=mask(self.key.phone)).debug(
                    "tool {} → {}", call.name, result[:200])
                messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
        if not completion.text:  # still calling tools after the last round: no answer
            raise LLMError("the model gave no answer after its tool calls")
        if self.customer is not None and ctx.stage is not self.stage:
            self.customer.stage = ctx.stage.value
        completion.tokens_in, completion.tokens_out = total_in, total_out
        return completion
