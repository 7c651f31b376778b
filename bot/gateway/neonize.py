"""The WhatsApp transport on neonize (whatsmeow in Go): stay linked, receive, send.

Turning events into `InboundMessage`s is `bot.gateway.normalize`; this module owns the client.

Three traits of the Go layer shape this module (see NEONIZE.md):
- its first connect panics, killing the process, when WhatsApp cannot be reached
  (neonize#181, pocketpaw/pocketpaw#159: `panic: failed to dial whatsapp web websocket`),
  so nothing is handed to Go until a plain TCP connect to WhatsApp succeeds;
- any call for a client Go does not know (before connect, after stop) is a nil dereference,
  another panic, so outgoing calls are refused unless we are connected;
- exceptions raised in handlers vanish (neonize drops the run_coroutine_threadsafe future),
  so every handler is wrapped by `_guarded`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import re
import sys
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, TextIO, TypeVar, cast

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
    PairStatusEv,
    StreamReplacedEv,
    TemporaryBanEv,
)
from neonize.proto.Neonize_pb2 import ConnectFailureReason, PairStatus, TemporaryBan
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message
from neonize.utils.enum import ChatPresence, ChatPresenceMedia, ClientName, ReceiptType

from bot.clock import Clock
from bot.gateway import login
from bot.gateway.base import Gateway, GatewayError
from bot.gateway.normalize import (
    Dropped,
    DropReason,
    NormalizeContext,
    declared_length,
    jid_str,
    mask_address,
    normalize_event,
    parse_jid,
)
from bot.models import InboundMessage
from bot.phones import PhoneError, from_whatsapp, mask

SENT_IDS_KEPT = 1000
T = TypeVar("T")

# Routine drops (status updates, key distribution, reactions…) stay at DEBUG.
_DROP_LEVELS = {
    DropReason.UNRESOLVED_LID: "WARNING",
    DropReason.GROUP: "INFO",
    DropReason.SELF_CHAT: "INFO",
}


# ── the gateway ─────────────────────────────────────────────────────────────────────────


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


EventHandler = Callable[[Any, Any], Coroutine[Any, Any, None]]


class GoClient(Protocol):
    """The part of `neonize.aioze.client.NewAClient` the gateway uses (tests stand in)."""

    event: Callable[[type[Any]], Callable[[EventHandler], None]]
    qr: Callable[[EventHandler], None]

    async def connect(self) -> asyncio.Future[Any]: ...
    async def stop(self) -> None: ...
    async def send_message(self, to: Any, message: Any) -> Any: ...
    async def mark_read(self, *ids: str, chat: Any, sender: Any, receipt: Any) -> None: ...
    async def send_chat_presence(self, jid: Any, state: Any, media: Any) -> None: ...
    async def download_any(self, message: Any) -> bytes: ...
    async def get_pn_from_lid(self, jid: Any) -> Any: ...
    async def get_me(self) -> Any: ...
    async def revoke_message(self, chat: Any, sender: Any, message_id: str) -> Any: ...
    async def PairPhone(
        self, phone: str, show_push_notification: bool, client_name: Any = ...
    ) -> str: ...


ClientFactory = Callable[[str, str], GoClient]  # (session database, client uuid)


def new_neonize_client(session: str, uuid: str) -> GoClient:
    from neonize.aioze.client import NewAClient

    return cast(GoClient, NewAClient(session, uuid=uuid))


Method = TypeVar("Method", bound=Callable[[Any, Any, Any], Coroutine[Any, Any, None]])


def _guarded(event: str) -> Callable[[Method], Method]:
    """Log what a handler raises: neonize drops the future its handlers run in."""

    def wrap(fn: Method) -> Method:
        @functools.wraps(fn)
        async def run(self: Any, client: Any, ev: Any) -> None:
            try:
                await fn(self, client, ev)
            except Exception:
                msg_id = getattr(getattr(ev, "Info", None), "ID", "")
                logger.opt(exception=True).bind(event=event, msg_id=msg_id).error(
                    "{} handler failed (message id {!r})", event, msg_id
                )

        return cast(Method, run)

    return wrap


class NeonizeGateway(Gateway):
    """WhatsApp through neonize: one linked device, one business number, one tenant.

    `start()` returns at once; the connection lives in a background task. Watch
    `connected` (an `asyncio.Event`), `connected_as` (our number, E.164) and `finished`,
    a future resolved with a `GatewayExit` when the gateway has given up for good.
    """

    def __init__(
        self,
        tenant: str,
        state_dir: Path,
        clock: Clock,
        *,
        session_name: str = "whatsapp-session.sqlite3",
        pair_phone: str | None = None,
        allow_groups: bool = False,
        call_timeout: float = 20.0,
        download_timeout: float = 120.0,
        probe_address: tuple[str, int] = ("web.whatsapp.com", 443),
        probe_timeout: float = 10.0,
        backoff_initial: float = 2.0,
        backoff_cap: float = 300.0,
        backoff_jitter: float = 0.1,
        login_timeout: float = 75.0,
        on_status: Callable[[str], None] | None = None,
        client_factory: ClientFactory = new_neonize_client,
        console: TextIO | None = None,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__()
        if pair_phone is not None and not re.fullmatch(r"\+[1-9]\d{5,14}", pair_phone):
            raise ValueError("pair_phone must be the business number in E.164 (+ and digits)")
        self.tenant = tenant
        self.state_dir = state_dir
        self.session_path = state_dir / session_name
        self.qr_png_path = state_dir / login.QR_PNG_NAME
        self.connected = asyncio.Event()
        self.connected_as: str | None = None
        self.status = "not started"
        self._clock = clock
        self._pair_phone = pair_phone
        self._allow_groups = allow_groups
        self._call_timeout = call_timeout
        self._download_timeout = download_timeout
        self._probe_address = probe_address
        self._probe_timeout = probe_timeout
        self._backoff = (backoff_initial, backoff_cap, backoff_jitter)
        self._login_timeout = login_timeout
        self._on_status = on_status
        self._factory = client_factory
        self._console = console
        self._rng = rng or random.Random()
        self._client: GoClient | None = None
        self._go_task: asyncio.Future[Any] | None = None
        self._restart: asyncio.Future[float] | None = None
        self._runner: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._finished: asyncio.Future[GatewayExit] | None = None
        self._exit: GatewayExit | None = None
        self._sent_ids: OrderedDict[str, None] = OrderedDict()
        self._generation = 0
        self._failures = 0
        self._pair_requested = False
        self._pair_code: str | None = None

    # ── lifecycle ──────────────────────────────────────────────────────────────────────

    @property
    def finished(self) -> asyncio.Future[GatewayExit]:
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
        login.prepare_state_dir(self.state_dir)
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
                    self._status(f"offline: reconnecting in {delay:.0f} s")
                    await self._clock.sleep(delay)
                await self._wait_until_reachable()
                delay = await self._connect_once()
        except Exception as exc:
            logger.opt(exception=True).error("the WhatsApp connection task failed")
            await self._finish(GatewayExit.FAILED, f"the WhatsApp connection failed: {exc}")

    async def _wait_until_reachable(self) -> None:
        """Probe WhatsApp over TCP (DNS included) before Go may try: its failure is a panic."""
        host, port = self._probe_address
        attempt = 0
        while (error := await self._probe()) is not None:
            delay = self._delay(attempt)
            attempt += 1
            logger.bind(attempt=attempt).warning(
                "WhatsApp is unreachable ({}:{}: {}); retrying in {:.0f} s",
                host,
                port,
                error,
                delay,
            )
            self._status(f"offline: retrying in {delay:.0f} s", log=False)
            await self._clock.sleep(delay)

    async def _probe(self) -> str | None:
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(*self._probe_address), self._probe_timeout
            )
        except TimeoutError:
            return f"no answer within {self._probe_timeout:g} s"
        except OSError as exc:
            return exc.strerror or str(exc) or type(exc).__name__
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return None

    def _delay(self, attempt: int) -> float:
        initial, cap, jitter = self._backoff
        base = min(cap, initial * 2.0 ** min(attempt, 32))
        return min(cap, base * (1 + jitter * self._rng.uniform(-1.0, 1.0)))

    async def _connect_once(self) -> float:
        """Hand over to Go until a restart is wanted; returns the wait before reconnecting."""
        stored = login.prepare_session_file(self.session_path)
        self._generation += 1
        # A fresh uuid per client: NewAClient's finalizer calls Go's Stop(uuid), which would
        # otherwise stop the client that replaced it.
        client = self._factory(str(self.session_path), f"wabot-{self.tenant}-{self._generation}")
        self._register(client)
        self._restart = asyncio.get_running_loop().create_future()
        self._client = client
        self._status(
            "connecting to WhatsApp" + ("" if stored else " (no session yet: login follows)")
        )
        try:
            self._go_task = await client.connect()
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
            PairStatusEv: self._on_pair_status,
        }
        for event_type, handler in handlers.items():
            client.event(event_type)(handler)
        client.qr(self._on_qr)

    def _request_restart(self, delay: float) -> None:
        if self._restart is not None and not self._restart.done():
            self._restart.set_result(delay)

    def _on_go_exit(self, task: asyncio.Future[Any]) -> None:
        error = None if task.cancelled() else task.exception()
        if task is not self._go_task:
            return  # we stopped it
        detail = f": {error}" if error else ""
        self._spawn(self._finish(GatewayExit.FAILED, f"the WhatsApp client stopped{detail}"))

    async def _close_client(self) -> None:
        client, go_task = self._client, self._go_task
        self._client = self._go_task = None
        self.connected.clear()
        self._cancel(self._watchdog)
        login.remove_file(self.qr_png_path)
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
        self._status(message, log=False)
        await self._shutdown()
        if exit is GatewayExit.LOGGED_OUT:
            for path in login.remove_session_files(self.session_path):
                logger.info("removed the stale WhatsApp session {}", path)
        if not self.finished.done():
            self.finished.set_result(exit)

    def _is_current(self, client: GoClient) -> bool:
        """Whether an event comes from the live client, not one being or already stopped."""
        return client is self._client and self._exit is None

    async def _shutdown(self) -> None:
        current = asyncio.current_task()
        for task in [self._runner, *self._tasks]:
            self._cancel(task)
        if self._runner is not None and self._runner is not current:
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        await self._close_client()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @staticmethod
    def _cancel(task: asyncio.Task[None] | None) -> None:
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def _status(self, line: str, log: bool = True) -> None:
        self.status = line
        if log:
            logger.info(line)
        if self._on_status is not None:
            try:
                self._on_status(line)
            except Exception:
                logger.opt(exception=True).warning("the status callback failed")

    def _print(self, text: str) -> None:
        # Plain lines, flushed: journald records them as they are.
        out = self._console or sys.stdout
        out.write(text)
        out.flush()

    # ── inbound ────────────────────────────────────────────────────────────────────────

    async def normalize(self, ev: Any, client: GoClient | None = None) -> InboundMessage | Dropped:
        ctx = NormalizeContext(
            tenant=self.tenant,
            resolve_lid=functools.partial(self._resolve_lid, client or self._client),
            now=self._clock.now(),
            allow_groups=self._allow_groups,
            own_user=(self.connected_as or "").removeprefix("+"),
            sent_ids=self._sent_ids.keys(),
        )
        return await normalize_event(ev, ctx)

    async def _resolve_lid(self, client: GoClient | None, lid: Any) -> str | None:
        if client is None:
            raise GatewayError("no WhatsApp client to look the LID up with")
        pn = await self._call("LID lookup", client.get_pn_from_lid(lid))
        return str(pn.User) or None  # whatsmeow answers an empty JID, not an error, if unknown

    @_guarded("MessageEv")
    async def _on_message(self, client: GoClient, ev: Any) -> None:
        result = await self.normalize(ev, client)
        if isinstance(result, Dropped):
            logger.bind(msg_id=ev.Info.ID, reason=result.reason.value).log(
                _DROP_LEVELS.get(result.reason, "DEBUG"),
                "dropped a WhatsApp message in {} ({}{})",
                mask_address(jid_str(ev.Info.MessageSource.Chat)),
                result.reason.value,
                f": {result.detail}" if result.detail else "",
            )
            return
        await self.dispatch(result)

    # ── connection events ──────────────────────────────────────────────────────────────

    @_guarded("ConnectedEv")
    async def _on_connected(self, client: GoClient, ev: Any) -> None:
        if not self._is_current(client):
            return
        self._cancel(self._watchdog)
        self._failures = 0
        self.connected.set()
        login.secure_session_files(self.session_path)
        login.remove_file(self.qr_png_path)
        try:
            me = await self._call("reading our own number", client.get_me())
            self.connected_as = from_whatsapp(me.JID.User) if me.JID.User else None
        except (GatewayError, PhoneError) as exc:
            logger.warning("connected, but could not read our own number: {}", exc)
        who = mask(self.connected_as) if self.connected_as else "an unknown number"
        self._status(f"connected as {who}")

    @_guarded("DisconnectedEv")
    async def _on_disconnected(self, client: GoClient, ev: Any) -> None:
        if not self._is_current(client):
            return
        self.connected.clear()
        self._status("offline: WhatsApp disconnected, reconnecting")

    @_guarded("LoggedOutEv")
    async def _on_logged_out(self, client: GoClient, ev: Any) -> None:
        reason = _enum_name(ConnectFailureReason, ev.Reason)
        await self._finish(
            GatewayExit.LOGGED_OUT,
            f"WhatsApp logged this device out ({reason}): run `wabot login` to scan a new QR",
        )

    @_guarded("StreamReplacedEv")
    async def _on_stream_replaced(self, client: GoClient, ev: Any) -> None:
        await self._finish(
            GatewayExit.STREAM_REPLACED,
            "the number was opened in another WhatsApp Web session/instance: stopping",
        )

    @_guarded("ClientOutdatedEv")
    async def _on_client_outdated(self, client: GoClient, ev: Any) -> None:
        await self._finish(
            GatewayExit.CLIENT_OUTDATED,
            "WhatsApp rejected this client version as outdated: upgrade neonize",
        )

    @_guarded("TemporaryBanEv")
    async def _on_temporary_ban(self, client: GoClient, ev: Any) -> None:
        if not self._is_current(client):
            return
        # whatsmeow does not reconnect after a ban; we do once it has expired.
        expire = max(0, int(ev.Expire))  # seconds (goneonize encodes Expire.Seconds())
        until = self._clock.now() + timedelta(seconds=expire)
        reason = _enum_name(TemporaryBan.TempBanReason, ev.Code)
        logger.bind(ban_reason=reason, expire_s=expire).error(
            "WhatsApp temporarily banned this number ({}) until {:%Y-%m-%d %H:%M} UTC;"
            " reconnecting after that",
            reason,
            until,
        )
        self._status(f"temporarily banned by WhatsApp until {until:%Y-%m-%d %H:%M} UTC", log=False)
        self._request_restart(expire + self._backoff[0] if expire else self._backoff[1])

    @_guarded("ConnectFailureEv")
    async def _on_connect_failure(self, client: GoClient, ev: Any) -> None:
        if not self._is_current(client):
            return
        # whatsmeow only emits this for failures it will not retry itself.
        delay = self._delay(self._failures)
        self._failures += 1
        logger.warning(
            "WhatsApp refused the connection ({}: {}); reconnecting in {:.0f} s",
            _enum_name(ConnectFailureReason, ev.Reason),
            ev.Message or "no message",
            delay,
        )
        self._request_restart(delay)

    @_guarded("KeepAliveTimeoutEv")
    async def _on_keepalive_timeout(self, client: GoClient, ev: Any) -> None:
        logger.warning("WhatsApp keep-alive timed out ({} in a row)", ev.ErrorCount)

    @_guarded("KeepAliveRestoredEv")
    async def _on_keepalive_restored(self, client: GoClient, ev: Any) -> None:
        logger.info("WhatsApp keep-alive restored")

    @_guarded("PairStatusEv")
    async def _on_pair_status(self, client: GoClient, ev: Any) -> None:
        if ev.Status == PairStatus.SUCCESS:
            number = mask(from_whatsapp(ev.ID.User)) if ev.ID.User else "an unknown number"
            logger.info("linked to WhatsApp as {} ({})", number, ev.Platform or "?")
        else:
            logger.error("linking to WhatsApp failed: {}", ev.Error or "no reason given")

    # ── login ──────────────────────────────────────────────────────────────────────────

    @_guarded("QR")
    async def _on_qr(self, client: GoClient, data: bytes) -> None:
        # Called on every QR refresh (60 s, then 20 s each); when the codes run out Go
        # closes the socket and says nothing more to Python, hence the watchdog.
        if not self._is_current(client):
            return
        self._cancel(self._watchdog)
        self._watchdog = self._spawn(self._login_watchdog())
        login.write_qr_png(data, self.qr_png_path)
        if self._pair_phone and not self._pair_requested:
            # whatsmeow wants the first QR event before PairPhone (neonize#57, #192).
            self._pair_requested = True
            await self._request_pair_code(client, self._pair_phone)
        if self._pair_code is None:
            self._print(login.qr_terminal_text(data))
            self._status(f"waiting for QR scan (see journalctl or {self.qr_png_path})")

    async def _request_pair_code(self, client: GoClient, phone: str) -> None:
        try:
            code = await self._call(
                "requesting a pair code",
                client.PairPhone(phone.removeprefix("+"), True, client_name=ClientName.LINUX),
            )
        except GatewayError as exc:
            logger.error("no pair code ({}): scan the QR code instead", exc)
            return
        self._pair_code = login.format_pair_code(code)
        self._print(login.pair_code_instructions(code, mask(phone)))
        self._status(f"waiting for pair code {self._pair_code} to be entered on {mask(phone)}")

    async def _login_watchdog(self) -> None:
        await self._clock.sleep(self._login_timeout)
        if not self.connected.is_set():
            await self._finish(
                GatewayExit.LOGIN_TIMEOUT,
                "nobody linked the device before the QR codes ran out: run `wabot login` again",
            )

    # ── outbound ───────────────────────────────────────────────────────────────────────

    async def send_text(self, chat: str, text: str) -> str:
        client = self._live_client("send a message")
        # A Message, not a str: neonize turns "@digits" in a str into mentions and looks
        # up "@…@g.us" patterns over the network.
        response = await self._call(
            f"sending to {mask_address(chat)}",
            client.send_message(parse_jid(chat), Message(conversation=text)),
        )
        msg_id = str(response.ID)
        if not msg_id:
            raise GatewayError(f"sending to {mask_address(chat)} returned no message id")
        self._sent_ids[msg_id] = None
        while len(self._sent_ids) > SENT_IDS_KEPT:
            self._sent_ids.popitem(last=False)
        return msg_id

    async def revoke(self, chat: str, msg_id: str) -> None:
        """Delete a message for everyone: the owner's `#bot` commands typed on the business
        phone. They were sent from our own number, so we are the sender."""
        client = self._live_client("delete a message")
        me = await self._call("reading our own WhatsApp id", client.get_me())
        await self._call(f"deleting a message in {mask_address(chat)}",
                         client.revoke_message(parse_jid(chat), me.JID, msg_id))

    async def mark_read(self, chat: str, msg_ids: list[str], sender: str = "") -> None:
        if not msg_ids:
            return
        client = self._live_client("mark messages read")
        chat_jid = parse_jid(chat)
        await self._call(
            f"marking {len(msg_ids)} message(s) read in {mask_address(chat)}",
            client.mark_read(
                *msg_ids,
                chat=chat_jid,
                sender=parse_jid(sender) if sender else chat_jid,
                receipt=ReceiptType.READ,
            ),
        )

    async def set_typing(self, chat: str, typing: bool) -> None:
        client = self._live_client("show typing")
        state = (
            ChatPresence.CHAT_PRESENCE_COMPOSING if typing else ChatPresence.CHAT_PRESENCE_PAUSED
        )
        await self._call(
            f"{'typing' if typing else 'paused'} presence in {mask_address(chat)}",
            client.send_chat_presence(
                parse_jid(chat), state, ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT
            ),
        )

    async def download(self, message: InboundMessage, max_bytes: int) -> bytes:
        media = message.media
        if not isinstance(media, Message):
            raise GatewayError(f"message {message.msg_id} has no downloadable media")
        declared = declared_length(media)
        if declared > max_bytes:
            raise GatewayError(f"media of {declared} bytes exceeds the {max_bytes}-byte limit")
        client = self._live_client("download media")
        data = await self._call(
            f"downloading the media of {message.msg_id}",
            client.download_any(media),
            self._download_timeout,
        )
        if len(data) > max_bytes:
            raise GatewayError(f"media of {len(data)} bytes exceeds the {max_bytes}-byte limit")
        return bytes(data)

    def _live_client(self, what: str) -> GoClient:
        # Also what keeps us from calling Go for a client it no longer has (a panic).
        if self._client is None or not self.connected.is_set():
            raise GatewayError(f"cannot {what}: not connected to WhatsApp")
        return self._client

    async def _call(self, what: str, call: Awaitable[T], limit_s: float | None = None) -> T:
        limit = limit_s or self._call_timeout
        try:
            return await asyncio.wait_for(call, limit)
        except TimeoutError as exc:
            raise GatewayError(f"{what} timed out after {limit:g} s") from exc
        except GatewayError:
            raise
        except Exception as exc:
            raise GatewayError(f"{what} failed: {exc}") from exc


def _enum_name(enum: Any, value: int) -> str:
    try:
        return str(enum.Name(value))
    except ValueError:
        return f"code {value}"
