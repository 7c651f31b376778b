"""Webhook bodies shaped like Meta's, signed like Meta signs them, and a sender that
retries like Meta does (anything but 2xx is delivered again)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from tests.fakes.graph_server import PHONE_NUMBER_ID

APP_SECRET = "app-secret-for-tests"
VERIFY_TOKEN = "verify-token-for-tests"
_ids = itertools.count(1)


def sign(body: bytes, secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def envelope(*, messages: list[dict[str, Any]] | None = None,
             statuses: list[dict[str, Any]] | None = None, names: dict[str, str] | None = None,
             phone_number_id: str = PHONE_NUMBER_ID) -> dict[str, Any]:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550100199", "phone_number_id": phone_number_id},
    }
    if messages is not None:
        value["messages"] = messages
        value["contacts"] = [{"profile": {"name": name}, "wa_id": wa_id}
                             for wa_id, name in (names or {}).items()]
    if statuses is not None:
        value["statuses"] = statuses
    return {"object": "whatsapp_business_account",
            "entry": [{"id": "102290129340398", "changes": [{"field": "messages",
                                                             "value": value}]}]}


def message(wa_id: str, kind: str = "text", msg_id: str | None = None,
            at: float | None = None, **content: Any) -> dict[str, Any]:
    """One inbound message; `content` is the type's object (text: body=…)."""
    raw: dict[str, Any] = {"from": wa_id, "id": msg_id or f"wamid.IN{next(_ids):08d}",
                           "timestamp": str(int(at if at is not None else time.time())),
                           "type": kind}
    if kind == "contacts":
        raw["contacts"] = content["cards"]
    else:
        raw[kind] = content
    return raw


def text(wa_id: str, body: str, msg_id: str | None = None, name: str = "",
         at: float | None = None) -> dict[str, Any]:
    return envelope(messages=[message(wa_id, "text", msg_id, at, body=body)],
                    names={wa_id: name} if name else None)


def status(wamid: str, wa_id: str, state: str, error: tuple[int, str] | None = None,
           at: float | None = None) -> dict[str, Any]:
    raw: dict[str, Any] = {"id": wamid, "status": state, "recipient_id": wa_id,
                           "timestamp": str(int(at if at is not None else time.time()))}
    if error is not None:
        raw["errors"] = [{"code": error[0], "title": error[1]}]
    return envelope(statuses=[raw])


async def post(client: httpx.AsyncClient, url: str, payload: dict[str, Any],
               secret: str = APP_SECRET) -> httpx.Response:
    body = json.dumps(payload).encode()
    return await client.post(url, content=body, headers={
        "Content-Type": "application/json", "X-Hub-Signature-256": sign(body, secret)})


async def deliver(client: httpx.AsyncClient, url: str | Any, payload: dict[str, Any],
                  retry_every: float = 0.2, retry_cap: float = 2.0,
                  give_up: float = 120.0) -> int:
    """Post until answered 2xx, backing off as Meta does (here from `retry_every`, doubling
    up to `retry_cap` seconds); `url` may be a callable giving the current address (a
    restarted daemon listens elsewhere). Returns the number of attempts."""
    deadline = time.monotonic() + give_up
    wait = retry_every
    for attempt in itertools.count(1):
        target = url() if callable(url) else url
        try:
            if target and (await post(client, target, payload)).is_success:
                return attempt
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"webhook not accepted after {attempt} attempts")
        await asyncio.sleep(wait)
        wait = min(retry_cap, wait * 2)
    raise AssertionError("unreachable")


class Intake:
    """What a Cloud API webhook router hands its messages to (`webhook_router`'s receiver),
    recording them: for tests of the route alone, with no gateway behind it."""

    tenant = "t"

    def __init__(self) -> None:
        from bot.clock import VirtualClock
        from bot.settings import CloudSettings

        self.s = CloudSettings(phone_number_id=PHONE_NUMBER_ID, app_secret=APP_SECRET,
                               verify_token=VERIFY_TOKEN)
        self.clock = VirtualClock(datetime(2026, 1, 5, 15, 0, tzinfo=UTC))
        self.messages: list[Any] = []
        self.statuses: list[Any] = []

    async def dispatch(self, message: Any) -> None:
        self.messages.append(message)

    async def record_status(self, change: Any) -> None:
        self.statuses.append(change)

