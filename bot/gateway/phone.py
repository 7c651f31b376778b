"""Is the business phone still around? WhatsApp unlinks linked devices (wabot among them)
when the primary phone stays offline for about 14 days (WhatsApp's help centre, "About
linked devices"); the daemon then stops with exit status 78 and needs a new `wabot login`.

whatsmeow has no event for "the phone came online": the one sign that reaches a linked
device is a message the phone itself sent (from-me, sender device 0: the primary device of
a multi-device JID; companion devices have a non-zero device id, whatsmeow types/jid.go).
The owner typing to a customer or in "Message yourself" on the phone is such a sign. So the
warning means "no sign", not "offline": a phone that is online but never used to write is
not seen. The last sign is kept in the state directory across restarts; before any, the
count starts when this watch first ran.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from loguru import logger

from bot.clock import Clock
from bot.owner_alert import AlertOwner

FILE_NAME = "whatsapp-phone-seen"
EXPIRY_DAYS = 14


class PhoneWatch:
    def __init__(self, clock: Clock, state_dir: Path, warn_after: timedelta) -> None:
        self.clock = clock
        self.path = state_dir / FILE_NAME
        self.warn_after = warn_after
        self.seen_at = self._read() or self._write(clock.now())

    def seen(self, sender_device: int, from_me: bool) -> None:
        """A message event: the phone's own (device 0, from us) resets the count."""
        if from_me and sender_device == 0:
            self._write(self.clock.now())

    def silent_for(self) -> timedelta:
        return self.clock.now() - self.seen_at

    async def check(self, alert: AlertOwner) -> bool:
        """Warn the owner when the phone has shown no sign for `warn_after`; True if warned."""
        quiet = self.silent_for()
        if quiet < self.warn_after:
            return False
        left = max(0, EXPIRY_DAYS - quiet.days)
        await alert("phone_unseen",
                    f"no sign of the business phone for {quiet.days} days: WhatsApp unlinks "
                    f"wabot after about {EXPIRY_DAYS} days without the phone (about {left} "
                    "left). Open WhatsApp on the phone and send anything to yourself in "
                    "\"Message yourself\": that shows it is alive and resets this count.")
        return True

    async def run(self, alert: AlertOwner, every: float = 6 * 3600) -> None:
        """Check when the silence can reach `warn_after`, then every `every` while it
        lasts (the owner is reminded); a sign meanwhile only moves the check later."""
        if self._read() is None:  # the state directory exists now: start the count
            self._write(self.seen_at)
        while True:
            try:
                await self.check(alert)
            except Exception:
                logger.opt(exception=True).warning("the phone watch failed")
            left = (self.warn_after - self.silent_for()).total_seconds()
            await self.clock.sleep(left if left > 0 else every)

    def _read(self) -> datetime | None:
        try:
            return datetime.fromisoformat(self.path.read_text(encoding="utf-8").strip())
        except (OSError, ValueError):
            return None

    def _write(self, at: datetime) -> datetime:
        self.seen_at = at
        try:
            self.path.write_text(at.isoformat(), encoding="utf-8")
        except OSError as exc:
            logger.debug("could not record the phone's last sign in {}: {}", self.path, exc)
        return at
