"""Pairing the device: the QR codes, the pair code and the login watchdog.

Go calls the QR callback on every refresh (60 s, then 20 s each); when the codes run out it
closes the socket and says nothing more to Python, hence the watchdog. How the codes are
shown (terminal, QR PNG, pair-code text) is `qr`; the session file is `session`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine
from pathlib import Path
from typing import Any, Protocol, TypeVar

from loguru import logger
from neonize.proto.Neonize_pb2 import PairStatus
from neonize.utils.enum import ClientName

from bot.clock import Clock
from bot.gateway.base import GatewayError
from bot.gateway.web import qr
from bot.gateway.web.goclient import GoClient, guarded
from bot.phones import from_whatsapp, mask

T = TypeVar("T")


class AlreadyLinked(GatewayError):
    """A pair code was asked while WhatsApp is linked and connected."""


class PairingHost(Protocol):
    """What pairing needs of the connection it serves."""

    connected: asyncio.Event
    qr_png_path: Path

    @property
    def client(self) -> GoClient | None: ...

    def is_current(self, client: GoClient | None) -> bool: ...
    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]: ...
    def report(self, line: str, log: bool = True) -> None: ...
    def show(self, text: str) -> None: ...
    async def call(self, what: str, call: Awaitable[T]) -> T: ...
    async def login_timed_out(self) -> None: ...
    async def note_device(self, jid: Any) -> None: ...


class Pairing:
    def __init__(self, host: PairingHost, clock: Clock, pair_phone: str | None,
                 timeout: float) -> None:
        self._host = host
        self._clock = clock
        self._pair_phone = pair_phone
        self._timeout = timeout
        self._watchdog: asyncio.Task[None] | None = None
        self._pair_requested = False
        self._pair_code: str | None = None
        self._offered: GoClient | None = None  # the client whose QR was shown last

    def stop_watchdog(self) -> None:
        if self._watchdog is not None and self._watchdog is not asyncio.current_task():
            self._watchdog.cancel()

    @guarded("QR")
    async def on_qr(self, client: GoClient, data: bytes) -> None:
        host = self._host
        if not host.is_current(client):
            return
        self.stop_watchdog()
        self._watchdog = host.spawn(self._login_watchdog())
        qr.write_qr_png(data, host.qr_png_path)
        self._offered = client
        if self._pair_phone and not self._pair_requested:
            # whatsmeow wants the first QR event before PairPhone (neonize#57, #192).
            self._pair_requested = True
            await self._request_pair_code(client, self._pair_phone)
        if self._pair_code is None:
            host.show(qr.qr_terminal_text(data))
            host.report(f"waiting for QR scan (see journalctl or {host.qr_png_path})")

    @guarded("PairStatusEv")
    async def on_pair_status(self, client: GoClient, ev: Any) -> None:
        if ev.Status == PairStatus.SUCCESS:
            number = mask(from_whatsapp(ev.ID.User)) if ev.ID.User else "an unknown number"
            logger.info("linked to WhatsApp as {} ({})", number, ev.Platform or "?")
            # whatsmeow pair.go saves the device before PairSuccess: record it now, not at
            # the ConnectedEv that follows, or a crash between them orphans the new device.
            await self._host.note_device(ev.ID)
        else:
            logger.error("linking to WhatsApp failed: {}", ev.Error or "no reason given")

    @property
    def pair_code(self) -> str | None:
        """The pair code shown (ABCD-EFGH) while not linked, else None."""
        return None if self._host.connected.is_set() else self._pair_code

    async def pair(self, phone: str) -> str:
        """A pair code for `phone` (E.164) asked while running, e.g. from the console.

        Raises `AlreadyLinked` when connected, `GatewayError` when Go has not offered a
        login yet or refused. Only once the live client has shown a QR: whatsmeow's
        PairPhone needs the login websocket (neonize#57; whatsmeow pair-code.go PairPhone), and a client
        of another attempt panics the process (NEONIZE.md)."""
        host = self._host
        if host.connected.is_set():
            raise AlreadyLinked("WhatsApp is already linked: log out first to link again")
        client = host.client
        if client is None or client is not self._offered or not host.is_current(client):
            raise GatewayError("WhatsApp has not offered a login yet (no QR code shown): "
                               "try again in a few seconds")
        self._pair_requested = True
        code = await self._ask(client, phone)
        self._show_pair_code(code, phone)
        return qr.format_pair_code(code)

    async def _ask(self, client: GoClient, phone: str) -> str:
        return await self._host.call(
            "requesting a pair code",
            client.PairPhone(phone.removeprefix("+"), True, client_name=ClientName.LINUX))

    async def _request_pair_code(self, client: GoClient, phone: str) -> None:
        try:
            code = await self._ask(client, phone)
        except GatewayError as exc:
            logger.error("no pair code ({}): scan the QR code instead", exc)
            return
        self._show_pair_code(code, phone)

    def _show_pair_code(self, code: str, phone: str) -> None:
        self._pair_code = qr.format_pair_code(code)
        self._host.show(qr.pair_code_instructions(code, mask(phone)))
        self._host.report(
            f"waiting for pair code {self._pair_code} to be entered on {mask(phone)}")

    async def _login_watchdog(self) -> None:
        await self._clock.sleep(self._timeout)
        if not self._host.connected.is_set():
            await self._host.login_timed_out()
