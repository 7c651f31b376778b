"""Every Cloud API webhook went through the console's whole stack (security headers, body
limit, FastAPI's error handling and a walk of every console route before its own), which
cost a webhook more than its signature check and journal write (issue #23). The console's
server now hands `/webhooks/whatsapp` straight to the webhook's own ASGI app; what the
webhook itself guarantees (signature, depth-limited JSON, journal before 200, a size
limit) stays, and every other path is the console's as before."""

from __future__ import annotations

import json

import httpx

from bot.gateway.cloud.webhook import MAX_BODY, PATH, SIGNATURE, webhook_router
from bot.settings import HttpSettings
from bot.web.server import WebServer
from tests.fakes import meta_webhooks as meta


def served(receiver: meta.Intake) -> httpx.AsyncClient:
    """What `wabot run`'s console serves (no console behind it: only the routing counts)."""
    server = WebServer(None, None, HttpSettings(),  # type: ignore[arg-type]
                       extra_routers=[webhook_router(receiver)])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=server.asgi),
                             base_url="http://meta")


async def test_the_webhook_is_answered_ahead_of_the_console_stack():
    receiver = meta.Intake()
    body = json.dumps(meta.text("5215512345678", "hola", msg_id="wamid.A1")).encode()
    async with served(receiver) as http:
        answer = await http.post(PATH, content=body, headers={SIGNATURE: meta.sign(body)})
        console = await http.get("/no-such-page")
    assert answer.status_code == 200 and answer.text == "ok"
    assert [m.msg_id for m in receiver.messages] == ["wamid.A1"]
    assert "content-security-policy" not in answer.headers  # the console's middleware
    assert console.status_code == 404 and "content-security-policy" in console.headers


async def test_what_the_webhook_checks_itself_still_holds():
    receiver = meta.Intake()
    nested = b"[" * 5000 + b"]" * 5000
    huge = b'{"entry": "' + b"x" * MAX_BODY + b'"}'
    async with served(receiver) as http:
        unsigned = await http.post(PATH, content=b"{}", headers={SIGNATURE: "sha256=0"})
        deep = await http.post(PATH, content=nested, headers={SIGNATURE: meta.sign(nested)})
        large = await http.post(PATH, content=huge, headers={SIGNATURE: meta.sign(huge)})
        handshake = await http.get(PATH, params={"hub.mode": "subscribe", "hub.challenge": "7",
                                                 "hub.verify_token": meta.VERIFY_TOKEN})
        wrong = await http.get(PATH, params={"hub.mode": "subscribe", "hub.challenge": "7",
                                             "hub.verify_token": "nope"})
        other = await http.put(PATH, content=b"{}")
    assert (unsigned.status_code, deep.status_code, large.status_code) == (401, 400, 413)
    assert (handshake.status_code, handshake.text) == (200, "7")
    assert wrong.status_code == 403 and other.status_code == 405
    assert receiver.messages == []
