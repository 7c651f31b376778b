"""`wabot pause +52155123` (a typo) succeeded and created a phantom lead that `wabot
customers` showed "paused until 9998-12-31"; the API did the same. Pausing a number that
never wrote is refused unless asked (`--create`), and a pause without end reads "until
resumed"."""

from __future__ import annotations

import asyncio

import httpx

from bot.models import CustomerKey
from bot.stores.customers import CustomerStore
from bot.stores.db import Database
from tests.cli.test_admin import env, wabot  # noqa: F401  (fixture)
from tests.fakes.pipeline import make_settings, pipeline

ANA = "+5215512345678"
TYPO = "+52155123"
TOKEN = "test-console-token-0123456789"


async def known(db_url: str, tenant: str, phone: str) -> bool:
    db = Database(db_url)
    try:
        return await CustomerStore(db).get(CustomerKey(tenant, phone)) is not None
    finally:
        await db.close()


def test_the_cli_refuses_an_unknown_number_unless_created(env, db_url, tenant):  # noqa: F811
    refused = wabot("pause", TYPO)
    assert refused.exit_code == 1
    assert "is not a customer" in refused.output and "--create" in refused.output
    assert not asyncio.run(known(db_url, tenant, TYPO))
    made = wabot("pause", ANA, "--create")
    assert made.exit_code == 0, made.output
    assert "until resumed" in made.output
    listed = wabot("customers")
    assert "paused until resumed" in listed.output and "9998" not in listed.output


async def test_the_api_refuses_an_unknown_number(db_url, tmp_path, openai_server, tenant):
    settings = make_settings(db_url, tmp_path, openai_server, tenant,
                             presenter={"enabled": False}, http={"port": 0, "api_token": TOKEN})
    async with pipeline(settings, serve_http=True) as p, httpx.AsyncClient(
            base_url=p.app.web.url, headers={"Authorization": f"Bearer {TOKEN}"}) as api:
        answer = await api.post("/api/v1/customers/52155123/pause")
        assert answer.status_code == 404, answer.text
        assert await p.app.unit.customers.get(CustomerKey(tenant, TYPO)) is None
