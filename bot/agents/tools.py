"""Tools the model can call. Each acts only on the customer of the turn (`TurnContext.key`):
no argument can name another customer."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from loguru import logger

from bot.agents.lifecycle import transition_error
from bot.models import CustomerKey, Stage
from bot.phones import mask
from bot.stores.customers import CustomerStore
from bot.stores.memory_base import Fact, MemoryStore, StageChange

FACT_CATEGORIES = ("interest", "objection", "preference", "detail", "purchase")


@dataclass(slots=True)
class TurnContext:
    key: CustomerKey
    now: datetime
    stage: Stage
    customers: CustomerStore
    memory: MemoryStore


ToolFn = Callable[[TurnContext, dict[str, Any]], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    run: ToolFn

    def spec(self) -> dict[str, Any]:
        return {"type": "function", "function": {
            "name": self.name, "description": self.description, "parameters": self.parameters}}


class ToolBox:
    """The tools offered to the model; later features register more."""

    def __init__(self, tools: list[Tool] | None = None) -> None:
        self._tools: dict[str, Tool] = {t.name: t for t in tools or []}
        self._specs: list[dict[str, Any]] | None = None
        self._specs_json = ""

    def add(self, tool: Tool) -> None:
        self._tools[tool.name] = tool
        self._specs = None

    def specs(self) -> list[dict[str, Any]]:
        """The definitions sent with every request: built once, not per turn (issue #23)."""
        if self._specs is None:
            self._specs = [t.spec() for t in self._tools.values()]
            self._specs_json = json.dumps(self._specs)
        return self._specs

    def specs_json(self) -> str:
        """`specs()` as JSON, for the prompt budget."""
        self.specs()
        return self._specs_json

    async def run(self, ctx: TurnContext, name: str, args: dict[str, Any]) -> str:
        """Run a tool; any failure becomes an error string the model can read, never a crash."""
        tool = self._tools.get(name)
        if tool is None:
            return json.dumps({"error": f"unknown tool {name!r}"})
        try:
            return await tool.run(ctx, args)
        except (KeyError, TypeError, ValueError) as exc:
            return json.dumps({"error": f"bad arguments for {name}: {exc}"})
        except Exception:
            logger.bind(customer=mask(ctx.key.phone)).exception("tool {} failed", name)
            return json.dumps({"error": f"{name} failed; carry on without it"})


def _text(args: dict[str, Any], name: str, limit: int) -> str:
    value = args.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string")
    return value.strip()[:limit]


async def remember_fact(ctx: TurnContext, args: dict[str, Any]) -> str:
    key = _text(args, "key", 60).lower().replace(" ", "_")
    category = str(args.get("category") or "detail")
    if category not in FACT_CATEGORIES:
        category = "detail"
    fact = Fact(key=key, value=_text(args, "value", 500), category=category, updated_at=ctx.now)
    await ctx.memory.merge_facts(ctx.key, [fact])
    return json.dumps({"ok": True, "remembered": key})


async def set_stage(ctx: TurnContext, args: dict[str, Any]) -> str:
    try:
        target = Stage(str(args.get("stage", "")).lower())
    except ValueError:
        return json.dumps({"error": f"stage must be one of {[s.value for s in Stage]}"})
    reason = str(args.get("reason") or "")
    problem = transition_error(ctx.stage, target, reason)
    if problem:
        return json.dumps({"error": problem})
    if target is not ctx.stage:
        await ctx.customers.set_stage(ctx.key, target)
        await ctx.memory.add_stage_change(ctx.key, StageChange(ctx.stage, target, reason, ctx.now))
        ctx.stage = target
    return json.dumps({"ok": True, "stage": target.value})


REMEMBER_FACT = Tool(
    "remember_fact",
    "Save something you learned about this customer so you remember it in every future "
    "conversation (their name, pet's name, size, budget, what they bought, objections, "
    "preferences). Saving an existing key updates it.",
    {"type": "object", "properties": {
        "key": {"type": "string", "description": "short slug, e.g. dog_name, shoe_size"},
        "value": {"type": "string"},
        "category": {"type": "string", "enum": list(FACT_CATEGORIES)},
    }, "required": ["key", "value"]},
    remember_fact,
)

SET_STAGE = Tool(
    "set_stage",
    "Move this customer to another lifecycle stage when something happened that proves it "
    "(lead → customer after a purchase; customer → active_user when they buy or use it "
    "regularly; churned when they say they are leaving).",
    {"type": "object", "properties": {
        "stage": {"type": "string", "enum": [s.value for s in Stage]},
        "reason": {"type": "string", "description": "what happened"},
    }, "required": ["stage", "reason"]},
    set_stage,
)


def default_tools() -> ToolBox:
    return ToolBox([REMEMBER_FACT, SET_STAGE])
