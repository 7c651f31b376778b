"""Replies that did not go out: remembered as such, sent again once possible, never twice."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from bot.cli import app as cli
from bot.clock import VirtualClock
from bot.gateway.base import DeliveryUnknown, NotDelivered
from bot.gateway.memory import MemoryGateway
from bot.models import CustomerKey, Role
from bot.pipeline.later import undelivered
from bot.stores.customers import JOURNAL
from tests.fakes.pipeline import START, Pipeline, eventually, make_settings, pipeline

ANA = "+5215512345678"
THREE = "Uno.\n\nDos.\n\nTres."


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"memory": {"insights": False, "summarize_after_messages": 500,
                       "keep_recent_messages": 10},
            "followups": {"enabled": False},
            "presenter": {"enabled": False, "retry_undelivered_minutes": 15,
                          "retry_seconds": 30}}


def retries(p: Pipeline) -> list[asyncio.Task[None]]:
    return [t for t in p.app.background if t.get_name() == "redelivery"]


async def history(p: Pipeline) -> list[tuple[Role, str]]:
    key = CustomerKey(p.settings.tenant, ANA)
    return [(m.role, m.text) for m in await p.app.unit.memory.recent(key, 20)]


async def journal(p: Pipeline) -> list[str]:
    async with p.app.unit.db.connect() as conn:
        rows = await conn.execute(select(JOURNAL.c.status).where(
            JOURNAL.c.tenant == p.settings.tenant).order_by(JOURNAL.c.id))
        return [r[0] for r in rows]


def refuse(gateway: MemoryGateway, exc: Exception, on: set[int] | None = None) -> None:
    async def before(n: int) -> None:
        if on is None or n in on:
            raise exc
    gateway.before_send = before


def go_offline(gateway: MemoryGateway) -> None:
    """Every send refused as WhatsApp Web refuses it while disconnected (NotDelivered)."""
    async def before(n: int) -> None:
        raise NotDelivered("cannot send a message: not connected to WhatsApp")
    gateway.before_send = before


async def test_a_reply_refused_while_disconnected_is_remembered_as_undelivered_and_sent_once_back(
        settings, openai_server):
    clock = VirtualClock(START)
    gateway = MemoryGateway(clock)
    go_offline(gateway)
    async with pipeline(settings, clock=clock, gateway=gateway) as p:
        await p.say(ANA, "hola")
        await p.settle()
        assert p.texts_to(ANA) == []
        assert await history(p) == [(Role.CUSTOMER, "hola"), (Role.AGENT, "OK: hola"),
                                    (Role.NOTE, undelivered.NOT_YET)]
        assert await journal(p) == ["undelivered"]
        await p.clock.advance(60, retries(p))  # still disconnected: nothing goes out
        assert p.texts_to(ANA) == []
        gateway.before_send = None  # connected again
        await p.clock.advance(30, retries(p))
        assert p.texts_to(ANA) == ["OK: hola"]
        await p.clock.advance(600, retries(p))
        assert p.texts_to(ANA) == ["OK: hola"]  # once
        assert (await history(p))[-1][1].startswith("(Delivered late")
        assert await journal(p) == ["answered"]
        assert await p.app.unit.deliveries.with_status("undelivered", "sending") == []
    assert len(openai_server.chat_requests()) == 1  # the reply was sent, not composed again


async def test_a_reply_undelivered_past_the_retry_age_is_given_up_and_the_owner_told(
        settings, openai_server):
    clock = VirtualClock(START)
    gateway = MemoryGateway(clock)
    go_offline(gateway)
    async with pipeline(settings, clock=clock, gateway=gateway) as p:
        await p.say(ANA, "hola")
        await p.settle()
        await p.clock.advance(14 * 60, retries(p))
        assert [a["kind"] for a in p.app.unit.alerts.recent] == []
        # Past 15 minutes, at one of the next rounds: a round's database work runs in real
        # time, so which round of the virtual clock ends it can vary by one or two.
        for _ in range(10):
            await p.clock.advance(30, retries(p))
            if p.app.unit.alerts.recent:
                break
        assert [a["kind"] for a in p.app.unit.alerts.recent] == ["undelivered"]
        assert (await history(p))[-1] == (Role.NOTE, undelivered.NEVER.format(minutes=15))
        assert await p.app.unit.deliveries.with_status("undelivered") == []
        gateway.before_send = None
        await p.clock.advance(120, retries(p))
        assert p.texts_to(ANA) == []  # a quarter of an hour late is not sent at all


async def test_a_send_that_timed_out_is_never_sent_again_nor_the_bubbles_after_it(
        settings, openai_server):
    openai_server.reply(THREE)
    clock = VirtualClock(START)
    gateway = MemoryGateway(clock)
    refuse(gateway, DeliveryUnknown("sending timed out: WhatsApp may have it"), on={2})
    async with pipeline(settings, clock=clock, gateway=gateway) as p:
        await p.say(ANA, "hola")
        await p.settle()
        gateway.before_send = None
        await p.clock.advance(600, retries(p))
        assert p.texts_to(ANA) == ["Uno."]
        assert (await history(p))[-1] == (Role.NOTE, undelivered.UNCERTAIN)
        assert await journal(p) == ["unknown"]
        assert await p.app.unit.deliveries.with_status("undelivered", "sending", "unknown") == []


async def test_a_crash_between_bubbles_resumes_from_the_first_unsent_one(settings,
                                                                         openai_server):
    openai_server.reply(THREE)
    clock = VirtualClock(START)
    gateway = MemoryGateway(clock)

    async def stall_second(n: int) -> None:
        if n == 2:  # the process dies while the second bubble is on its way
            await clock.sleep(10**9)
    gateway.before_send = stall_second
    async with pipeline(settings, clock=clock, gateway=gateway) as p:
        await p.say(ANA, "hola")
        await p.advance(60)
        assert p.texts_to(ANA) == ["Uno."]
        p.app.unit.inbox.close()  # the crash: nothing after this point of the turn happens
        for task in list(p.app.unit.inbox.tasks):
            task.cancel()
        await asyncio.gather(*p.app.unit.inbox.tasks, return_exceptions=True)
    gateway.before_send = None
    async with pipeline(settings, clock=clock, gateway=gateway) as p:
        await eventually(lambda: len(p.texts_to(ANA)) == 3)
        await p.settle()
        await p.clock.advance(120, retries(p))
        assert p.texts_to(ANA) == ["Uno.", "Dos.", "Tres."]
        lines = await history(p)
        assert lines[:2] == [(Role.CUSTOMER, "hola"), (Role.AGENT, THREE)]
        assert await journal(p) == ["answered"]
    assert len(openai_server.chat_requests()) == 1  # no second turn for the same message


async def test_a_reply_of_several_bubbles_leaves_no_delivery_row_behind(settings,
                                                                        openai_server):
    openai_server.reply(THREE)
    async with pipeline(settings) as p:
        await p.say(ANA, "hola")
        await p.settle()
        assert p.texts_to(ANA) == ["Uno.", "Dos.", "Tres."]
        assert await p.app.unit.deliveries.with_status("sending", "undelivered") == []


async def test_forget_erases_a_reply_still_owed_and_export_shows_it(
        db_url, tmp_path, openai_server, tenant, monkeypatch):
    state = tmp_path / "state"
    settings = make_settings(db_url, state, openai_server, tenant,
                             presenter={"enabled": False})
    for name, value in {"WABOT_STATE_DIR": str(state), "WABOT_DATABASE_URL": db_url,
                        "WABOT_TENANT": tenant}.items():
        monkeypatch.setenv(name, value)
    clock = VirtualClock(START)
    gateway = MemoryGateway(clock)
    go_offline(gateway)
    async with pipeline(settings, clock=clock, gateway=gateway) as p:
        await p.say(ANA, "mi tarjeta 4111")
        await p.settle()
        assert len(await p.app.unit.deliveries.with_status("undelivered")) == 1
        exported = await asyncio.to_thread(CliRunner().invoke, cli, ["export", ANA])
        assert exported.exit_code == 0, exported.output
        assert json.loads(exported.output)["undelivered_replies"][0]["bubbles"] == [
            "OK: mi tarjeta 4111"]
        erased = await asyncio.to_thread(CliRunner().invoke, cli, ["forget", ANA, "--yes"])
        assert erased.exit_code == 0, erased.output
        assert await p.app.unit.deliveries.with_status("undelivered") == []


class Disconnected(MemoryGateway):
    """A gateway with a connection state, as WhatsApp Web's: retries wait for it."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__(clock)
        self.connected = asyncio.Event()


async def test_a_reply_is_given_up_during_a_long_outage_not_only_after_it(
        settings, openai_server):
    clock = VirtualClock(START)
    gateway = Disconnected(clock)
    go_offline(gateway)
    async with pipeline(settings, clock=clock, gateway=gateway) as p:
        gateway.connected.set()  # answered live, then the connection drops
        await eventually(lambda: retries(p) != [])
        await p.say(ANA, "hola")
        await p.settle()
        gateway.connected.clear()
        await p.clock.advance(16 * 60, retries(p))
        assert [a["kind"] for a in p.app.unit.alerts.recent] == ["undelivered"]
        assert await p.app.unit.deliveries.with_status("undelivered") == []


async def test_a_graceful_stop_finishes_the_reply_in_flight(db_url, tmp_path, openai_server,
                                                            tenant):
    settings = make_settings(db_url, tmp_path, openai_server, tenant,
                             followups={"enabled": False}, stop_grace_seconds=30)
    openai_server.reply(THREE)
    clock = VirtualClock(START)
    gateway = MemoryGateway(clock)
    stopping: list[asyncio.Task[None]] = []
    async with pipeline(settings, clock=clock, gateway=gateway) as p:
        async def stop_during_second(n: int) -> None:
            if n == 2:  # SIGTERM while the second bubble is on its way
                stopping.append(asyncio.create_task(p.app.stop()))
                await clock.sleep(2)
        gateway.before_send = stop_during_second
        await p.say(ANA, "hola")
        await p.settle()
        await stopping[0]
    assert gateway.texts(gateway.chat_for(ANA)) == ["Uno.", "Dos.", "Tres."]
    gateway.before_send = None
    async with pipeline(settings, clock=clock, gateway=gateway) as p:
        await p.settle()
        await p.clock.advance(120, retries(p))
        assert p.texts_to(ANA) == ["Uno.", "Dos.", "Tres."]  # nothing sent twice
        assert await journal(p) == ["answered"]


async def test_with_nothing_owed_the_retry_loop_waits_without_querying(settings, openai_server):
    """A healthy number: one look at start, then no query every 30 s; a refused reply wakes
    the loop, which sends it once WhatsApp is back."""
    clock = VirtualClock(START)
    gateway = MemoryGateway(clock)
    async with pipeline(settings, clock=clock, gateway=gateway) as p:
        looks = 0
        look = p.app.unit.deliveries.with_status

        async def counted(*statuses: str):  # type: ignore[no-untyped-def]
            nonlocal looks
            looks += "undelivered" in statuses
            return await look(*statuses)

        p.app.unit.deliveries.with_status = counted  # type: ignore[method-assign]
        await p.clock.advance(3600, retries(p))
        assert looks <= 1  # an hour of 30-s rounds, at most the first look
        before = looks
        go_offline(gateway)
        await p.say(ANA, "hola")
        await p.settle()
        gateway.before_send = None
        await p.clock.advance(31, retries(p))
        assert p.texts_to(ANA) == ["OK: hola"]
        assert looks > before
