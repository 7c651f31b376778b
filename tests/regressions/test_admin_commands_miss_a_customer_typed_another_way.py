"""`wabot pause "+52 55 1234 5678"` made a new customer while `+5215512345678` (as WhatsApp
delivers them) kept being answered; `forget` forgot nothing. Typed numbers now resolve to
the existing customer; digits that are not 0-9, `+0000000` and extensions are refused."""

from __future__ import annotations

import asyncio
import json

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.models import CustomerKey
from bot.pipeline.inbox import Fed
from bot.stores.customers import CustomerStore
from bot.stores.db import Database
from tests.cli.test_admin import env  # noqa: F401  (fixture)
from tests.fakes.pipeline import make_settings, pipeline

ANA = "+5215512345678"  # how WhatsApp delivers a Mexican mobile
TYPED = ["+52 55 1234 5678", "0052 55-1234-5678", "+52-55-1234-5678"]


def wabot(*args: str):
    return CliRunner().invoke(app, list(args))


async def seed(db_url, tmp_path, server, tenant) -> None:
    settings = make_settings(db_url, tmp_path / "seed", server, tenant,
                             presenter={"enabled": False}, inbox={"debounce_seconds": 0})
    async with pipeline(settings) as p:
        await p.say(ANA, "hola, soy Ana", push_name="Ana")
        await p.settle()


async def phones(db_url: str, tenant: str) -> list[str]:
    db = Database(db_url)
    try:
        return sorted(c.phone for c in await CustomerStore(db).all(tenant))
    finally:
        await db.close()


async def paused(db_url: str, tenant: str) -> bool:
    db = Database(db_url)
    try:
        customer = await CustomerStore(db).get(CustomerKey(tenant, ANA))
    finally:
        await db.close()
    return customer is not None and customer.paused_until is not None


@pytest.mark.parametrize("typed", TYPED)
def test_pause_history_export_and_forget_find_the_customer_typed_without_the_1(
        env, db_url, tenant, tmp_path, openai_server, typed):  # noqa: F811
    asyncio.run(seed(db_url, tmp_path, openai_server, tenant))

    result = wabot("pause", typed)
    assert result.exit_code == 0, result.output
    assert f"paused {ANA}" in result.output
    assert asyncio.run(paused(db_url, tenant))
    assert wabot("resume", typed).exit_code == 0
    assert not asyncio.run(paused(db_url, tenant))

    history = wabot("history", typed)
    assert history.exit_code == 0, history.output
    assert "hola, soy Ana" in history.output
    exported = wabot("export", typed, "-o", str(tmp_path / "ana.json"))
    assert exported.exit_code == 0, exported.output
    assert json.loads((tmp_path / "ana.json").read_text())["customer"]["phone"] == ANA
    assert wabot("runs", typed).exit_code == 0

    assert asyncio.run(phones(db_url, tenant)) == [ANA]  # no second customer was made
    forgot = wabot("forget", typed, "--yes")
    assert forgot.exit_code == 0, forgot.output
    assert f"forgot {ANA}: 2 messages" in forgot.output
    assert asyncio.run(phones(db_url, tenant)) == []


@pytest.mark.parametrize(("typed", "why"), [
    ("+٥٢١٥٥١٢٣٤٥٦٧٨", "digits other than 0-9"),
    ("+５２１５５１２３４５６７８", "digits other than 0-9"),
    ("+0000000", "no country has the code"),
    ("+52 55 1234 5678 ext. 12", "extensions"),
    ("+52 55 1234 5678 x12", "extensions"),
    ("+52 55 1234 5678;ext=3", "extensions"),
])
@pytest.mark.parametrize("command", ["pause", "resume", "history", "export", "forget", "runs"])
def test_numbers_no_whatsapp_id_can_have_are_refused_with_exit_2(env, command, typed, why):  # noqa: F811
    result = wabot(command, typed)
    assert result.exit_code == 2, result.output
    assert why in result.output


async def test_access_deny_typed_without_the_1_stops_the_whatsapp_form(
        tmp_path, openai_server, tenant):
    settings = make_settings(f"sqlite:///{tmp_path / 'wabot.db'}", tmp_path, openai_server,
                             tenant, access={"deny": ["+52 55 1234 5678"]})
    async with pipeline(settings) as p:
        assert await p.app.unit.inbox.feed(p.message(ANA, "hola")) is Fed.DENIED
        await p.settle()
    assert openai_server.chat_requests() == []


async def test_access_allow_typed_with_the_1_lets_the_other_form_in(
        tmp_path, openai_server, tenant):
    settings = make_settings(f"sqlite:///{tmp_path / 'wabot.db'}", tmp_path, openai_server,
                             tenant, access={"allow": ["+52 1 55 9999 0000"]})
    async with pipeline(settings) as p:
        assert await p.app.unit.inbox.feed(p.message("+525599990000", "hola")) is Fed.QUEUED
        assert await p.app.unit.inbox.feed(p.message(ANA, "hola")) is Fed.DENIED
