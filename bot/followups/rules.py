"""The lifecycle rules of the config (`[[followups.rules]]`), refreshed after every inbound turn.

A customer's message also drops what it made stale: follow-ups cancelled by a reply, when
`on_reply = "drop"`, and "silent" rules of a stage the customer has left.

A "silent" rule counts from the customer's last message, so every message moves it. Moving
it is a job-table write (and a wake-up of APScheduler) per turn, the costliest part of a warm
turn after the model call; so a job that would move by less than `renew_slack` stays where
it is. It then falls due up to that much early, and the policy moves it to the customer's
last message plus the rule's hours (`Policy`), which is exact whatever was skipped here.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.followups.ports import Scheduling
from bot.followups.store import AGENT, FollowUp
from bot.models import CustomerKey, Stage
from bot.settings import FollowUpRule

RENEW_SLACK = timedelta(minutes=15)


def renew_slack(rule: FollowUpRule) -> timedelta:
    """How far a silent rule's job may lag its true time before it is rewritten."""
    return min(RENEW_SLACK, timedelta(hours=rule.after_hours) / 20)


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
        if stale:
            await f.remove(stale)
        for rule in f.rules.values():
            if rule.stage != customer.stage:
                continue
            if rule.when == "silent":
                due = last + timedelta(hours=rule.after_hours)
                if not _close_enough(pending.get(rule.name), rule, due):
                    await f.schedule(key, rule.name, rule.reason, due, now)
            elif rule.name not in pending:
                entered = await self._entered(key, rule)
                if entered is not None and entered >= last:  # the stage changed this turn
                    await f.schedule(key, rule.name, rule.reason,
                                     entered + timedelta(hours=rule.after_hours), now)

    async def _entered(self, key: CustomerKey, rule: FollowUpRule) -> datetime | None:
        changes = [c.at for c in (await self.followups.memory.profile(key)).stages
                   if c.to_stage is Stage(rule.stage)]
        return max(changes, default=None)


def _close_enough(held: FollowUp | None, rule: FollowUpRule, due: datetime) -> bool:
    """The job already pending for this silent rule falls due at most `renew_slack` before
    `due` (never after it), with the rule's current wording."""
    if held is None or held.run_at is None or held.reason != rule.reason:
        return False
    return held.run_at <= due <= held.run_at + renew_slack(rule)
