"""The Cloud API webhook, `/webhooks/whatsapp`, as a router for the daemon's HTTP server.

GET answers Meta's subscription handshake. POST checks `X-Hub-Signature-256` (HMAC-SHA256
of the raw body with the app secret) and answers 200 only once every message in the body is
journaled and every status is recorded: Meta redelivers anything not answered 2xx, which is
what makes a crash lose nothing. A redelivered message is found in the journal and dropped.

The receiver is a plain ASGI app (`Webhook`): the console's server serves it ahead of its
middleware and routing (login, CSRF, security headers, body limit are the console's; Meta's
POSTs carry their own proof, the signature), which cost a webhook more than its own work
(issue #23). The router still lists it, so any FastAPI app can mount it too.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol
from urllib.parse import parse_qsl

from fastapi import APIRouter
from loguru import logger
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

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
_SIGNATURE = SIGNATURE.lower().encode()


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
Answer = tuple[int, str]
OK: Answer = (200, "ok")


class Webhook:
    """The webhook for one number's gateway, or for every Cloud API number this process
    serves (`gateway` a callable listing them): each change goes to the number its
    `metadata.phone_number_id` names, checked with that number's app secret."""

    def __init__(self, gateway: Receiver | Receivers) -> None:
        self.receivers: Receivers = gateway if callable(gateway) else (lambda: [gateway])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        method = scope["method"]
        if method == "POST":
            status, text = await self.receive(scope, receive)
        elif method in ("GET", "HEAD"):
            status, text = self.handshake(scope)
        else:
            await _answer(send, 405, "method not allowed", allow=b"GET, HEAD, POST")
            return
        await _answer(send, status, "" if method == "HEAD" else text)

    def handshake(self, scope: Scope) -> Answer:
        q = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"),
                           keep_blank_values=True))
        tokens = [r.s.verify_token.get_secret_value() for r in self.receivers()
                  if r.s.verify_token]
        if q.get("hub.mode") == "subscribe" and any(hmac.compare_digest(
                q.get("hub.verify_token", ""), token) for token in tokens):
            logger.info("Meta verified the webhook subscription")
            return 200, q.get("hub.challenge", "")
        logger.warning("webhook handshake refused: wrong hub.verify_token or hub.mode")
        return 403, "forbidden"

    async def receive(self, scope: Scope, receive: Receive) -> Answer:
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the sender went away: nothing to answer
                return 400, "incomplete body"
            body += message.get("body", b"")
            if len(body) > MAX_BODY:  # Meta's payloads are a few KB: not from Meta
                logger.warning("webhook refused: body over {} bytes", MAX_BODY)
                return 413, "too large"
            if not message.get("more_body", False):
                break
        every = self.receivers()
        targets = every if len(every) == 1 else _addressed(body, every)
        if not targets:
            logger.warning("webhook refused: it names no Cloud API number served here")
            return 404, "unknown number"
        header = next((v.decode("latin-1") for k, v in scope["headers"] if k == _SIGNATURE),
                      None)
        worst = OK
        for target in targets:
            try:
                answer = await _receive(target, body, header)
            except Exception:  # ours, not Meta's: it comes again, and the log says why
                logger.exception("webhook not acknowledged: Meta will deliver it again")
                answer = (500, "try again")
            if answer[0] >= worst[0]:
                worst = answer
        return worst


async def _answer(send: Send, status: int, text: str, allow: bytes = b"") -> None:
    body = text.encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"),
               (b"content-length", str(len(body)).encode())]
    if allow:
        headers.append((b"allow", allow))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def webhook_router(gateway: Receiver | Receivers) -> APIRouter:
    """`Webhook` at `PATH`, as a router (see the module)."""
    router = APIRouter()
    router.routes.append(Route(PATH, Webhook(gateway), methods=["GET", "POST"]))
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


async def _receive(gateway: Receiver, body: bytearray, header: str | None) -> Answer:
    s = gateway.s
    secret = s.app_secret.get_secret_value() if s.app_secret else ""
    if not signed(body, header, secret):
        logger.warning("webhook refused: {} does not match the body ({} bytes) signed "
                       "with cloud.app_secret", SIGNATURE, len(body))
        return 401, "bad signature"
    try:
        events = parse(loads(bytes(body)), gateway.tenant, s.phone_number_id,
                       gateway.clock.now())
    except ValueError as exc:  # signed by Meta but unreadable: redelivery cannot help
        logger.error("webhook body ignored: {}", exc)
        return 400, "unreadable body"
    for sender in events.invalid:  # answered 200 with the rest: redelivery cannot help
        logger.bind(customer=sender).warning(
            "webhook message dropped: its sender id is not 6 to 15 digits")
    for msg in events.messages:
        await gateway.dispatch(msg)  # returns once the message is journaled
    for change in events.statuses:
        await gateway.record_status(change)
    if events.foreign:
        logger.debug("{} webhook change(s) for another number ignored", events.foreign)
    for msg in events.messages:
        logger.bind(customer=mask(msg.phone), msg_id=msg.msg_id).debug(
            "webhook message journaled")
    return OK
