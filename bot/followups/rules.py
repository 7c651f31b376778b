"""The lifecycle rules of the config (`[[followups.rules]]`), refreshed after every inbound turn.

A customer's message also drops what it made stale: follow-ups cancelled by a reply, when
`on_reply = "drop"`, and "silent" rules of a stage the customer has left.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from bot.followups.ports import Scheduling
from bot.followups.store import AGENT, job_id
from bot.models import CustomerKey, Stage
from bot.settings import FollowUpRule


class RuleRefresh:
    def __init__(self, followups: Scheduling) -> None:
        self.followups = followups

    async def on_inbound(self, key: CustomerKey) -> None:
        """After a customer's turn: drop what their message made stale, refresh the rules
        ("silent for 24 h" counts from their last message), start the stage rules."""
        f = self.followups
        customer = await f.customers.get(key, max_age=2.0)  # the turn just touched it
        if customer is None or customer.opted_out:
            return
        now = f.clock.now()
        last = customer.last_inbound or now
        kinds = [AGENT, *f.rules]  # every turn: look up known ids, never scan the table
        pending = {fu.kind: fu for fu in await f.pending(key.phone, kinds=kinds)}
        stale = [fu.job_id for fu in pending.values()
                 if f.policy.cancelled_by_reply(fu) and last > fu.scheduled_at
                 and f.s.on_reply == "drop"]
        stale += [pending[r.name].job_id for r in f.rules.values()
                  if r.name in pending and r.when == "silent" and r.stage != customer.stage]
        # A silent rule of their stage is replaced just below: one write, not two.
        renewed = {job_id(key.tenant, key.phone, r.name) for r in f.rules.values()
                   if r.when == "silent" and r.stage == customer.stage}
        stale = [job for job in stale if job not in renewed]
        if stale:
            await asyncio.to_thread(f.remove_ids, stale)
        for rule in f.rules.values():
            if rule.stage != customer.stage:
                continue
            if rule.when == "silent":
                await f.schedule(key, rule.name, rule.reason,
                                 last + timedelta(hours=rule.after_hours), now)
            elif rule.name not in pending:
                entered = await self._entered(key, rule)
                if entered is not None and entered >= last:  # the stage changed this turn
                    await f.schedule(key, rule.name, rule.reason,
                                     entered + timedelta(hours=rule.after_hours), now)

    async def _entered(self, key: CustomerKey, rule: FollowUpRule) -> datetime | None:
        changes = [c.at for c in (await self.followups.memory.profile(key)).stages
                   if c.to_stage is Stage(rule.stage)]
        return max(changes, default=None)
