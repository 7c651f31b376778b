"""The dashboard's "Today" is read from the database for the business's local day: the
same numbers after a restart on the same database (regression: turns and failures were
the daemon's counters since start-up, and the day was UTC's)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx

from bot.business import Business
from bot.clock import VirtualClock
from bot.web.stats import local_midnight
from tests.fakes.pipeline import BUSINESS, START, pipeline
from tests.web.conftest import client
from tests.web.test_pages import HTML

ANA, BOB = "+5215512345678", "+5215587654321"
KEYS = ("day", "messages_in", "messages_out", "turns", "failures", "tokens_in",
        "tokens_out", "cost_usd")


async def _today(p) -> dict:
    async with client(p) as api:
        got = (await api.get("/api/v1/status")).json()["today"]
    return {k: got[k] for k in KEYS}


async def test_today_is_unchanged_after_a_restart(console_settings, openai_server):
    # Bob's failed turn stays failed: no retry once the model answers again (issue #16.7).
    console_settings = console_settings.model_copy(update={
        "retry": console_settings.retry.model_copy(update={"enabled": False})})
    clock = VirtualClock(START)
    openai_server.error(500, match=lambda body: "BOB-FAILS" in str(body))
    async with pipeline(console_settings, clock=clock, serve_http=True) as p:
        await p.say(ANA, "hola")
        await p.say(BOB, "BOB-FAILS")
        await p.settle()
        await p.advance(60)
        await p.say(ANA, "¿tienen la blusa azul?")
        await p.settle()
        before = await _today(p)
    assert before["messages_in"] == 3 and before["turns"] == 3 and before["failures"] == 1
    assert before["messages_out"] >= 2 and before["tokens_in"] > 0 and before["cost_usd"] > 0
    assert before["day"] == "2026-01-05"  # Mexico City's date at 09:00 local

    async with pipeline(console_settings, clock=VirtualClock(clock.now()),
                        serve_http=True) as again:
        assert await _today(again) == before
        async with httpx.AsyncClient(base_url=again.app.web.url, headers=HTML) as b:
            from tests.web.conftest import TOKEN

            await b.post("/login", data={"token": TOKEN})
            page = (await b.get("/")).text
        assert '<dd data-testid="turns">3</dd>' in page
        assert '<dd data-testid="failures">1</dd>' in page


async def test_today_starts_at_the_businesss_local_midnight(console_settings, openai_server):
    # 05:30 UTC on Jan 6 is still Jan 5 in Mexico City (UTC-6): yesterday evening counts.
    late = datetime(2026, 1, 6, 5, 30, tzinfo=UTC)
    clock = VirtualClock(datetime(2026, 1, 6, 3, 0, tzinfo=UTC))  # Jan 5, 21:00 local
    night = Business(name="Casa Azul", persona="Sofía", timezone="America/Mexico_City")
    async with pipeline(console_settings, clock=clock, business=night,
                        serve_http=True) as p:
        await p.say(ANA, "hola")
        await p.settle()
        await clock.advance((late - clock.now()).total_seconds())
        today = await _today(p)
        assert today["day"] == "2026-01-05" and today["messages_in"] == 1
        assert today["turns"] == 1
        await clock.advance(timedelta(hours=1).total_seconds())  # 00:30 local, Jan 6
        today = await _today(p)
        assert today["day"] == "2026-01-06"
        assert (today["messages_in"], today["turns"], today["tokens_in"]) == (0, 0, 0)


def test_local_midnight() -> None:
    zone = ZoneInfo("America/Mexico_City")
    at = datetime(2026, 1, 6, 5, 30, tzinfo=UTC)
    assert local_midnight(at, zone) == datetime(2026, 1, 5, 6, 0, tzinfo=UTC)
    assert local_midnight(at, UTC) == datetime(2026, 1, 6, 0, 0, tzinfo=UTC)
    assert BUSINESS.tz == zone
