"""The console showed every time in UTC with no label while the CLI showed the business's
local time: a chat at 06:02 in Mexico City read "12:02", a pause "until 14:07 UTC" where
`wabot customers` said 08:07 CST, a follow-up "due … 12:02" where `wabot followups` said
"Sun 08:00 CST (sending hours)". Pages now show the business's time, labelled, as the CLI
does; the JSON API keeps ISO 8601 with the offset and the same field meanings."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx

from bot.business import Business
from bot.clock import VirtualClock
from bot.models import CustomerKey
from tests.fakes.pipeline import pipeline
from tests.web.conftest import TOKEN, client, console_settings  # noqa: F401  (fixture)

ANA = "+5215512345678"
ANA_URL = "%2B5215512345678"
SATURDAY_0602_CST = datetime(2026, 1, 10, 12, 2, tzinfo=UTC)
# Sending hours start at 08:00 every day: a follow-up due at 06:02 goes out at 08:00.
SHOP = Business(name="Casa Azul", persona="Sofía, a shop assistant",
                timezone="America/Mexico_City",
                hours=dict.fromkeys(["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                                    "08:00-20:00"))
UTC_READINGS = re.compile(r"\b(12:02|14:07|06:02 UTC|T12:02)\b")


async def pages(p, *paths: str) -> dict[str, str]:
    async with httpx.AsyncClient(base_url=p.app.web.url, headers={"Accept": "text/html"},
                                 timeout=10) as b:
        await b.post("/login", data={"token": TOKEN})
        out = {}
        for path in paths:
            got = await b.get(path)
            assert got.status_code == 200, (path, got.text)
            out[path] = got.text
        return out


async def test_every_time_on_the_pages_is_the_business_local_time_labelled(console_settings):  # noqa: F811
    clock = VirtualClock(SATURDAY_0602_CST)
    async with pipeline(console_settings, clock=clock, business=SHOP, serve_http=True) as p:
        await p.say(ANA, "hola, ¿abren mañana?", push_name="Ana")
        await p.settle()
        key = CustomerKey(p.settings.tenant, ANA)
        assert p.app.unit.followups is not None
        await p.app.unit.followups.schedule(key, "agent", "ask about the blue bag",
                                            SATURDAY_0602_CST + timedelta(days=1))
        await p.app.unit.alerts.alert("turn_failed", "a turn failed", ANA)
        async with client(p) as api:
            paused = await api.post(f"/api/v1/customers/{ANA_URL}/pause",
                                    json={"for": "2h5m"})
            assert paused.status_code == 200, paused.text
            # The API keeps ISO 8601 with the offset, meaning what it meant: the instant.
            assert datetime.fromisoformat(paused.json()["paused_until"]) == datetime(
                2026, 1, 10, 14, 7, tzinfo=UTC)
            runs = re.findall(r'href="/runs/(\d+)"', (await pages(
                p, f"/customers/{ANA_URL}"))[f"/customers/{ANA_URL}"])
            assert runs, "the agent's reply has no run link"
        shown = await pages(p, "/", "/customers", f"/customers/{ANA_URL}",
                            f"/runs/{runs[0]}", "/connection")

    customer = shown[f"/customers/{ANA_URL}"]
    assert "2026-01-10 06:02 CST" in customer  # the chat lines
    assert "paused until 2026-01-10 08:07 CST" in customer
    assert "Sun 2026-01-11 08:00 CST (due 2026-01-11 06:02 CST; sending hours)" in customer
    assert "2026-01-10 06:02 CST" in shown["/customers"]  # last contact
    assert "2026-01-10 06:02 CST" in shown[f"/runs/{runs[0]}"]
    assert "2026-01-10 06:02 CST" in shown["/"]  # the alert
    for path, html in shown.items():
        assert not UTC_READINGS.search(html), (path, UTC_READINGS.findall(html))
