"""Why the WhatsApp Web connection gives up for good, and the events that tell it to.

After a logout, another session taking the number, or an outdated client, whatsmeow does
not reconnect and neither do we: the connection finishes with a `GatewayExit`, and the
daemon exits (78 for the ones that want a human, so systemd does not hot-loop).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any

from neonize.proto.Neonize_pb2 import ConnectFailureReason

from bot.gateway.web.goclient import GoClient, enum_name, guarded


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


Finish = Callable[[GatewayExit, str], Awaitable[None]]


class Exits:
    """The handlers of the events that end the connection: each finishes it with its reason."""

    def __init__(self, finish: Finish) -> None:
        self._finish = finish

    @guarded("LoggedOutEv")
    async def on_logged_out(self, client: GoClient, ev: Any) -> None:
        reason = enum_name(ConnectFailureReason, ev.Reason)
        await self._finish(GatewayExit.LOGGED_OUT, logout_message(int(ev.Reason), reason))

    @guarded("StreamReplacedEv")
    async def on_stream_replaced(self, client: GoClient, ev: Any) -> None:
        await self._finish(
            GatewayExit.STREAM_REPLACED,
            "the number was opened in another WhatsApp Web session/instance: stopping",
        )

    @guarded("ClientOutdatedEv")
    async def on_client_outdated(self, client: GoClient, ev: Any) -> None:
        await self._finish(
            GatewayExit.CLIENT_OUTDATED,
            "WhatsApp rejected this client version as outdated: upgrade neonize",
        )


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
