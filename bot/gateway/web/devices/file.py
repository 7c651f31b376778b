"""The device in a SQLite file of the state directory: one machine's (the default)."""

from __future__ import annotations

from pathlib import Path

from loguru import logger

from bot.gateway.web import session
from bot.gateway.web.devices.base import DeviceStore, Opening


class FileStore(DeviceStore):
    """`path`, owner-only. `kept`: the database is PostgreSQL, but this file held a login
    when the number started (see `base.device_store_for`): say once that the session
    cannot follow the number to another node, and how to move it."""

    def __init__(self, path: Path, *, kept: bool = False) -> None:
        self.path = path
        self.where = str(path)
        self.kept = kept
        self._untold = kept

    def holds_login(self) -> bool:
        return self.path.is_file() and self.path.stat().st_size > 0

    async def stored(self) -> bool:
        return self.holds_login()  # without creating the file (nor the state directory)

    async def open(self) -> Opening:
        if self._untold:
            self._untold = False
            logger.warning(
                "the WhatsApp session of this number is the file {} on this machine: it "
                "stays here and cannot move with the number to another node of the fleet. "
                "To keep it in the database instead, unlink this device (phone: WhatsApp → "
                "Linked devices → this device → Log out), then link again (the QR code on "
                "the next start, or `wabot login`); whatsapp.session_store = \"file\" keeps "
                "the file and silences this", self.path)
        # The file exists (empty, 0600) before Go opens it: never readable by others.
        linked = session.prepare_session_file(self.path)
        return Opening(str(self.path), linked=linked)

    async def linked(self, jid: str) -> None:
        return None  # a file holds one device: goneonize opens the first

    async def forget(self) -> list[str]:
        return [str(p) for p in session.remove_session_files(self.path)]

    def secure(self) -> None:
        session.secure_session_files(self.path)
