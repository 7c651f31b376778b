"""Which `Console` answers for which number: the console and the API of the whole fleet.

The configured number's console is the home: the unscoped routes (`/api/v1/customers`,
`/customers`) are its. Every number of the `numbers` table is reached by its key
(`/api/v1/numbers/{key}/customers`, `/n/{key}/customers`):

- a number this process runs (served, or waited for as a standby) answers with its own
  App's console (`add`, by `bot.fleet.host.OtherNumbers`);
- any other row of the table answers with a console on the shared stores, read-only as
  far as WhatsApp goes: its data is there (the tenant is the number's key) whoever serves
  it, so reads, pauses and resumes work from any node (`bot.fleet.changes` tells the owner).

Sending as the business needs the number's WhatsApp connection: on a node that does not
serve the number it is forwarded to the node that does (`bot.web.forward`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from loguru import logger

from bot.business import BusinessError, load_business
from bot.events.alerts import Alerts
from bot.events.hub import Events
from bot.events.outbox import Outbox
from bot.fleet.tables import NumberRow
from bot.followups.store import PendingJobs
from bot.gateway.base import Gateway, NotOwner
from bot.messages import language_code
from bot.web.console import Console, NotFound


class Elsewhere(Gateway):
    """The transport of a number this process does not run: nothing leaves from here."""

    def __init__(self, number: str) -> None:
        super().__init__()
        self.number = number

    @property
    def status(self) -> str | None:
        return "served by another node of the fleet"

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def _send_text(self, chat: str, text: str) -> str:
        raise NotOwner(f"number {self.number} is not served by this node")

    async def _mark_read(self, chat: str, msg_ids: list[str], sender: str = "") -> None:
        raise NotOwner(f"number {self.number} is not served by this node")

    async def _set_typing(self, chat: str, typing: bool) -> None:
        raise NotOwner(f"number {self.number} is not served by this node")


@dataclass(frozen=True, slots=True)
class Local:
    console: Console
    serving: Callable[[], bool]  # this process holds the number now (sends go out here)


class Consoles:
    def __init__(self, home: Console, serving: Callable[[], bool] = lambda: True,
                 node: str = "") -> None:
        self.home = home
        self.node = node  # this process in the fleet (named in forwarded sends)
        self._local: dict[str, Local] = {home.tenant: Local(home, serving)}
        self._remote: dict[str, Console] = {}

    def add(self, console: Console, serving: Callable[[], bool]) -> None:
        """A number this process runs (its App's console)."""
        self._local[console.tenant] = Local(console, serving)
        self._forget(console.tenant)

    def remove(self, key: str) -> None:
        if key != self.home.tenant:
            self._local.pop(key, None)

    def serving(self, key: str) -> bool:
        local = self._local.get(key)
        return local is not None and local.serving()

    def runs(self, key: str) -> bool:
        """This process runs the number (serving it, or waiting for it as a standby)."""
        return key in self._local

    def served(self) -> list[Console]:
        """The consoles of the numbers this process serves now, the home first."""
        return [local.console for local in self._local.values() if local.serving()]

    async def rows(self) -> list[NumberRow]:
        assert self.home.numbers is not None
        return await self.home.numbers.all()

    async def keys(self) -> list[str]:
        """Every number: the home first, then the table's and this process's by key."""
        others = {row.key for row in await self.rows()} | set(self._local)
        others.discard(self.home.tenant)
        return [self.home.tenant, *sorted(others)]

    async def get(self, key: str) -> Console:
        """The console of number `key`; `NotFound` when the fleet has no such number."""
        local = self._local.get(key)
        if local is not None:
            return local.console
        assert self.home.numbers is not None
        row = await self.home.numbers.get(key)
        if row is None:
            self._forget(key)
            raise NotFound(key="no_number", number=key)
        if key not in self._remote:
            self._remote[key] = self._elsewhere(row)
        return self._remote[key]

    def close(self) -> None:
        """The job tables read for numbers run elsewhere (their connections)."""
        for key in list(self._remote):
            self._forget(key)

    def _forget(self, key: str) -> None:
        gone = self._remote.pop(key, None)
        if gone is not None and isinstance(gone.followups, PendingJobs):
            gone.followups.close()

    def _elsewhere(self, row: NumberRow) -> Console:
        """A console on the shared stores for a number this process does not run: the
        home's settings, the time zone and language of the number's business profile when
        this node can read it (the home's otherwise), its follow-ups as its job table holds
        them."""
        home, key = self.home, row.key
        settings = home.settings.model_copy(update={"tenant": key})
        gateway = Elsewhere(key)
        events = Events()
        return replace(
            home, settings=settings, gateway=gateway, events=events,
            alerts=Alerts(settings.alerts, events, gateway, home.clock),
            outbox=Outbox(home.customers.db, key, settings.webhooks, home.clock),
            followups=PendingJobs(home.settings.sql_url, key), live=None,
            **_profile_of(row, home))


def _profile_of(row: NumberRow, home: Console) -> dict[str, Any]:
    """The zone and the language of the number's business profile (the home's when this
    node cannot read it)."""
    default = {"zone": home.zone, "language": home.language}
    if not row.business_file:
        return default
    try:
        business = load_business(Path(row.business_file))
    except (BusinessError, OSError, ValueError) as exc:
        logger.warning("number {}: business profile {} not read here ({}): its times are "
                       "shown in the configured number's zone and language", row.key,
                       row.business_file, exc)
        return default
    return {"zone": business.tz, "language": language_code(business.language)}
