"""A signed webhook body of a few thousand nested brackets ended in an uncaught
RecursionError inside json.loads and a 500, which Meta would redeliver forever. The body is
parsed with a depth limit and answered 400; Meta's own payloads still parse."""

from __future__ import annotations

import json
from typing import Any

import httpx
from fastapi import FastAPI

from bot.clock import VirtualClock
from bot.gateway.cloud.webhook import PATH, webhook_router
from bot.settings import CloudSettings
from tests.fakes import meta_webhooks as meta
from tests.fakes.pipeline import START


class Receiver:
    tenant = "t"

    def __init__(self) -> None:
        self.s = CloudSettings(phone_number_id=meta.PHONE_NUMBER_ID,
                               app_secret=meta.APP_SECRET, verify_token=meta.VERIFY_TOKEN)
        self.clock = VirtualClock(START)
        self.got: list[Any] = []

    async def dispatch(self, message: Any) -> None:
        self.got.append(message)

    async def record_status(self, change: Any) -> None:
        self.got.append(change)


async def post(body: bytes) -> tuple[httpx.Response, Receiver]:
    receiver = Receiver()
    app = FastAPI()
    app.include_router(webhook_router(receiver))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://meta") as client:
        answer = await client.post(PATH, content=body, headers={
            "X-Hub-Signature-256": meta.sign(body)})
    return answer, receiver


async def test_a_deeply_nested_signed_body_is_400():
    for body in (b"[" * 5000 + b"]" * 5000, b'{"entry": ' + b"[" * 5000 + b"]" * 5000
                 + b"}"):
        answer, receiver = await post(body)
        assert answer.status_code == 400, answer.text
        assert receiver.got == []


async def test_brackets_inside_strings_do_not_count():
    payload = meta.text("5215512345678", "[" * 500 + "{" * 500)
    answer, receiver = await post(json.dumps(payload).encode())
    assert answer.status_code == 200
    assert receiver.got[0].text == "[" * 500 + "{" * 500
