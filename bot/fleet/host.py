"""The numbers a `wabot run` serves besides the one it is configured for: the rows of the
`numbers` table (`wabot numbers add`), one App each on the process's shared stores, model
client and console, each holding its own lease (a standby waits for it, as for the
configured number).

The configured number's App owns the shared parts and the console; the Cloud API webhook
it serves reaches every number here by the `phone_number_id` each change names. A number
added while the daemon runs starts within `fleet.renew_seconds`; one removed stops as soon.
Each node serves its fair share (≈ numbers ÷ live nodes): when a node joins, the others
give numbers back to it, one a renewal period each.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from contextlib import suppress

from loguru import logger

from bot.app import App
from bot.fleet.numbers import NumberError, NumberStore, settings_for
from bot.gateway.base import Gateway
from bot.settings import Settings

GatewayFor = Callable[[Settings], Gateway]


class OtherNumbers:
    def __init__(self, gateway_for: GatewayFor, home: App | None = None) -> None:
        self.home = home  # the configured number's App, once built
        self.gateway_for = gateway_for
        self.apps: dict[str, App] = {}
        self._starting: set[asyncio.Task[None]] = set()
        self._closing = False

    def gateways(self) -> list[Gateway]:
        home = [self.home.unit.gateway] if self.home is not None else []
        return [*home, *(app.unit.gateway for app in self.apps.values())]

    async def start(self) -> None:
        """Build and start every other number (each waits for its lease in the background),
        then follow the table."""
        await self.refresh()
        assert self.home is not None
        task = asyncio.create_task(self._follow(), name="numbers-table")
        self._starting.add(task)

    async def _follow(self) -> None:
        assert self.home is not None
        every = self.home.shared.settings.fleet.renew_seconds
        while True:
            await asyncio.sleep(every)
            try:
                await self.refresh()
                await self.balance()
            except Exception as exc:  # the database is down: the leases say what to do
                logger.warning("numbers table not read: {}", exc)

    async def balance(self) -> None:
        """Beyond its fair share, this node gives one number back (stopped here, then
        waited for again as a standby): another live node takes it. The configured number
        stays (its App serves the console)."""
        assert self.home is not None and self.home.claim is not None
        if await self.home.claim.leases.over_share() <= 0:
            return
        held = [key for key, app in self.apps.items()
                if app.claim is not None and app.claim.lease is not None
                and app.claim.lease.valid]
        if not held:
            return
        key = sorted(held)[-1]
        logger.info("fleet: giving number {} back: this node serves more than its share", key)
        await self.apps.pop(key).stop()
        await self.refresh()  # waits for it again, as a standby

    async def refresh(self) -> None:
        """Start the numbers added to the table, stop those removed from it."""
        assert self.home is not None
        if self._closing:
            return
        shared = self.home.shared
        base = self.home.settings
        rows = await NumberStore(shared.db, shared.clock).all()
        keys = {row.key for row in rows}
        for key in [k for k in self.apps if k not in keys]:
            logger.info("number {} was removed: stopping it", key)
            self.home.consoles.remove(key)
            await self.apps.pop(key).stop()
        for row in rows:
            if row.key == base.tenant or row.key in self.apps:
                continue
            try:
                settings = settings_for(shared.settings, row, os.environ)
                settings.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
                app = App(settings, self.gateway_for(settings), shared=shared, fleet=True,
                          webhook_server=False)
            except (NumberError, ValueError, OSError) as exc:
                logger.error("number {} not started: {}", row.key, exc)
                continue
            self.apps[row.key] = app
            self.home.consoles.add(app.console, app.serving)  # the console serves it too
            logger.info("number {} ({}) starts here", row.key, row.transport)
            task = asyncio.create_task(self._start(row.key, app), name=f"number-{row.key}")
            self._starting.add(task)
            task.add_done_callback(self._starting.discard)

    async def _start(self, key: str, app: App) -> None:
        try:
            await app.start()
        except Exception:
            logger.exception("number {} could not start", key)

    async def stop(self) -> None:
        """Before the configured number's App (it owns the stores they share)."""
        self._closing = True  # the table is followed no more: nothing starts from now
        for task in list(self._starting):
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        await asyncio.gather(*(app.stop() for app in self.apps.values()),
                             return_exceptions=True)
