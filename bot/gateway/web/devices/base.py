"""The linked device's store: the seam between the connection and where the keys live.

whatsmeow keeps a linked device (its keys, sessions, contacts) in a SQL store that
goneonize opens from the name given to `NewAClient` (goneonize main.go `getDB`): a SQLite
file, or PostgreSQL when the name starts with "postgres". One PostgreSQL store holds every
number's device, so the Go layer is told which one (`Opening`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Opening:
    """How the Go client opens the number's device (NewAClient's `name`, `jid`, `new_device`).

    `name`: the SQLite file, or a lib/pq URL holding the database password (never log it:
    `DeviceStore.where` is the shown form). `jid`: the device to resume, as whatsmeow
    stores it (`user:device@s.whatsapp.net`). `new_device`: pair a new device (a QR code).
    With neither, goneonize resumes the store's FIRST device (`GetFirstDevice`): right for a
    file of one device, another number's session in a shared store.
    """

    name: str
    jid: str | None = None
    new_device: bool = False
    linked: bool = False  # a login is stored: the client reconnects without a QR code


class DeviceStore(ABC):
    """Where one number's device lives. `open` before each client, `linked` once WhatsApp
    says which device it is, `forget` once WhatsApp logged it out."""

    where: str  # for logs and status lines: no secret in it

    @abstractmethod
    async def open(self) -> Opening: ...

    async def stored(self) -> bool:
        """Whether a login is stored (`wabot login` links only when none is)."""
        return (await self.open()).linked

    @abstractmethod
    async def linked(self, jid: str) -> None:
        """The device the live client connected as (ConnectedEv): resumed from now on."""

    @abstractmethod
    async def forget(self) -> list[str]:
        """Delete the logged-out device's keys; what was removed, for the log."""

    def scrub(self, text: str) -> str:
        """`text` (an error from Go or the database) without the store's secret."""
        return text

    def secure(self) -> None:
        """Tighten what the Go layer wrote (a file's mode); nothing for a database."""
        return None

    async def close(self) -> None:
        """Release what `open` took (a database connection)."""
        return None
