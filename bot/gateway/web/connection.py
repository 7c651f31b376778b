"""The WhatsApp Web connection: connect, probe, back off, log in, reconnect, give up.

`Connection` owns neonize's Go client and its lifecycle; `NeonizeGateway` composes it and
does the sending and receiving. What the Go layer does to us is in `goclient`; reaching
WhatsApp before Go may try is `probe`; the QR and pair-code login is `pairing`.

The state (the live client, the restart future, the exit reason) is here, and so is the
event that moves most of it, ConnectedEv. The other events' handlers move it through the
few transitions this class offers (finishing, restarting after a wait, the next backoff):
the ones
that end the connection are `exits`, the ones it waits out are `outages`, and WhatsApp's
delivery of what it kept while we were offline is `offline`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
from collections.abc import Awaitable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from loguru import logger
from neonize.aioze.events import (
    ClientOutdatedEv,
    ConnectedEv,
    ConnectFailureEv,
    DisconnectedEv,
    KeepAliveRestoredEv,
    KeepAliveTimeoutEv,
    LoggedOutEv,
    MessageEv,
    OfflineSyncCompletedEv,
    OfflineSyncPreviewEv,
    PairStatusEv,
    StreamReplacedEv,
    TemporaryBanEv,
)
from neonize.utils.jid import Jid2String

from bot.clock import Clock
from bot.gateway.base import ExitReason, GatewayError, StatusListener
from bot.gateway.restrictions import Restrictions
from bot.gateway.web import qr, session
from bot.gateway.web.devices.base import DeviceStore
from bot.gateway.web.devices.file import FileStore
from bot.gateway.web.exits import Exits, GatewayExit
from bot.gateway.web.goclient import EventHandler, GoClient, GoGate, call_go, guarded
from bot.gateway.web.offline import OfflineSync
from bot.gateway.web.outages import Outages
from bot.gateway.web.pairing import Pairing
from bot.gateway.web.probe import Probe
from bot.gateway.web.tuning import Tuning
from bot.phones import PhoneError, from_whatsapp, mask
from bot.settings import WhatsAppSettings

T = TypeVar("T")


class Connection:
    """One linked device's connection to WhatsApp, kept up in a background task.

    `start()` returns at once. Watch `connected` (an `asyncio.Event`), `connected_as` (our
    number, E.164), `status` (one line, as systemd's STATUS shows it) and `finished`, a
    future resolved with a `GatewayExit` when the connection has given up for good.
    `client` is the live Go client, or None. Messages go to `on_message`.
    """

    def __init__(self, tenant: str, settings: WhatsAppSettings, clock: Clock, *,
                 state_dir: Path, on_message: EventHandler,
                 on_status: StatusListener | None = None, tuning: Tuning | None = None,
                 devices: DeviceStore | None = None) -> None:
        t = tuning or Tuning()
        self.tenant = tenant
        self.state_dir = state_dir
        self.session_path = state_dir / settings.session_file
        self.devices = devices or FileStore(self.session_path)
        self.qr_png_path = state_dir / qr.QR_PNG_NAME
        self.connected = asyncio.Event()
        self.connected_as: str | None = None
        self.status = "not started"
        self._failed_why = ""  # why the last connect failed, for the next STATUS line
        self.probe = Probe(clock, (settings.probe_host, settings.probe_port), t.probe_timeout,
                           (settings.backoff_initial, settings.backoff_cap, t.backoff_jitter),
                           t.rng or random.Random(), lambda line: self.report(line, log=False))
        self._clock = clock
        self._on_message = on_message
        self._call_timeout = settings.call_timeout
        self._on_status = on_status
        self._factory = t.client_factory
        self._console = t.console
        self.gate = GoGate()
        self.linked = False  # this client has had its first ConnectedEv
        self._go_task: asyncio.Future[Any] | None = None
        self._restart: asyncio.Future[float] | None = None
        self._runner: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._finished: asyncio.Future[ExitReason] | None = None
        self._exit: GatewayExit | None = None
        self._generation = 0
        self._failures = 0
        self.pairing = Pairing(self, clock, settings.pair_phone, t.login_timeout)
        self.exits = Exits(self._finish)
        self.outages = Outages(self, clock)
        self.offline = OfflineSync(self.is_current)
        self.restrictions: Restrictions | None = None
        self.status_listener: StatusListener | None = None  # the unit's (console)

    @property
    def client(self) -> GoClient | None:
        return self.gate.client

    def is_current(self, client: GoClient | None) -> bool:
        """Whether an event comes from the live client, not one being or already stopped."""
        return client is not None and client is self.gate.client and self._exit is None

    # ── lifecycle ──────────────────────────────────────────────────────────────────────

    @property
    def finished(self) -> asyncio.Future[ExitReason]:
        if self._finished is None:
            self._finished = asyncio.get_running_loop().create_future()
        return self._finished

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The background connection task (for tests and diagnostics)."""
        return self._runner

    async def start(self) -> None:
        if self._runner is not None:
            return
        if self._exit is not None:
            raise GatewayError(f"this gateway has finished ({self._exit}): make a new one")
        _ = self.finished  # bind it to the running loop now
        session.prepare_state_dir(self.state_dir)
        self._runner = asyncio.create_task(self._run(), name=f"whatsapp:{self.tenant}")

    async def stop(self) -> None:
        self._exit = self._exit or GatewayExit.STOPPED
        await self._shutdown()
        await self.devices.close()
        if not self.finished.done():
            self.finished.set_result(self._exit)

    async def _run(self) -> None:
        delay = 0.0
        try:
            # Never linked: a person is watching for the QR code, so say why it is not
            # there yet and retry sooner. Each attempt's opening answers again.
            with contextlib.suppress(Exception):  # the database is down: the attempt says so
                self.probe.first_start = not await self.devices.stored()
            while True:
                if delay > 0:
                    why = f"{self._failed_why}; " if self._failed_why else ""
                    self.report(f"offline: {why}reconnecting in {delay:.0f} s")
                    await self._clock.sleep(delay)
                await self.probe.wait_until_reachable()
                delay = await self._connect_once()
        except Exception as exc:
            logger.opt(exception=True).error("the WhatsApp connection task failed")
            await self._finish(GatewayExit.FAILED,
                               f"the WhatsApp connection failed: {self.devices.scrub(str(exc))}")

    async def _connect_once(self) -> float:
        """Hand over to Go until a restart is wanted; returns the wait before reconnecting."""
        try:
            opening = await self.devices.open()
        except Exception as exc:  # the database is down: like WhatsApp being down
            return self._connect_failed(f"opening the session in {self.devices.where}: {exc}")
        stored = opening.linked
        self.probe.first_start = not stored
        self._generation += 1
        # A fresh uuid per client: NewAClient's finalizer calls Go's Stop(uuid), which would
        # otherwise stop the client that replaced it.
        client = self._factory(opening, f"wabot-{self.tenant}-{self._generation}")
        self._register(client)
        self._restart = asyncio.get_running_loop().create_future()
        self.gate.open(client)
        self.linked = False
        self.report(
            "connecting to WhatsApp" + ("" if stored else " (no session yet: login follows)")
        )
        try:
            try:
                self._go_task = await client.connect()
            except Exception as exc:
                return self._connect_failed(exc)
            self._go_task.add_done_callback(self._on_go_exit)
            return await self._restart
        finally:
            await self._close_client()

    def _register(self, client: GoClient) -> None:
        # Only event types registered before connect() are forwarded by Go.
        handlers: dict[type[Any], EventHandler] = {
            MessageEv: self._on_message,
            ConnectedEv: self._on_connected,
            DisconnectedEv: self.outages.on_disconnected,
            LoggedOutEv: self.exits.on_logged_out,
            StreamReplacedEv: self.exits.on_stream_replaced,
            ClientOutdatedEv: self.exits.on_client_outdated,
            TemporaryBanEv: self.outages.on_temporary_ban,
            ConnectFailureEv: self.outages.on_connect_failure,
            KeepAliveTimeoutEv: self.outages.on_keepalive_timeout,
            KeepAliveRestoredEv: self.outages.on_keepalive_restored,
            PairStatusEv: self.pairing.on_pair_status,
            OfflineSyncPreviewEv: self.offline.on_preview,
            OfflineSyncCompletedEv: self.offline.on_completed,
        }
        for event_type, handler in handlers.items():
            client.event(event_type)(handler)
        client.qr(self.pairing.on_qr)

    def request_restart(self, delay: float) -> None:
        if self._restart is not None and not self._restart.done():
            self._restart.set_result(delay)

    def _on_go_exit(self, task: asyncio.Future[Any]) -> None:
        error = None if task.cancelled() else task.exception()
        if task is not self._go_task:
            return  # we stopped it
        if not self.linked:
            # neonize 0.5.2 aioze/client.py connect_with_proxy: a failed first connect ends
            # the connect task with NeonizeError (older builds panicked). Until this client
            # has connected once, that is the network or WhatsApp, not us: back off, retry,
            # instead of exiting 1 into systemd's start limit.
            self.request_restart(self._connect_failed(error))
            return
        detail = f": {self.devices.scrub(str(error))}" if error else ""
        self.spawn(self._finish(GatewayExit.FAILED, f"the WhatsApp client stopped{detail}"))

    def retry_delay(self) -> float:
        """The wait after a failed attempt: it grows until a connect succeeds."""
        delay = self.probe.delay(self._failures)
        self._failures += 1
        return delay

    def _connect_failed(self, error: BaseException | str | None) -> float:
        delay = self.retry_delay()
        # lib/pq's errors may quote the URL it was given: the database password with it.
        detail = self.devices.scrub(str(error)) if error else "the client stopped"
        self._failed_why = f"connecting failed ({detail[:120]})"
        logger.warning("connecting to WhatsApp failed ({}); retrying in {:.0f} s",
                       detail, delay)
        return delay

    async def _close_client(self) -> None:
        go_task, self._go_task = self._go_task, None
        self.connected.clear()
        # Calls in flight on this client finish first: Go would dereference nil otherwise.
        client = await self.gate.close(self._call_timeout)
        self.pairing.stop_watchdog()
        qr.remove_file(self.qr_png_path)
        if client is None:
            return
        try:
            await asyncio.wait_for(client.stop(), self._call_timeout)
        except Exception as exc:
            logger.warning("stopping the WhatsApp client failed: {}", exc)
        if go_task is not None and not go_task.done():
            # Cancelling makes neonize call Go's Stop once more, then returns.
            _, pending = await asyncio.wait({go_task}, timeout=self._call_timeout)
            for leftover in pending:
                leftover.cancel()

    async def _finish(self, exit: GatewayExit, message: str) -> None:
        if self._exit is not None:
            return
        self._exit = exit
        logger.bind(exit=exit.value).error(message)
        self.report(message, log=False)
        await self._shutdown()
        if exit is GatewayExit.LOGGED_OUT:
            await self._forget_device()
        await self.devices.close()
        if not self.finished.done():
            self.finished.set_result(exit)

    async def _forget_device(self) -> None:
        try:
            for what in await self.devices.forget():
                logger.info("removed the stale WhatsApp session {}", what)
        except Exception as exc:
            logger.error("the logged-out WhatsApp session in {} was not removed: {}",
                         self.devices.where, self.devices.scrub(str(exc)))

    async def _shutdown(self) -> None:
        current = asyncio.current_task()
        for task in [self._runner, *self._tasks]:
            self._cancel(task)
        if self._runner is not None and self._runner is not current:
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        await self._close_client()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @staticmethod
    def _cancel(task: asyncio.Task[None] | None) -> None:
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def report(self, line: str, log: bool = True) -> None:
        self.status = line
        if log:
            logger.info(line)
        for listener in (self._on_status, self.status_listener):
            if listener is None:
                continue
            try:
                listener(line)
            except Exception:
                logger.opt(exception=True).warning("the status callback failed")

    def show(self, text: str) -> None:
        # Plain lines, flushed: journald records them as they are.
        out = self._console or sys.stdout
        out.write(text)
        out.flush()

    # ── connection events ──────────────────────────────────────────────────────────────

    @guarded("ConnectedEv")
    async def _on_connected(self, client: GoClient, ev: Any) -> None:
        if not self.is_current(client):
            return
        self.pairing.stop_watchdog()
        self._failures = 0
        self.linked = True
        self.offline.syncing = False  # a new connection: a new offline preview may follow
        self.connected.set()
        self.devices.secure()
        qr.remove_file(self.qr_png_path)
        me = None
        try:
            me = await self.call("reading our own number", client.get_me())
            self.connected_as = from_whatsapp(me.JID.User) if me.JID.User else None
        except (GatewayError, PhoneError) as exc:
            logger.warning("connected, but could not read our own number: {}", exc)
        if me is not None:
            await self.note_device(me.JID)
        who = mask(self.connected_as) if self.connected_as else "an unknown number"
        self.report(f"connected as {who}")

    async def note_device(self, jid: Any) -> None:
        """The device this client is (whatsmeow's Store.ID, as PairSuccess and get_me give
        it): the one resumed on the next start."""
        if not jid.User:
            return
        try:
            await self.devices.linked(Jid2String(jid))
        except Exception as exc:  # the next ConnectedEv (any reconnect) tries again
            logger.error("connected, but which device this number is was not saved in {}: "
                         "{}; a restart now would show a new QR code", self.devices.where,
                         self.devices.scrub(str(exc)))

    async def login_timed_out(self) -> None:
        await self._finish(
            GatewayExit.LOGIN_TIMEOUT,
            "nobody linked the device before the QR codes ran out: run `wabot login` again",
        )

    async def call(self, what: str, call: Awaitable[T]) -> T:
        return await call_go(what, call, self._call_timeout)
