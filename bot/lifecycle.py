"""The customer lifecycle: LEAD → CUSTOMER → ACTIVE_USER → CHURNED, and which moves make sense."""

from __future__ import annotations

from bot.models import Stage

ORDER = (Stage.LEAD, Stage.CUSTOMER, Stage.ACTIVE_USER)

STAGE_MEANING = {
    Stage.LEAD: "has not bought yet",
    Stage.CUSTOMER: "has bought at least once",
    Stage.ACTIVE_USER: "buys or uses the product regularly",
    Stage.CHURNED: "has gone silent or left",
}


def transition_error(current: Stage, target: Stage, reason: str) -> str | None:
    """Why `current → target` is not allowed, or None when it is.

    Every change needs a reason (it is kept in the customer's history). Moving forward,
    churning, and coming back from churn are allowed; a buyer cannot become a lead again.
    """
    if len(reason.strip()) < 3:
        return "give a short reason for the stage change"
    if target is current:
        return None
    if target is Stage.CHURNED or current is Stage.CHURNED:
        return None
    if target is Stage.LEAD:
        return f"a {current.value} has already bought and cannot become a lead again"
    return None
