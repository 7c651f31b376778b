"""What WhatsApp currently forbids this number: a reach-out timelock or a temporary ban.

While one lasts, proactive messages (follow-ups) wait and the owner is told once; replies to
customers who wrote first go on where WhatsApp still lets them. The state is kept in a small
file in the state directory, so it survives a restart and `wabot status` can read it.

Where the facts come from (whatsmeow):
- temporary ban: connectionevents.go handleConnectFailure, reason 402 → events.TemporaryBan
  {Code, Expire}; neonize forwards it as TemporaryBanEv (Expire in seconds).
- reach-out timelock: notification.go handleMexNotification dispatches
  events.NotifyAccountReachoutTimelock {IsActive, TimeEnforcementEnds}, but neonize 0.5.2
  does not forward it (goneonize/main.go has no case for it; aioze/events.py no event). What
  does reach us is the send error: send.go SendMessage returns `ErrServerReturnedError`
  formatted "server returned error 463" for a message the timelock refused.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from loguru import logger

from bot.clock import Clock

FILE_NAME = "whatsapp-restrictions.json"
# A 463 says nothing about when the timelock ends: assume a day, renewed by every new 463
# (reports from the whatsmeow/Baileys trackers range from hours to a few days).
TIMELOCK_GUESS = timedelta(hours=24)
TIMELOCK = "timelock"
TEMPORARY_BAN = "temporary_ban"
LABELS = {TIMELOCK: "reach-out timelock (no messages to new contacts)",
          TEMPORARY_BAN: "temporary ban"}


@dataclass(frozen=True, slots=True)
class Restriction:
    kind: str  # TIMELOCK | TEMPORARY_BAN
    until: datetime
    detail: str = ""

    def line(self) -> str:
        extra = f" ({self.detail})" if self.detail else ""
        return f"{LABELS.get(self.kind, self.kind)} until {self.until:%Y-%m-%d %H:%M} UTC{extra}"


Listener = Callable[[Restriction], None]


class Restrictions:
    def __init__(self, clock: Clock, state_dir: Path | None = None) -> None:
        self.clock = clock
        self.path = state_dir / FILE_NAME if state_dir is not None else None
        self.listeners: list[Listener] = []
        self._active: dict[str, Restriction] = {r.kind: r for r in read(self.path)}

    def impose(self, kind: str, until: datetime, detail: str = "") -> None:
        """Record a restriction; listeners (owner alert, STATUS) hear of new or longer ones."""
        known = self._active.get(kind)
        restriction = Restriction(kind, until, detail)
        self._active[kind] = restriction
        self._save()
        if known is not None and known.until >= until:
            return
        logger.bind(restriction=kind).error("WhatsApp restricts this number: {}",
                                            restriction.line())
        for listener in self.listeners:
            try:
                listener(restriction)
            except Exception:
                logger.opt(exception=True).warning("a restriction listener failed")

    def lift(self, kind: str) -> None:
        if self._active.pop(kind, None) is not None:
            self._save()

    def active(self) -> list[Restriction]:
        now = self.clock.now()
        expired = [k for k, r in self._active.items() if r.until <= now]
        for kind in expired:
            self.lift(kind)
        return sorted(self._active.values(), key=lambda r: r.until)

    def proactive_until(self) -> datetime | None:
        """Until when proactive messages must wait; None when they may go."""
        active = self.active()
        return max(r.until for r in active) if active else None

    def _save(self) -> None:
        if self.path is None:
            return
        try:
            data = [{"kind": r.kind, "until": r.until.isoformat(), "detail": r.detail}
                    for r in self._active.values()]
            tmp = self.path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f)
            tmp.replace(self.path)
        except OSError as exc:
            logger.warning("could not record the WhatsApp restriction in {}: {}", self.path, exc)


def read(path: Path | None, now: datetime | None = None) -> list[Restriction]:
    """The restrictions recorded in the state directory (still active at `now`, if given)."""
    if path is None or not path.is_file():
        return []
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
        found = [Restriction(r["kind"], datetime.fromisoformat(r["until"]), r.get("detail", ""))
                 for r in rows]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("ignoring the unreadable restriction file {}: {}", path, exc)
        return []
    return [r for r in found if now is None or r.until > now]
