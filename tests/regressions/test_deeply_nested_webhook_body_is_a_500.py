"""A signed webhook body of a few thousand nested brackets ended in an uncaught
RecursionError inside json.loads and a 500, which Meta would redeliver forever. The body is
parsed with a depth limit and answered 400; Meta's own payloads still parse."""

from __future__ import annotations

import json

import httpx
from fastapi import FastAPI

from bot.gateway.cloud.webhook import PATH, webhook_router
from tests.fakes import meta_webhooks as meta


async def post(body: bytes) -> tuple[httpx.Response, meta.Intake]:
    receiver = meta.Intake()
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
        assert receiver.messages == [] and receiver.statuses == []


async def test_brackets_inside_strings_do_not_count():
    payload = meta.text("5215512345678", "[" * 500 + "{" * 500)
    answer, receiver = await post(json.dumps(payload).encode())
    assert answer.status_code == 200
    assert receiver.messages[0].text == "[" * 500 + "{" * 500
