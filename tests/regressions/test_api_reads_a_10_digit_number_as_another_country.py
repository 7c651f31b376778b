"""`POST /api/v1/messages {"to": "5512345678"}` (a Mexico City number without its country
code) became +55 12345678 in Brazil, waited 30 s and left a paused phantom customer. The
CLI refuses the same input ("has no country code"); the API now does too, with 422, and
finds the customer WhatsApp knows under another form of a typed number, as the CLI does."""

from __future__ import annotations

import pytest

from bot.models import CustomerKey
from tests.web.conftest import api, console_settings, served  # noqa: F401  (fixtures)

ANA = "+5215512345678"  # as WhatsApp delivers a Mexican mobile


@pytest.mark.parametrize("typed", ["5512345678", "55 1234 5678", "5215512345678"])
async def test_a_number_without_country_code_is_refused_and_makes_no_customer(
        served, api, typed):  # noqa: F811
    sent = await api.post("/api/v1/messages", json={"to": typed, "text": "hola"})
    assert sent.status_code == 422, sent.text
    assert "has no country code" in sent.json()["error"]
    assert served.gateway.sent == []
    assert (await api.get("/api/v1/customers")).json()["total"] == 0


async def test_a_number_typed_as_dialled_reaches_the_customer_whatsapp_knows(served, api):  # noqa: F811
    await served.say(ANA, "hola, soy Ana", push_name="Ana")
    await served.settle()
    sent = await api.post("/api/v1/messages", json={"to": "+52 55 1234 5678", "text": "hola"})
    assert sent.status_code == 200, sent.text
    assert sent.json()["to"] == ANA
    assert served.texts_to(ANA)[-1] == "hola"
    assert (await api.get("/api/v1/customers")).json()["total"] == 1
    customer = await served.app.unit.customers.get(CustomerKey(served.settings.tenant, ANA))
    assert customer.paused_until is not None
