"""The WhatsApp Web connection: connect, probe, back off, log in, reconnect, give up.

`Connection` owns neonize's Go client and its lifecycle; `NeonizeGateway` composes it and
does the sending and receiving. What the Go layer does to us is in `goclient`; reaching
WhatsApp before Go may try is `probe`; the QR and pair-code login is `pairing`.

It is longer than most modules on purpose: it is one state machine (the live client, the
restart future, the exit reason), and each connection event's handler reads and moves that
same state, so splitting the handlers off would only spread it across files.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from enum import StrEnum
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
from neonize.proto.Neonize_pb2 import ConnectFailureReason, TemporaryBan

from bot.clock import Clock
from bot.gateway.base import ExitReason, GatewayError
from bot.gateway.restrictions import TEMPORARY_BAN, Restrictions
from bot.gateway.web import qr, session
from bot.gateway.web.goclient import (
    EventHandler,
    GoClient,
    GoGate,
    call_go,
    enum_name,
    guarded,
)
from bot.gateway.web.pairing import Pairing
from bot.gateway.web.probe import Probe
from bot.gateway.web.tuning import Tuning
from bot.phones import PhoneError, from_whatsapp, mask
from bot.settings import WhatsAppSettings

T = TypeVar("T")


class GatewayExit(StrEnum):
    """Why the gateway gave up for good; `needs_operator` ones want a human (exit 78)."""

    LOGGED_OUT = "logged_out"
    STREAM_REPLACED = "stream_replaced"
    CLIENT_OUTDATED = "client_outdated"
    LOGIN_TIMEOUT = "login_timeout"
    FAILED = "failed"
    STOPPED = "stopped"

    @property
    def needs_operator(self) -> bool:
        return self not in (GatewayExit.FAILED, GatewayExit.STOPPED)


class Connection:
    """One linked device's connection to WhatsApp, kept up in a background task.

    `start()` returns at once. Watch `connected` (an `asyncio.Event`), `connected_as` (our
    number, E.164), `status` (one line, as systemd's STATUS shows it) and `finished`, a
    future resolved with a `GatewayExit` when the connection has given up for good.
    `client` is the live Go client, or None. Messages go to `on_message`.
    """

    def __init__(
        self,
        tenant: str,
        settings: WhatsAppSettings,
        clock: Clock,
        *,
        state_dir: Path,
        on_message: EventHandler,
        on_status: Callable[[str], None] | None = None,
        tuning: Tuning | None = None,
    ) -> None:
        t = tuning or Tuning()
        self.tenant = tenant
        self.state_dir = state_dir
        self.session_path = state_dir / settings.session_file
        self.qr_png_path = state_dir / qr.QR_PNG_NAME
        self.connected = asyncio.Event()
        self.connected_as: str | None = None
        self.status = "not started"
        self.probe = Probe(clock, (settings.probe_host, settings.probe_port), t.probe_timeout,
                           (settings.backoff_initial, settings.backoff_cap, t.backoff_jitter),
                           t.rng or random.Random(), lambda line: self.report(line, log=False))
        # Never linked: a person is watching for the QR code, so say why it is not there yet
        # and retry sooner.
        self.probe.first_start = not (self.session_path.is_file()
                                      and self.session_path.stat().st_size > 0)
        self._clock = clock
        self._on_message = on_message
        self._call_timeout = settings.call_timeout
        self._on_status = on_status
        self._factory = t.client_factory
        self._console = t.console
        self.gate = GoGate()
        self._linked = False  # this client has had its first ConnectedEv
        self._go_task: asyncio.Future[Any] | None = None
        self._restart: asyncio.Future[float] | None = None
        self._runner: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._finished: asyncio.Future[ExitReason] | None = None
        self._exit: GatewayExit | None = None
        self._generation = 0
        self._failures = 0
        self.pairing = Pairing(self, clock, settings.pair_phone, t.login_timeout)
        self.syncing = False  # WhatsApp is delivering what it kept while we were offline
        self.on_synced: Callable[[GoClient], Awaitable[None]] | None = None
        self.restrictions: Restrictions | None = None
        self.status_listener: Callable[[str], None] | None = None  # the unit's (console)

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
        if not self.finished.done():
            self.finished.set_result(self._exit)

    async def _run(self) -> None:
        delay = 0.0
        try:
            while True:
                if delay > 0:
                    self.report(f"offline: reconnecting in {delay:.0f} s")
                    await self._clock.sleep(delay)
                await self.probe.wait_until_reachable()
                delay = await self._connect_once()
        except Exception as exc:
            logger.opt(exception=True).error("the WhatsApp connection task failed")
            await self._finish(GatewayExit.FAILED, f"the WhatsApp connection failed: {exc}")

    async def _connect_once(self) -> float:
        """Hand over to Go until a restart is wanted; returns the wait before reconnecting."""
        stored = session.prepare_session_file(self.session_path)
        self._generation += 1
        # A fresh uuid per client: NewAClient's finalizer calls Go's Stop(uuid), which would
        # otherwise stop the client that replaced it.
        client = self._factory(str(self.session_path), f"wabot-{self.tenant}-{self._generation}")
        self._register(client)
        self._restart = asyncio.get_running_loop().create_future()
        self.gate.open(client)
        self._linked = False
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
            DisconnectedEv: self._on_disconnected,
            LoggedOutEv: self._on_logged_out,
            StreamReplacedEv: self._on_stream_replaced,
            ClientOutdatedEv: self._on_client_outdated,
            TemporaryBanEv: self._on_temporary_ban,
            ConnectFailureEv: self._on_connect_failure,
            KeepAliveTimeoutEv: self._on_keepalive_timeout,
            KeepAliveRestoredEv: self._on_keepalive_restored,
            PairStatusEv: self.pairing.on_pair_status,
            OfflineSyncPreviewEv: self._on_offline_preview,
            OfflineSyncCompletedEv: self._on_offline_completed,
        }
        for event_type, handler in handlers.items():
            client.event(event_type)(handler)
        client.qr(self.pairing.on_qr)

    def _request_restart(self, delay: float) -> None:
        if self._restart is not None and not self._restart.done():
            self._restart.set_result(delay)

    def _on_go_exit(self, task: asyncio.Future[Any]) -> None:
        error = None if task.cancelled() else task.exception()
        if task is not self._go_task:
            return  # we stopped it
        if not self._linked:
            # neonize 0.5.2 aioze/client.py connect_with_proxy: a failed first connect ends
            # the connect task with NeonizeError (older builds panicked). Until this client
            # has connected once, that is the network or WhatsApp, not us: back off, retry,
            # instead of exiting 1 into systemd's start limit.
            self._request_restart(self._connect_failed(error))
            return
        detail = f": {error}" if error else ""
        self.spawn(self._finish(GatewayExit.FAILED, f"the WhatsApp client stopped{detail}"))

    def _connect_failed(self, error: BaseException | None) -> float:
        delay = self.probe.delay(self._failures)
        self._failures += 1
        logger.warning("connecting to WhatsApp failed ({}); retrying in {:.0f} s",
                       error or "the client stopped", delay)
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
            for path in session.remove_session_files(self.session_path):
                logger.info("removed the stale WhatsApp session {}", path)
        if not self.finished.done():
            self.finished.set_result(exit)

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
        self._linked = True
        self.syncing = False  # a new connection: a new offline preview, if any, follows
        self.connected.set()
        session.secure_session_files(self.session_path)
        qr.remove_file(self.qr_png_path)
        try:
            me = await self.call("reading our own number", client.get_me())
            self.connected_as = from_whatsapp(me.JID.User) if me.JID.User else None
        except (GatewayError, PhoneError) as exc:
            logger.warning("connected, but could not read our own number: {}", exc)
        who = mask(self.connected_as) if self.connected_as else "an unknown number"
        self.report(f"connected as {who}")

    @guarded("DisconnectedEv")
    async def _on_disconnected(self, client: GoClient, ev: Any) -> None:
        if not self.is_current(client):
            return
        self.connected.clear()
        self.report("offline: WhatsApp disconnected, reconnecting")

    @guarded("LoggedOutEv")
    async def _on_logged_out(self, client: GoClient, ev: Any) -> None:
        reason = enum_name(ConnectFailureReason, ev.Reason)
        await self._finish(GatewayExit.LOGGED_OUT, logout_message(int(ev.Reason), reason))

    @guarded("StreamReplacedEv")
    async def _on_stream_replaced(self, client: GoClient, ev: Any) -> None:
        await self._finish(
            GatewayExit.STREAM_REPLACED,
            "the number was opened in another WhatsApp Web session/instance: stopping",
        )

    @guarded("ClientOutdatedEv")
    async def _on_client_outdated(self, client: GoClient, ev: Any) -> None:
        await self._finish(
            GatewayExit.CLIENT_OUTDATED,
            "WhatsApp rejected this client version as outdated: upgrade neonize",
        )

    @guarded("TemporaryBanEv")
    async def _on_temporary_ban(self, client: GoClient, ev: Any) -> None:
        if not self.is_current(client):
            return
        # whatsmeow does not reconnect after a ban; we do once it has expired.
        expire = max(0, int(ev.Expire))  # seconds (goneonize encodes Expire.Seconds())
        until = self._clock.now() + timedelta(seconds=expire)
        reason = enum_name(TemporaryBan.TempBanReason, ev.Code)
        if self.restrictions is not None:
            self.restrictions.impose(TEMPORARY_BAN, until, reason)
        logger.bind(ban_reason=reason, expire_s=expire).error(
            "WhatsApp temporarily banned this number ({}) until {:%Y-%m-%d %H:%M} UTC;"
            " reconnecting after that",
            reason,
            until,
        )
        self.report(f"temporarily banned by WhatsApp until {until:%Y-%m-%d %H:%M} UTC", log=False)
        self._request_restart(expire + self.probe.backoff[0] if expire else self.probe.backoff[1])

    @guarded("OfflineSyncPreviewEv")
    async def _on_offline_preview(self, client: GoClient, ev: Any) -> None:
        # whatsmeow connectionevents.go handleIB: `offline_preview` comes right after
        # connecting when the server kept events for us; everything until `offline`
        # (OfflineSyncCompleted) is that backlog, not live traffic. Set before any await:
        # message handlers that follow in Go's order must see it.
        if not self.is_current(client):
            return
        self.syncing = True
        logger.info("WhatsApp is delivering what arrived while offline: {} message(s)",
                    ev.Message)

    @guarded("OfflineSyncCompletedEv")
    async def _on_offline_completed(self, client: GoClient, ev: Any) -> None:
        if not self.is_current(client):
            return
        self.syncing = False
        logger.info("WhatsApp's offline backlog is complete ({} event(s))", ev.Count)
        if self.on_synced is not None:
            await self.on_synced(client)

    @guarded("ConnectFailureEv")
    async def _on_connect_failure(self, client: GoClient, ev: Any) -> None:
        if not self.is_current(client):
            return
        # whatsmeow only emits this for failures it will not retry itself.
        delay = self.probe.delay(self._failures)
        self._failures += 1
        logger.warning(
            "WhatsApp refused the connection ({}: {}); reconnecting in {:.0f} s",
            enum_name(ConnectFailureReason, ev.Reason),
            ev.Message or "no message",
            delay,
        )
        self._request_restart(delay)

    @guarded("KeepAliveTimeoutEv")
    async def _on_keepalive_timeout(self, client: GoClient, ev: Any) -> None:
        # whatsmeow keepalive.go keepAliveLoop: after KeepAliveMaxFailTime (3 min) it calls
        # Disconnect() + autoReconnect, and Disconnect emits no Disconnected event
        # (client.go Disconnect). The socket is not to be trusted from the first timeout.
        logger.warning("WhatsApp keep-alive timed out ({} in a row)", ev.ErrorCount)
        if self.is_current(client):
            self.connected.clear()
            self.report("offline: WhatsApp keep-alive timed out, reconnecting", log=False)

    @guarded("KeepAliveRestoredEv")
    async def _on_keepalive_restored(self, client: GoClient, ev: Any) -> None:
        logger.info("WhatsApp keep-alive restored")
        if self.is_current(client) and self._linked:
            self.connected.set()
            self.report("connected (keep-alive restored)", log=False)

    async def login_timed_out(self) -> None:
        await self._finish(
            GatewayExit.LOGIN_TIMEOUT,
            "nobody linked the device before the QR codes ran out: run `wabot login` again",
        )

    async def call(self, what: str, call: Awaitable[T]) -> T:
        return await call_go(what, call, self._call_timeout)


# whatsmeow types/events/events.go ConnectFailureReason: 403 "is now called LOCKED in the
# whatsapp web code" (ConnectFailureMainDeviceGone), 406 "is now called BANNED"
# (ConnectFailureUnknownLogout). Neither is fixed by scanning a new QR code. neonize does not
# pass the number: goneonize/utils/encoder.go EncodeConnectFailureReason maps them to its own
# enum, MAIN_DEVICE_GONE (4) and UNKNOWN_LOGOUT (5).
_LOGOUT_REASONS = {
    ConnectFailureReason.MAIN_DEVICE_GONE:
        "WhatsApp locked this number (reason 403): open WhatsApp on the phone and follow "
        "what it says (it may ask to verify the number or to appeal); link again with "
        "`wabot login` only once the phone works normally",
    ConnectFailureReason.UNKNOWN_LOGOUT:
        "WhatsApp banned this number (reason 406): the phone's WhatsApp shows the ban and "
        "the way to request a review; a new QR code will not help",
}


def logout_message(code: int, reason: str) -> str:
    return _LOGOUT_REASONS.get(
        code, f"WhatsApp logged this device out ({reason}): run `wabot login` to scan a new QR")
