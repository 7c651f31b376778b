"""`wabot run` and `wabot login`: the daemon's life under systemd.

Signals only set an event. The first SIGTERM/SIGINT stops gracefully (App.stop: stop
accepting, finish turns within the grace period, close in reverse order); a second one forces
exit. READY is sent only when WhatsApp is connected; STATUS lines say what the daemon is waiting
for; the watchdog is pinged from the event loop, so a wedged loop gets the daemon restarted.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from loguru import logger

from bot.app import App
from bot.business import BusinessError
from bot.clock import SystemClock
from bot.fleet.host import OtherNumbers
from bot.gateway.base import ExitReason, Gateway
from bot.gateway.web.devices.base import DeviceStore
from bot.gateway.web.devices.choice import device_store_for
from bot.gateway.web.devices.database import DatabaseStore
from bot.ops.collector import collect_on_a_timer
from bot.ops.preflight import problems, start_failure
from bot.ops.sdnotify import Notifier, watchdog_loop
from bot.phones import mask
from bot.settings import Settings
from bot.stores.db import DatabaseError
from bot.web.server import ConsoleError

if TYPE_CHECKING:
    from fastapi import APIRouter

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_OPERATOR = 78  # logged out, number opened elsewhere, misconfigured: RestartPreventExitStatus


# neonize goneonize/main.go shouldAddBotNode: every 1:1 send carries `<bot biz_bot="1"/>`
# (WhatsApp's "AI" label) unless NEONIZE_BOT_TAG is "off", "none", "false" or "0". Go's
# runtime copies the environment when the library loads (`import neonize`, _binder.py
# load_goneonize): a later os.environ change is never seen by Go.
BOT_TAG_VARIABLE = "NEONIZE_BOT_TAG"


def apply_bot_label(settings: Settings) -> None:
    """Set the label's variable from `pacing.bot_label`; call before neonize is imported."""
    if "neonize" in sys.modules:
        logger.warning("neonize was imported before the bot label was set: {} keeps {!r}",
                       BOT_TAG_VARIABLE, os.environ.get(BOT_TAG_VARIABLE, "on (unset)"))
    os.environ[BOT_TAG_VARIABLE] = "on" if settings.pacing.bot_label else "off"


def neonize_gateway(settings: Settings, notifier: Notifier,
                    devices: DeviceStore | None = None) -> Gateway:
    apply_bot_label(settings)  # before the import below loads Go
    from bot.gateway.web.gateway import NeonizeGateway

    return NeonizeGateway(settings.tenant, settings.whatsapp, SystemClock(),
                          state_dir=settings.state_dir,
                          allow_groups=settings.inbox.allow_groups, on_status=notifier.report,
                          devices=devices or device_store_for(settings))


def transport_gateway(settings: Settings, notifier: Notifier) -> Gateway:
    """The configured transport: WhatsApp Web (neonize) or Meta's Cloud API."""
    if settings.whatsapp.transport == "cloud":
        from bot.gateway.cloud.gateway import CloudGateway

        return CloudGateway(settings.tenant, settings.cloud)
    return neonize_gateway(settings, notifier)


def install_signals(stop: asyncio.Event,
                    reload: asyncio.Event | None = None) -> Callable[[], None]:
    """First signal: graceful stop. Second: leave now (systemd's KillMode=mixed follows).
    SIGHUP sets `reload` (re-index the knowledge that changed), when given."""
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            logger.warning("second {} received: exiting without waiting",
                           signal.Signals(signum).name)
            os._exit(EXIT_FAILED)
        logger.info("{} received: stopping", signal.Signals(signum).name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    if reload is not None:
        loop.add_signal_handler(signal.SIGHUP, _on_hangup, reload)

    def restore() -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        if reload is not None:
            loop.remove_signal_handler(signal.SIGHUP)

    return restore


def _on_hangup(reload: asyncio.Event) -> None:
    logger.info("SIGHUP received: re-indexing the knowledge that changed")
    reload.set()


def exit_code(reason: ExitReason | None) -> int:
    if reason is None:
        return EXIT_OK
    if reason.needs_operator:
        return EXIT_OPERATOR
    return EXIT_FAILED if str(reason) == "failed" else EXIT_OK


async def _announce_ready(gateway: Gateway, notifier: Notifier) -> None:
    """READY=1 once WhatsApp is connected; STATUS says as whom. Later reconnections are
    the gateway's business (it reports them through STATUS lines)."""
    if gateway.connected is not None:
        await gateway.connected.wait()
    who = mask(gateway.connected_as) if gateway.connected_as else "the business number"
    notifier.ready()
    notifier.status(f"connected as {who}")
    logger.info("connected to WhatsApp as {}", who)


async def _started(app: App, stop: asyncio.Event, others: OtherNumbers | None = None) -> bool:
    """Start the app unless a stop comes first (a standby waits for its number's lease);
    the other numbers start once the stores are up, whether or not this one is held."""
    starting = asyncio.create_task(app.start())
    if others is not None:
        up = asyncio.create_task(app.stores_up.wait())
        await asyncio.wait({starting, up}, return_when=asyncio.FIRST_COMPLETED)
        up.cancel()
        if app.stores_up.is_set():
            await others.start()
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not starting.done():
        starting.cancel()
        with suppress(asyncio.CancelledError):
            await starting
        return False
    starting.result()
    return True


async def serve(app: App, gateway: Gateway, notifier: Notifier,
                stop: asyncio.Event, others: OtherNumbers | None = None) -> int:
    """Run until a stop signal or the gateway gives up; returns the process exit code.
    `others`: the numbers served beside the configured one (`wabot numbers add`)."""
    tasks: list[asyncio.Task[None]] = [asyncio.create_task(collect_on_a_timer())]
    interval = notifier.watchdog_interval()
    if interval:
        tasks.append(asyncio.create_task(watchdog_loop(notifier, interval)))
    notifier.status("starting")
    reason: ExitReason | None = None
    try:
        try:
            if not await _started(app, stop, others):
                return EXIT_OK  # stopped while waiting for the number's lease
        except ConsoleError as exc:  # the console's port is taken: an operator must choose
            logger.error("cannot start: {}", exc)
            notifier.status(f"misconfigured: {exc}")
            return EXIT_OPERATOR
        except Exception as exc:  # a store down at boot: systemd retries after RestartSec
            line = start_failure(app.settings, exc)
            logger.opt(exception=exc).debug("start failed")
            logger.error("could not start: {}", line)
            notifier.status(f"start failed: {line}")
            return EXIT_FAILED
        tasks.append(asyncio.create_task(_announce_ready(gateway, notifier)))
        stopping = asyncio.create_task(stop.wait())
        waits: set[asyncio.Future[Any]] = {stopping, gateway.finished}
        if app.claim is not None:
            waits.add(app.claim.lost)
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if gateway.finished in done:
            reason = gateway.finished.result()
            logger.warning("WhatsApp connection ended: {}", reason)
        elif app.claim is not None and app.claim.lost in done:
            # systemd starts the daemon again: it waits for the number as a standby.
            notifier.status(f"stopped: {app.claim.lost.result()}")
            return EXIT_FAILED
    finally:
        notifier.stopping()
        notifier.status("stopping")
        if app.claim is not None:
            await app.claim.drain()
        if others is not None:
            await others.stop()
        await app.stop()
        for task in tasks:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
    return exit_code(reason)


def _every_number(gateway: Gateway) -> tuple[list[APIRouter], OtherNumbers]:
    """The other numbers (started once the stores are up) and the Cloud API webhook that
    reaches each number by the id its changes name, served ahead of the number's own."""
    from bot.gateway.cloud.gateway import CloudGateway
    from bot.gateway.cloud.webhook import webhook_router

    quiet = Notifier(None)  # systemd's STATUS speaks of the configured number
    others = OtherNumbers(lambda s: transport_gateway(s, quiet))

    def cloud() -> list[CloudGateway]:
        return [g for g in others.gateways() or [gateway] if isinstance(g, CloudGateway)]

    return [webhook_router(cloud)], others


def where_data_lives(settings: Settings, existed: bool) -> str:
    """The first thing `run` says: the absolute state directory (and database), so a start
    in the wrong folder is seen at once, not after customers wrote."""
    from sqlalchemy.engine import make_url

    url = make_url(settings.sql_url)
    database = (url.database if url.get_backend_name() == "sqlite"
                else url.render_as_string(hide_password=True))
    new = "" if existed else " (new: nothing had run with these settings)"
    return f"data in {settings.state_dir.absolute()}{new}; database {database}"


async def run_daemon(settings: Settings, notifier: Notifier,
                     gateway: Gateway | None = None) -> int:
    existed = settings.state_dir.is_dir()
    found = problems(settings)  # creates the state directory
    logger.info(where_data_lives(settings, existed))
    if found:
        for problem in found:
            logger.error("cannot start: {}", problem)
        notifier.status(f"misconfigured: {found[0]}")
        return EXIT_OPERATOR
    try:
        gateway = gateway or transport_gateway(settings, notifier)
        routers, others = _every_number(gateway)
        app = App(settings, gateway, serve_http=settings.http.enabled, fleet=True,
                  extra_routers=routers)
        others.home = app
    except (BusinessError, DatabaseError, ValueError) as exc:
        logger.error("cannot start: {}", exc)
        notifier.status(f"misconfigured: {exc}")
        return EXIT_OPERATOR
    stop = asyncio.Event()
    restore = install_signals(stop, app.reindex)
    try:
        return await serve(app, gateway, notifier, stop, others)
    finally:
        restore()


async def login(settings: Settings, notifier: Notifier) -> int:
    """Link this WhatsApp number (QR or pair code), then exit: 0 linked, 78 not linked.

    With a session already stored, nothing connects: `login` registers no message handler,
    and whatsmeow acknowledges every message it receives (receipt.go maybeDeferredAck), so
    connecting here would lose the customers' messages that arrive meanwhile.
    """
    devices = device_store_for(settings)
    try:
        stored = await devices.stored()
    except Exception as exc:
        await devices.close()
        print(f"Cannot read the WhatsApp session in {devices.where}: "
              f"{devices.scrub(str(exc))}")
        return EXIT_FAILED
    if stored:
        await devices.close()
        fix = ("unlink this device on the phone (WhatsApp → Linked devices → Log out): the "
               "daemon then forgets it" if isinstance(devices, DatabaseStore) else
               "stop the daemon, remove that file")
        print(f"Already linked: a WhatsApp session exists in {devices.where}; `wabot run` "
              f"uses it. To link another phone, {fix} and run `wabot login` again.")
        return EXIT_OK
    gateway = neonize_gateway(settings, notifier, devices)
    stop = asyncio.Event()
    restore = install_signals(stop)
    linked = gateway.connected
    assert linked is not None  # WhatsApp Web connects
    try:
        await gateway.start()
        connected = asyncio.create_task(linked.wait())
        stopping = asyncio.create_task(stop.wait())
        waits: set[asyncio.Future[Any]] = {connected, stopping, gateway.finished}
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in (connected, stopping):
            task.cancel()
        if linked.is_set():
            who = mask(gateway.connected_as) if gateway.connected_as else "this device"
            print(f"Linked: wabot is logged in as {who}. Start the daemon with `wabot run`.")
            return EXIT_OK
        if gateway.finished.done():
            print(f"Not linked: {gateway.finished.result()}. Run `wabot login` again.")
            return EXIT_OPERATOR
        return EXIT_FAILED
    finally:
        await gateway.stop()
        restore()
