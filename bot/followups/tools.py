"""The agent's follow-up tools: `schedule_follow_up` and `cancel_follow_up`."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from bot.agents.tools import Tool, TurnContext
from bot.followups.ports import Scheduling
from bot.followups.store import AGENT
from bot.followups.timing import parse_when


class FollowUpTools:
    def __init__(self, followups: Scheduling) -> None:
        self.followups = followups

    def tools(self) -> list[Tool]:
        return [Tool("schedule_follow_up", SCHEDULE_DESCRIPTION, SCHEDULE_PARAMETERS,
                     self._schedule),
                Tool("cancel_follow_up", CANCEL_DESCRIPTION, CANCEL_PARAMETERS, self._cancel)]

    async def _schedule(self, ctx: TurnContext, args: dict[str, Any]) -> str:
        when, reason = str(args.get("when") or "").strip(), str(args.get("reason") or "").strip()
        if not when or not reason:
            raise ValueError("give both `when` and `reason`")
        customer = await ctx.customers.get(ctx.key)
        if customer is not None and customer.opted_out:
            return json.dumps({"error": "this customer opted out of messages we start; "
                                        "do not promise to write first"})
        tz = await self.followups.policy.timezone_of(ctx.key)
        due = parse_when(when, ctx.now, tz)
        if due <= ctx.now:
            local_now = ctx.now.astimezone(tz)
            raise ValueError(f"{when!r} is in the past (now is {local_now:%Y-%m-%d %H:%M})")
        max_days_ahead = self.followups.s.max_days_ahead
        if due - ctx.now > timedelta(days=max_days_ahead):
            raise ValueError(f"at most {max_days_ahead} days ahead")
        await self.followups.schedule(ctx.key, AGENT, reason[:500], due, ctx.now)
        return json.dumps({"ok": True, "due": f"{due.astimezone(tz):%A %Y-%m-%d %H:%M}",
                           "timezone": tz.key, "note": "sent during sending hours only; "
                           "dropped if the customer writes first"})

    async def _cancel(self, ctx: TurnContext, args: dict[str, Any]) -> str:
        kind = str(args.get("kind") or AGENT)
        if kind != "all" and kind != AGENT and kind not in self.followups.rules:
            raise ValueError(f"kind must be 'agent' or 'all', not {kind!r}")
        removed = await self.followups.cancel(ctx.key, None if kind == "all" else kind)
        return json.dumps({"ok": True, "cancelled": removed})


SCHEDULE_DESCRIPTION = (
    "Come back to this customer later on your own, like a good salesperson: 'did the size "
    "fit?' in 3 days, or after the payday they mentioned. One pending follow-up per customer "
    "(a new one replaces it). It goes out during sending hours, and is dropped if the "
    "customer writes first: schedule it again then if it still matters. Times are the "
    "customer's local time once you saved remember_fact key 'timezone' (an IANA name such "
    "as Europe/Madrid), else the business's.")
SCHEDULE_PARAMETERS = {"type": "object", "properties": {
    "when": {"type": "string", "description": "'in 3 days', 'in 2 hours', 'tomorrow', "
             "'next week', or a local date and time like 2026-03-14 10:00"},
    "reason": {"type": "string", "description": "what to follow up on and why, for your "
               "future self"},
}, "required": ["when", "reason"]}
CANCEL_DESCRIPTION = (
    "Cancel the follow-up you scheduled with this customer (e.g. they said they will write "
    "when ready). kind 'all' also cancels the automatic check-ins.")
CANCEL_PARAMETERS = {"type": "object", "properties": {
    "kind": {"type": "string", "enum": [AGENT, "all"]}}}
