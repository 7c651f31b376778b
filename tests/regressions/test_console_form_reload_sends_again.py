"""A failed "send as the business" answered the POST with the page itself, so reloading it
(F5, or the browser restoring the tab) posted the message again: once WhatsApp was back, the
customer got it without the owner pressing Send. The console's forms now answer with a
redirect (POST-redirect-GET): the page after it shows the error and the kept text once, and
a reload sends nothing. Its links name a customer by digits only (`/customers/52155…`)."""

from __future__ import annotations

import asyncio
import re

import httpx

from tests.web.conftest import TOKEN, console_settings, served  # noqa: F401  (fixtures)

ANA = "+5215512345678"


async def test_a_reload_after_a_failed_send_sends_nothing(served):  # noqa: F811
    await served.say(ANA, "is anyone there?")
    await served.settle()
    async with httpx.AsyncClient(base_url=served.app.web.url, headers={"Accept": "text/html"},
                                 timeout=10) as b:
        await b.post("/login", data={"token": TOKEN})
        listed = (await b.get("/customers")).text
        assert 'href="/customers/5215512345678"' in listed  # digits only, nothing escaped
        page = (await b.get("/customers/5215512345678")).text
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)
        served.gateway.connected = asyncio.Event()  # WhatsApp offline
        served.gateway.status = "offline: retrying in 30 s"
        before = len(served.gateway.sent)
        got = await b.post("/customers/5215512345678/send",
                           data={"csrf": csrf, "text": "Ana, soy Rosa"})
        assert got.status_code == 303
        assert got.headers["location"] == "/customers/5215512345678"
        shown = await b.get(got.headers["location"])
        assert "Not sent" in shown.text and ">Ana, soy Rosa</textarea>" in shown.text
        served.gateway.connected.set()  # back: a reload must not send it now
        again = await b.get(got.headers["location"])
        assert again.status_code == 200 and "Not sent" not in again.text
    assert len(served.gateway.sent) == before
