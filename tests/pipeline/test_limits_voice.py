"""Voice-note transcription is counted (issue #16.12): its length, estimated from the size,
costs tokens in the customer's daily budget and seconds in a business-wide daily budget;
over either, the agent asks the customer to type and no transcription is paid for."""

from __future__ import annotations

from bot.models import CustomerKey, MessageKind
from bot.ops.status import format_status, read_status
from bot.pipeline.media import OVER_BUDGET
from bot.stores.customers import utc_day
from bot.stores.usage_lines import VOICE
from tests.fakes.pipeline import make_settings, pipeline

ANA = "+5215512345678"
BOB = "+14155550123"
MINUTE = b"OggS" + b"\x00" * (2000 * 60 - 4)  # a minute of voice at the default rate


def transcriptions(server) -> list:
    return [r for r in server.requests if r.path == "/v1/audio/transcriptions"]


def user_texts(server) -> list[str]:
    return [m["content"] for b in server.chat_requests() for m in b["messages"]
            if m["role"] == "user"]


async def send_voice(p, phone: str) -> None:
    voice = p.message(phone, "", kind=MessageKind.VOICE)
    p.gateway.media[voice.msg_id] = MINUTE
    await p.app.unit.inbox.feed(voice)
    await p.settle()


async def test_a_transcription_costs_the_customer_tokens_and_the_business_seconds(
        db_url, tmp_path, openai_server, tenant):
    openai_server.transcript = "hello"
    settings = make_settings(db_url, tmp_path, openai_server, tenant,
                             presenter={"enabled": False})
    async with pipeline(settings) as p:
        await send_voice(p, ANA)
        assert len(transcriptions(openai_server)) == 1
        day = utc_day(p.clock.now())
        used = await p.app.unit.customers.usage_on(CustomerKey(tenant, ANA), day)
        per_minute = settings.voice_budget.tokens_per_minute
        assert used.tokens_in >= per_minute  # the minute, plus the turn's own prompt
        assert await p.app.unit.usage_lines.seconds_on(VOICE, day) == 60.0
        report = format_status(await read_status(p.app.unit.db, p.app.settings, p.clock.now()))
        assert "1.0 min of voice notes transcribed" in report


async def test_over_the_customers_budget_the_agent_asks_to_type_without_a_transcription(
        db_url, tmp_path, openai_server, tenant):
    # 40k tokens a minute against a 50k day: the first minute fits, the second does not.
    settings = make_settings(db_url, tmp_path, openai_server, tenant,
                             presenter={"enabled": False}, limits={"daily_tokens": 50_000})
    async with pipeline(settings) as p:
        await send_voice(p, ANA)
        await send_voice(p, ANA)
        assert len(transcriptions(openai_server)) == 1
        assert user_texts(openai_server)[-1] == OVER_BUDGET
        assert p.texts_to(ANA)[-1] == "OK: " + OVER_BUDGET  # answered: "please type"


async def test_over_the_business_budget_nobody_is_transcribed(
        db_url, tmp_path, openai_server, tenant):
    settings = make_settings(db_url, tmp_path, openai_server, tenant,
                             presenter={"enabled": False},
                             voice_budget={"business_daily_minutes": 1.5})
    async with pipeline(settings) as p:
        await send_voice(p, ANA)  # one minute of the day's one and a half
        await send_voice(p, BOB)  # would be two and a half
        assert len(transcriptions(openai_server)) == 1
        assert p.texts_to(BOB) == ["OK: " + OVER_BUDGET]
        await p.advance(24 * 3600)  # a new UTC day: the budget is whole again
        await send_voice(p, BOB)
        assert len(transcriptions(openai_server)) == 2
