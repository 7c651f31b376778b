"""The seam through which the pipeline tells the owner something at once.

The reliability paths (the journal unreachable, a customer at the daily cap) call
`await alert(subject, text)`; `bot.events.alerts.Alerts` is what answers it in the daemon
(the owner's own chat, the `owner.alert` webhook and the console page).
"""

from __future__ import annotations

from typing import Protocol


class AlertOwner(Protocol):
    async def __call__(self, subject: str, text: str) -> bool: ...
