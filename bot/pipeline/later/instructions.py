"""Turns that are not an ordinary answer: a flood, or messages answered late (issue #16).

- A flood (hundreds of held messages joining one turn) must not overflow the prompt: the
  newest lines that fit half the history budget are the turn; the earlier ones are stored
  in history first, so the agent's window shows as many as fit, and the agent is told.
- Messages answered after the daily cap or a model outage carry an instruction saying so,
  with when they were written, so the agent acknowledges the delay.
"""

from __future__ import annotations

from datetime import datetime, tzinfo

from bot.agents.agent import CustomerAgent, Turn
from bot.business import local_time
from bot.models import Role
from bot.stores.customers import Contact
from bot.stores.memory_base import estimate_tokens

# A retried turn that failed again, in journals written before retries went on until a turn
# succeeded (issue #24): never retried.
FAILED_FINAL = "failed_final"

FLOOD = ("The customer sent {n} messages within a short time. The newest {k} are the last "
         "lines above; the earlier ones are in the conversation as far as they fit. Answer "
         "once, to what matters in them.")
AFTER_CAP = ("These messages were written {when} and waited because this customer's daily "
             "limit had been reached. Answer them now; start by apologising briefly for the "
             "late answer.")
AFTER_OUTAGE = ("These messages were written {when}, when you could not answer (the service "
                "was down) and the customer got an apology. Answer them now; start by "
                "saying briefly that you are sorry for the delay.")


async def fit_flood(agent: CustomerAgent, lines: list[Turn]) -> tuple[list[Turn], str]:
    """The lines the model reads for this turn, and what it is told about the rest."""
    budget = agent.deps.budget.history // 2
    if sum(estimate_tokens(t.text) for t in lines) <= budget:
        return lines, ""
    keep, used = 0, 0
    for t in reversed(lines):
        used += estimate_tokens(t.text)
        if keep and used > budget:
            break
        keep += 1
    if keep == len(lines):  # one long line: the prompt budget clips it, not this
        return lines, ""
    earlier, newest = lines[:-keep], lines[-keep:]
    await agent.remember(Role.CUSTOMER, earlier)  # ids make a second write a no-op
    # The turn counts the lines it answers; these are the customer's messages too.
    await agent.deps.customers.touch(agent.key, Contact(), earlier[-1].at, inbound=len(earlier))
    return newest, FLOOD.format(n=len(lines), k=len(newest))


def late_instruction(template: str, first: datetime, zone: tzinfo) -> str:
    """`template` with when the first waiting message was written, in the business's time."""
    return template.format(when=f"at {local_time(first, zone)}")
