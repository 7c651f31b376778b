"""The Cloud API webhook, `/webhooks/whatsapp`, as a router for the daemon's HTTP server.

GET answers Meta's subscription handshake. POST checks `X-Hub-Signature-256` (HMAC-SHA256
of the raw body with the app secret) and answers 200 only once every message in the body is
journaled and every status is recorded: Meta redelivers anything not answered 2xx, which is
what makes a crash lose nothing. A redelivered message is found in the journal and dropped.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from fastapi import APIRouter, Request, Response
from loguru import logger

from bot.gateway.cloud.events import loads, parse
from bot.phones import mask

if TYPE_CHECKING:
    from bot.clock import Clock
    from bot.models import InboundMessage
    from bot.settings import CloudSettings
    from bot.stores.outbound import StatusUpdate

PATH = "/webhooks/whatsapp"
SIGNATURE = "X-Hub-Signature-256"
MAX_BODY = 1 << 20


def signature(body: bytes | bytearray, secret: str) -> str:
    """The header value Meta sends with `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signed(body: bytes | bytearray, header: str | None, secret: str) -> bool:
    return bool(header) and hmac.compare_digest(signature(body, secret), header or "")


class Receiver(Protocol):
    """What the webhook needs of the Cloud API gateway it feeds (`gateway.CloudGateway`,
    which builds this router: a Protocol, not an import of it)."""

    tenant: str
    s: CloudSettings
    clock: Clock

    async def dispatch(self, message: InboundMessage) -> None: ...

    async def record_status(self, change: StatusUpdate) -> None: ...


Receivers = Callable[[], Sequence[Receiver]]


def webhook_router(gateway: Receiver | Receivers) -> APIRouter:
    """The webhook for one number's gateway, or for every Cloud API number this process
    serves (`gateway` a callable listing them): each change goes to the number its
    `metadata.phone_number_id` names, checked with that number's app secret."""
    receivers: Receivers = gateway if callable(gateway) else (lambda: [gateway])
    router = APIRouter()

    @router.get(PATH)
    async def handshake(request: Request) -> Response:
        q = request.query_params
        tokens = [r.s.verify_token.get_secret_value() for r in receivers() if r.s.verify_token]
        if q.get("hub.mode") == "subscribe" and any(hmac.compare_digest(
                q.get("hub.verify_token", ""), token) for token in tokens):
            logger.info("Meta verified the webhook subscription")
            return Response(q.get("hub.challenge", ""), media_type="text/plain")
        logger.warning("webhook handshake refused: wrong hub.verify_token or hub.mode")
        return Response("forbidden", status_code=403, media_type="text/plain")

    async def receive(request: Request) -> Response:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:  # Meta's payloads are a few KB: not from Meta
                logger.warning("webhook refused: body over {} bytes", MAX_BODY)
                return Response("too large", status_code=413, media_type="text/plain")
        every = receivers()
        targets = every if len(every) == 1 else _addressed(body, every)
        if not targets:
            logger.warning("webhook refused: it names no Cloud API number served here")
            return Response("unknown number", status_code=404, media_type="text/plain")
        worst = Response("ok", media_type="text/plain")
        for target in targets:
            answer = await _receive(target, body, request.headers.get(SIGNATURE))
            if answer.status_code >= worst.status_code:
                worst = answer
        return worst

    # A plain Starlette route: FastAPI's dependency and response handling cost a webhook
    # more than its signature check (issue #23), and this one needs neither.
    router.add_route(PATH, receive, methods=["POST"], include_in_schema=False)
    return router


def _addressed(body: bytearray, every: Sequence[Receiver]) -> list[Receiver]:
    """The receivers whose number a body's changes name (several numbers of one app)."""
    try:
        ids = {str(change.get("value", {}).get("metadata", {}).get("phone_number_id", ""))
               for entry in loads(bytes(body)).get("entry", [])
               for change in entry.get("changes", [])}
    except (ValueError, AttributeError, TypeError):
        return list(every[:1])  # unreadable: the first answers 400 (or 401) for it
    return [r for r in every if r.s.phone_number_id in ids]


async def _receive(gateway: Receiver, body: bytearray, header: str | None) -> Response:
    s = gateway.s
    secret = s.app_secret.get_secret_value() if s.app_secret else ""
    if not signed(body, header, secret):
        logger.warning("webhook refused: {} does not match the body ({} bytes) signed "
                       "with cloud.app_secret", SIGNATURE, len(body))
        return Response("bad signature", status_code=401, media_type="text/plain")
    try:
        events = parse(loads(bytes(body)), gateway.tenant, s.phone_number_id,
                       gateway.clock.now())
    except ValueError as exc:  # signed by Meta but unreadable: redelivery cannot help
        logger.error("webhook body ignored: {}", exc)
        return Response("unreadable body", status_code=400, media_type="text/plain")
    for sender in events.invalid:  # answered 200 with the rest: redelivery cannot help
        logger.bind(customer=sender).warning(
            "webhook message dropped: its sender id is not 6 to 15 digits")
    try:
        for msg in events.messages:
            await gateway.dispatch(msg)  # returns once the message is journaled
        for change in events.statuses:
            await gateway.record_status(change)
    except Exception:
        logger.exception("webhook not acknowledged: Meta will deliver it again")
        return Response("try again", status_code=500, media_type="text/plain")
    if events.foreign:
        logger.debug("{} webhook change(s) for another number ignored", events.foreign)
    for msg in events.messages:
        logger.bind(customer=mask(msg.phone), msg_id=msg.msg_id).debug(
            "webhook message journaled")
    return Response("ok", media_type="text/plain")
