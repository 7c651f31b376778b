"""Human takeover: the owner writing from the phone pauses that chat's agent, and only it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.clock import VirtualClock
from bot.gateway.memory import MemoryGateway
from bot.models import CustomerKey, MessageKind, Role
from bot.pipeline.inbox import Fed
from bot.pipeline.takeover import FOREVER, NOTE_HELD, NOTE_OFF, NOTE_ON
from tests.fakes.pipeline import START, make_settings, pipeline

ANA = "+5215512345678"
BOB = "+14155550123"
OWN = "+5215500000000"  # the business number


class RevokingGateway(MemoryGateway):
    """The in-memory gateway plus what the WhatsApp one knows: our number, revoking."""

    connected_as = OWN

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.revoked: list[tuple[str, str]] = []

    async def revoke(self, chat: str, msg_id: str) -> None:
        self.revoked.append((chat, msg_id))


@pytest.fixture
def instant(db_url, tmp_path, openai_server, tenant):
    return make_settings(db_url, tmp_path, openai_server, tenant,
                         presenter={"enabled": False}, inbox={"debounce_seconds": 0})


async def history(p, phone):
    return await p.app.unit.memory.recent(CustomerKey(p.settings.tenant, phone), 100)


async def paused_until(p, phone):
    customer = await p.app.unit.customers.get(CustomerKey(p.settings.tenant, phone))
    return customer.paused_until if customer else None


async def test_an_owner_message_pauses_that_chat_only_and_is_in_its_history(
        settings, openai_server):
    async with pipeline(settings) as p:
        await p.say(ANA, "how much is the blue one?")
        await p.settle()
        assert p.texts_to(ANA) == ["OK: how much is the blue one?"]
        owner = p.message(ANA, "For you 10% off, Ana!", from_owner=True)
        assert await p.app.unit.inbox.feed(owner) is Fed.OWNER
        assert await paused_until(p, ANA) == owner.timestamp + timedelta(hours=12)
        assert await p.app.unit.inbox.feed(p.message(ANA, "great, I'll take it")) is Fed.PAUSED
        await p.say(BOB, "hello")
        await p.settle()
        assert p.texts_to(ANA) == ["OK: how much is the blue one?"]  # nothing more
        assert p.texts_to(BOB) == ["OK: hello"]  # Bob's agent is not paused
        lines = [(m.role, m.text) for m in await history(p, ANA)]
        assert lines[-2:] == [(Role.OWNER, "For you 10% off, Ana!"),
                              (Role.CUSTOMER, "great, I'll take it")]
        assert len(openai_server.chat_requests()) == 2


async def test_the_agent_resumes_after_the_pause_knowing_what_the_owner_said(
        settings, openai_server):
    async with pipeline(settings) as p:
        await p.app.unit.inbox.feed(p.message(ANA, "For you 10% off!", from_owner=True))
        await p.say(ANA, "thanks")
        await p.advance(11 * 3600)
        assert await p.app.unit.inbox.feed(p.message(ANA, "still there?")) is Fed.PAUSED
        await p.advance(3600 + 1)  # twelve hours after the owner wrote
        assert await p.app.unit.inbox.feed(p.message(ANA, "so, 10% off?")) is Fed.QUEUED
        await p.settle()
        assert p.texts_to(ANA) == ["OK: so, 10% off?"]  # the paused messages stay unanswered
        prompt = openai_server.chat_requests()[-1]["messages"]
        said = [(m["role"], m["content"]) for m in prompt[1:]]
        assert said == [("assistant", "[the business owner wrote this personally] For you 10% off!"),
                        ("user", "thanks"), ("user", "still there?"), ("user", "so, 10% off?")]


async def test_a_later_owner_message_never_shortens_a_longer_pause(settings):
    async with pipeline(settings) as p:
        await p.app.unit.inbox.feed(p.message(ANA, "#bot off", from_owner=True))
        await p.app.unit.inbox.feed(p.message(ANA, "talk tomorrow", from_owner=True))
        assert await paused_until(p, ANA) == FOREVER


async def test_bot_off_and_on_typed_in_the_chat(settings, openai_server):
    clock = VirtualClock(START)
    gateway = RevokingGateway(clock)
    async with pipeline(settings, clock=clock, gateway=gateway) as p:
        off = p.message(ANA, "  #BOT Off ", from_owner=True)
        assert await p.app.unit.inbox.feed(off) is Fed.COMMAND
        assert await paused_until(p, ANA) == FOREVER
        await p.say(ANA, "hello?")
        await p.advance(2 * 24 * 3600)  # off is off, however long
        await p.say(ANA, "anyone?")
        await p.settle()
        assert p.texts_to(ANA) == []
        on = p.message(ANA, "#bot on", from_owner=True)
        assert await p.app.unit.inbox.feed(on) is Fed.COMMAND
        assert await paused_until(p, ANA) is None
        await p.say(ANA, "back?")
        await p.settle()
        assert p.texts_to(ANA) == ["OK: back?"]
        # The commands were deleted for everyone and confirmed in the owner's own chat.
        chat = gateway.chat_for(ANA)
        assert gateway.revoked == [(chat, off.msg_id), (chat, on.msg_id)]
        assert gateway.texts(gateway.chat_for(OWN)) == [
            f"wabot · {ANA}: off: the agent is silent until `#bot on` or `wabot resume`",
            f"wabot · {ANA}: on: the agent answers"]
        texts = [(m.role, m.text) for m in await history(p, ANA)]
        assert (Role.NOTE, NOTE_OFF) in texts and (Role.NOTE, NOTE_ON) in texts
        assert not any("#bot" in t for _, t in texts)  # commands are not conversation
        statuses = await p.app.unit.customers.journal_count(settings.tenant, START, "command")
        assert statuses == 2


async def test_bot_status_reports_to_the_owners_own_chat(settings):
    clock = VirtualClock(START)
    gateway = RevokingGateway(clock)
    async with pipeline(settings, clock=clock, gateway=gateway) as p:
        await p.app.unit.inbox.feed(p.message(ANA, "ok, one moment", from_owner=True))
        assert await p.app.unit.inbox.feed(p.message(ANA, "#bot status", from_owner=True)) \
            is Fed.COMMAND
        # 12 hours from Monday 09:00 in Mexico City, in the business's time.
        assert gateway.texts(gateway.chat_for(OWN)) == [
            f"wabot · {ANA}: paused until 2026-01-05 21:00 CST"]
        assert gateway.texts(gateway.chat_for(ANA)) == []  # nothing ever goes to the customer


async def test_a_reply_written_while_the_owner_stepped_in_is_held_back(instant, openai_server):
    gate = openai_server.hold()
    async with pipeline(instant) as p:
        await p.say(ANA, "is it in stock?")
        await gate.wait_arrived()  # the model is writing the answer
        await p.app.unit.inbox.feed(p.message(ANA, "Yes! I'll bring it", from_owner=True))
        gate.release()
        await p.settle()
        assert p.texts_to(ANA) == []
        texts = [(m.role, m.text) for m in await history(p, ANA)]
        assert texts[-1] == (Role.NOTE, NOTE_HELD)
        assert await p.app.unit.customers.journal_count(instant.tenant, START, "paused") == 1


async def test_media_in_a_paused_chat_is_noted_without_downloading(settings, openai_server):
    async with pipeline(settings) as p:
        await p.app.unit.inbox.feed(p.message(ANA, "let me check", from_owner=True))
        voice = p.message(ANA, "", kind=MessageKind.VOICE)
        assert await p.app.unit.inbox.feed(voice) is Fed.PAUSED
        await p.settle()
        assert not any(r.path.endswith("/audio/transcriptions") for r in openai_server.requests)
        last = (await history(p, ANA))[-1]
        assert last.role is Role.CUSTOMER and "voice note" in last.text
        customer = await p.app.unit.customers.get(CustomerKey(settings.tenant, ANA))
        assert customer is not None and customer.msgs_in == 1


async def test_an_old_owner_message_replayed_after_a_restart_pauses_nothing(settings):
    async with pipeline(settings) as p:
        old = p.message(ANA, "see you", from_owner=True)
        old.timestamp = START - timedelta(days=2)
        assert await p.app.unit.inbox.feed(old) is Fed.OWNER
        assert await paused_until(p, ANA) is None


async def test_an_owner_reaction_does_not_take_over(settings):
    async with pipeline(settings) as p:
        reaction = p.message(ANA, "👍", kind=MessageKind.REACTION, from_owner=True)
        assert await p.app.unit.inbox.feed(reaction) is Fed.IGNORED
        assert await paused_until(p, ANA) is None


async def test_a_pause_written_to_the_database_applies_to_the_next_message(settings):
    """What `wabot pause` relies on: no cache between the table and the filter."""
    from bot.pipeline.takeover import pause, resume

    async with pipeline(settings) as p:
        key = CustomerKey(settings.tenant, ANA)
        await pause(p.app.unit.customers, key, datetime.now(UTC) + timedelta(days=3650), p.clock.now())
        assert await p.app.unit.inbox.feed(p.message(ANA, "hi")) is Fed.PAUSED
        await resume(p.app.unit.customers, key)
        assert await p.app.unit.inbox.feed(p.message(ANA, "hi again")) is Fed.QUEUED
