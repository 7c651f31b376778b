"""A gateway that keeps everything in memory: for tests, `wabot chat` and `wabot simulate`."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable

from bot.clock import Clock, SystemClock
from bot.gateway.base import Gateway, GatewayError, OutboundMedia
from bot.models import InboundMessage, Outbound


class MemoryGateway(Gateway):
    """Records every outbound action; inbound messages are pushed with `receive`.

    The connection state is plain attributes a test sets (`connected`, `connected_as`);
    `report` stands for a transport's STATUS line."""

    connected: asyncio.Event | None = None
    connected_as: str | None = None
    status: str | None = None

    def __init__(self, clock: Clock | None = None, *, paced: bool = True) -> None:
        super().__init__()
        self.clock = clock or SystemClock()
        self.paced = paced  # False: stands for many numbers (benchmarks), not one
        self.sent: list[Outbound] = []
        self.media: dict[str, bytes] = {}
        self.media_sent: list[tuple[str, OutboundMedia]] = []  # (chat, media), in order
        self.fail_sends = False
        # Called with the 1-based number of each text send before it is recorded: tests
        # raise NotDelivered / DeliveryUnknown or sleep on the clock to stand for a crash.
        self.before_send: Callable[[int], Awaitable[None]] | None = None
        self.text_sends = 0
        self.listeners: list[Callable[[Outbound], None]] = []
        self._ids = itertools.count(1)
        self.started = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.started = False

    def report(self, line: str) -> None:
        self.status = line
        if self.binding.on_status is not None:
            self.binding.on_status(line)

    async def receive(self, message: InboundMessage) -> None:
        await self.dispatch(message)

    def _record(self, out: Outbound) -> None:
        self.sent.append(out)
        for listener in self.listeners:
            listener(out)

    async def _send_text(self, chat: str, text: str) -> str:
        if self.fail_sends:
            raise GatewayError(f"send to {chat} failed (test switch)")
        self.text_sends += 1
        if self.before_send is not None:
            await self.before_send(self.text_sends)
        self._record(Outbound("text", chat, text, self.clock.now()))
        return f"OUT{next(self._ids)}"

    async def _send_media(self, chat: str, media: OutboundMedia) -> str:
        if self.fail_sends:
            raise GatewayError(f"send to {chat} failed (test switch)")
        self.media_sent.append((chat, media))
        self._record(Outbound(media.kind, chat, f"{media.filename}: {media.caption}".rstrip(
            ": "), self.clock.now()))
        return f"OUT{next(self._ids)}"

    async def _mark_read(self, chat: str, msg_ids: list[str], sender: str = "") -> None:
        self._record(Outbound("read", chat, ",".join(msg_ids), self.clock.now()))

    async def _set_typing(self, chat: str, typing: bool) -> None:
        self._record(Outbound("composing" if typing else "paused", chat, "", self.clock.now()))

    async def download(self, message: InboundMessage, max_bytes: int) -> bytes:
        data = self.media.get(message.msg_id)
        if data is None:
            raise GatewayError(f"no media stored for message {message.msg_id}")
        if len(data) > max_bytes:
            raise GatewayError(f"media of {len(data)} bytes exceeds the {max_bytes}-byte limit")
        return data

    def texts(self, chat: str | None = None) -> list[str]:
        return [
            o.text for o in self.sent if o.action == "text" and (chat is None or o.chat == chat)
        ]
