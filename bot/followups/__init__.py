"""Proactive follow-ups: the agent comes back at the right moment, and it survives restarts.

Who schedules: the agent (tools `schedule_follow_up`, `cancel_follow_up`: `tools.py`) and the
lifecycle rules of the config (`[[followups.rules]]`: `rules.py`), refreshed after every
inbound turn. Jobs live in APScheduler 3.11's SQLAlchemyJobStore, one table per tenant, one
job per customer and kind under a fixed id `followup:<tenant>:<phone>:<kind>` (`store.py`).

When one is due, `fire` re-checks everything (`policy.py`: the customer still exists, has not
opted out, is not paused, has not written since, it is sending time in their timezone —
`timing.py` —, the caps hold) and then hands the turn to `Inbox.proactive`: the customer's
agent writes it with its full memory, the Presenter delivers it, history records it as
"followup". The drivers, misfires and the job function are in `scheduler.py`.

`run_followup` must stay importable from this package: every stored job refers to it as
`bot.followups:run_followup` (`JOB_FUNC`).
"""

from bot.followups.policy import Verdict
from bot.followups.scheduler import JOB_FUNC, FollowUpScheduler, run_followup
from bot.followups.store import (
    AGENT,
    COUNTED,
    SENT,
    FollowUp,
    FollowUpSent,
    JobTable,
    erase_tenant_followups,
    followup_id,
    job_id,
    job_table_name,
    parse_followup_id,
    privacy_holder,
)
from bot.followups.timing import SLOT_SEARCH_DAYS, Span, next_slot, parse_when, sending_hours
from bot.followups.tools import (
    CANCEL_DESCRIPTION,
    CANCEL_PARAMETERS,
    SCHEDULE_DESCRIPTION,
    SCHEDULE_PARAMETERS,
)

__all__ = [
    "AGENT",
    "CANCEL_DESCRIPTION",
    "CANCEL_PARAMETERS",
    "COUNTED",
    "JOB_FUNC",
    "SCHEDULE_DESCRIPTION",
    "SCHEDULE_PARAMETERS",
    "SENT",
    "SLOT_SEARCH_DAYS",
    "FollowUp",
    "FollowUpScheduler",
    "FollowUpSent",
    "JobTable",
    "Span",
    "Verdict",
    "erase_tenant_followups",
    "followup_id",
    "job_id",
    "job_table_name",
    "next_slot",
    "parse_followup_id",
    "parse_when",
    "privacy_holder",
    "run_followup",
    "sending_hours",
]
