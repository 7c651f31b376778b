"""When WhatsApp drops, refuses or bans the connection for a while: the events after which
the connection waits and reconnects, and never exits.

A disconnect or a keep-alive timeout only clears `connected` (whatsmeow reconnects by
itself); a refused connection or a temporary ban restarts the client after a wait.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, Protocol

from loguru import logger
from neonize.proto.Neonize_pb2 import ConnectFailureReason, TemporaryBan

from bot.clock import Clock
from bot.gateway.restrictions import TEMPORARY_BAN, Restrictions
from bot.gateway.web.goclient import GoClient, enum_name, guarded
from bot.gateway.web.probe import Probe


class OutageHost(Protocol):
    """What the outage handlers need of the connection they serve."""

    connected: asyncio.Event
    restrictions: Restrictions | None
    probe: Probe

    @property
    def linked(self) -> bool: ...

    def is_current(self, client: GoClient | None) -> bool: ...
    def report(self, line: str, log: bool = True) -> None: ...
    def retry_delay(self) -> float: ...
    def request_restart(self, delay: float) -> None: ...


class Outages:
    def __init__(self, host: OutageHost, clock: Clock) -> None:
        self._host = host
        self._clock = clock

    @guarded("DisconnectedEv")
    async def on_disconnected(self, client: GoClient, ev: Any) -> None:
        if not self._host.is_current(client):
            return
        self._host.connected.clear()
        self._host.report("offline: WhatsApp disconnected, reconnecting")

    @guarded("TemporaryBanEv")
    async def on_temporary_ban(self, client: GoClient, ev: Any) -> None:
        host = self._host
        if not host.is_current(client):
            return
        # whatsmeow does not reconnect after a ban; we do once it has expired.
        expire = max(0, int(ev.Expire))  # seconds (goneonize encodes Expire.Seconds())
        until = self._clock.now() + timedelta(seconds=expire)
        reason = enum_name(TemporaryBan.TempBanReason, ev.Code)
        if host.restrictions is not None:
            host.restrictions.impose(TEMPORARY_BAN, until, reason)
        logger.bind(ban_reason=reason, expire_s=expire).error(
            "WhatsApp temporarily banned this number ({}) until {:%Y-%m-%d %H:%M} UTC;"
            " reconnecting after that",
            reason,
            until,
        )
        host.report(f"temporarily banned by WhatsApp until {until:%Y-%m-%d %H:%M} UTC", log=False)
        host.request_restart(expire + host.probe.backoff[0] if expire else host.probe.backoff[1])

    @guarded("ConnectFailureEv")
    async def on_connect_failure(self, client: GoClient, ev: Any) -> None:
        if not self._host.is_current(client):
            return
        # whatsmeow only emits this for failures it will not retry itself.
        delay = self._host.retry_delay()
        logger.warning(
            "WhatsApp refused the connection ({}: {}); reconnecting in {:.0f} s",
            enum_name(ConnectFailureReason, ev.Reason),
            ev.Message or "no message",
            delay,
        )
        self._host.request_restart(delay)

    @guarded("KeepAliveTimeoutEv")
    async def on_keepalive_timeout(self, client: GoClient, ev: Any) -> None:
        # whatsmeow keepalive.go keepAliveLoop: after KeepAliveMaxFailTime (3 min) it calls
        # Disconnect() + autoReconnect, and Disconnect emits no Disconnected event
        # (client.go Disconnect). The socket is not to be trusted from the first timeout.
        logger.warning("WhatsApp keep-alive timed out ({} in a row)", ev.ErrorCount)
        if self._host.is_current(client):
            self._host.connected.clear()
            self._host.report("offline: WhatsApp keep-alive timed out, reconnecting", log=False)

    @guarded("KeepAliveRestoredEv")
    async def on_keepalive_restored(self, client: GoClient, ev: Any) -> None:
        logger.info("WhatsApp keep-alive restored")
        if self._host.is_current(client) and self._host.linked:
            self._host.connected.set()
            self._host.report("connected (keep-alive restored)", log=False)
