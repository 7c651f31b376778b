"""One customer's agent: builds the prompt, calls the model, runs tools, remembers both sides."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from loguru import logger

from bot.agents import prompt
from bot.agents.tools import ToolBox, TurnContext
from bot.business import Business
from bot.llm import LLM, Completion, LLMError
from bot.models import CustomerKey, MemoryMessage, Role, Stage
from bot.phones import mask
from bot.stores.customers import Contact, Customer, CustomerStore
from bot.stores.memory_base import MemoryStore, Profile, estimate_tokens

MAX_TOOL_ROUNDS = 3


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
    """What every agent shares: built once by the App."""

    customers: CustomerStore
    memory: MemoryStore
    llm: LLM
    tools: ToolBox
    business: Business
    budget: Budget = field(default_factory=Budget)
    failure_reply: str = "Sorry, I'm having trouble answering right now."
    after_turn: Callable[[CustomerKey], None] | None = None  # summaries, insights (background)


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


class CustomerAgent:
    """Small on purpose: thousands stay cached. History lives in the memory store."""

    __slots__ = ("customer", "deps", "key", "profile")

    def __init__(self, key: CustomerKey, deps: AgentDeps, customer: Customer | None,
                 profile: Profile) -> None:
        self.key = key
        self.deps = deps
        self.customer = customer
        self.profile = profile

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
        """Answer a turn; both sides are stored together once the model has answered.

        Nothing is lost on a crash mid-turn: the inbound messages are in the journal first
        and are replayed after restart (their ids make the replay idempotent). The caller
        records usage (`Reply.tokens_*`) with what it delivered, in one write.
        """
        deps = self.deps
        inbound = sum(1 for t in lines if t.msg_id)
        self.customer = await deps.customers.touch(self.key, contact, now, inbound=inbound)
        said = [MemoryMessage(Role.CUSTOMER, t.text, t.at, msg_id=t.msg_id) for t in lines]
        self.profile = await deps.memory.profile(self.key, with_stages=False)
        messages = await self._prompt(now, instruction, said)
        try:
            completion = await self._complete(messages, now)
        except LLMError as exc:
            logger.bind(customer=mask(self.key.phone)).warning("turn failed: {}", exc)
            if said:
                await deps.memory.append(self.key, said)
            return Reply(deps.failure_reply, failed=True)
        text = completion.text
        answer = [MemoryMessage(Role.AGENT, text, now, kind=kind)] if text else []
        if said or answer:
            await deps.memory.append(self.key, said + answer)
        if deps.after_turn is not None:
            deps.after_turn(self.key)
        return Reply(text, tokens_in=completion.tokens_in, tokens_out=completion.tokens_out)

    async def _prompt(self, now: datetime, instruction: str,
                      said: list[MemoryMessage]) -> list[dict[str, Any]]:
        b = self.deps.budget
        business_text = prompt.business_block(self.deps.business, now, b.featured)
        customer_text = prompt.customer_block(
            self.customer.name if self.customer else "", self.stage, self.profile,
            b.facts, b.summary)
        fixed = estimate_tokens(business_text + prompt.RULES + customer_text + instruction)
        history_budget = max(200, min(b.history, b.context - fixed - 200))
        new = sum(estimate_tokens(m.text) for m in said)
        window = await self.deps.memory.window(
            self.key, max(0, history_budget - new), after_seq=self.profile.summarized_upto)
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
        if self.customer is not None and ctx.stage is not self.stage:
            self.customer.stage = ctx.stage.value
        completion.tokens_in, completion.tokens_out = total_in, total_out
        return completion
