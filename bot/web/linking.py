"""Linking WhatsApp from the console: the connection card, the QR code and the pair code.

The console reads the gateway through the seam (`bot.gateway.base.Gateway`): `connected`,
`connected_as`, `status` (systemd's STATUS line) and, for a transport linked from here,
`linking` (the QR's file, the pair code on show, a pair code asked while running). Nothing
here imports a transport.
"""

from __future__ import annotations

from typing import Any

from loguru import logger

from bot.gateway.base import Gateway, GatewayError
from bot.phones import PhoneError, mask, parse_typed
from bot.web.i18n import Said


class AlreadyLinked(Said, RuntimeError):
    """WhatsApp is linked and connected (or the transport has no pairing): 409."""


class InvalidPhone(Said, ValueError):
    """The number typed in the pair-code form is not E.164: 422."""


class NotReady(Said, RuntimeError):
    """WhatsApp has not offered a login yet, or refused the pair code: 503."""


def _is_up(gateway: Gateway) -> bool:
    connected = gateway.connected
    return connected.is_set() if connected is not None else True


def connection(gateway: Gateway) -> dict[str, Any]:
    """The WhatsApp connection as systemd's STATUS line says it, the QR if shown, the pair
    code if one waits to be entered, and whether a pair code can be asked for."""
    is_up = _is_up(gateway)
    own = gateway.connected_as
    status = gateway.status or (f"connected as {mask(own)}" if is_up and own else (
        "connected" if is_up else "not connected"))
    link = gateway.linking
    code = link.pair_code if link is not None else None
    # Offline (WhatsApp unreachable, reconnecting), no login can be offered: a pair-code
    # form would only answer "try again in a few seconds", however often it is tried.
    offline = not is_up and status.startswith("offline")
    return {"connected": is_up, "connected_as": mask(own) if own else None, "status": status,
            "offline": offline,
            "qr": bool(link is not None and not is_up and link.qr_png_path.is_file()),
            "pair_code": code if code and not is_up else None,
            "can_pair": not is_up and not offline and link is not None}


def qr_png(gateway: Gateway) -> bytes | None:
    link = gateway.linking
    if link is None or not link.qr_png_path.is_file():
        return None
    return link.qr_png_path.read_bytes()


async def request_pair_code(gateway: Gateway, phone: str) -> dict[str, Any]:
    """Ask the running gateway for a pair code for the business number `phone`."""
    try:
        number = parse_typed(phone.strip())
    except PhoneError as exc:
        raise InvalidPhone(key="pair_phone", phone=phone) from exc
    link = gateway.linking
    if _is_up(gateway):
        raise AlreadyLinked(key="already_linked")
    if link is None:
        raise AlreadyLinked(key="no_pairing")
    try:
        code = await link.request_pair_code(number)
    except GatewayError as exc:
        if _is_up(gateway):  # linked meanwhile (the QR was scanned)
            raise AlreadyLinked(str(exc)) from None
        raise NotReady(key="no_pair_code", why=str(exc)) from None
    logger.info("pair code asked from the console for {}", mask(number))
    return {"phone": mask(number), "pair_code": code,
            "instructions": "On that phone: WhatsApp → Settings → Linked devices → Link a "
                            "device → Link with phone number instead → enter the code. "
                            "It expires in about two and a half minutes."}
