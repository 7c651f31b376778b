"""A message whose journal write finished just as recovery started was routed twice — once
by its own feed, once by recovery, which found it in the journal — and answered twice.
Found by the kill -9 chaos test: after a restart, Meta's retries pour in while the journal
is being recovered."""

from __future__ import annotations

import asyncio

from bot.clock import VirtualClock
from bot.models import InboundMessage
from tests.fakes.pipeline import START, make_settings, pipeline
from tests.regressions.test_recovery_before_whatsapp_connects import NotYetConnected

ANA = "+5215512345678"


async def test_a_message_journaled_as_recovery_starts_is_answered_once(
        db_url, tmp_path, openai_server, tenant):
    settings = make_settings(db_url, tmp_path, openai_server, tenant,
                             inbox={"debounce_seconds": 0})
    clock = VirtualClock(START)
    gateway = NotYetConnected(clock)
    async with pipeline(settings, clock=clock, gateway=gateway) as p:
        customers = p.app.unit.customers
        journal_add = customers.journal_add
        written, resume = asyncio.Event(), asyncio.Event()

        async def slow_journal_add(msg: InboundMessage) -> bool:
            added = await journal_add(msg)
            written.set()  # in the journal; this feed has not routed it yet
            await resume.wait()
            return added

        customers.journal_add = slow_journal_add  # type: ignore[method-assign]
        feed = asyncio.create_task(p.app.unit.inbox.feed(p.message(ANA, "hello?")))
        await written.wait()
        gateway.connected.set()  # recovery runs now and finds the message in the journal
        recover = next(t for t in p.app.background if t.get_name() == "recover")
        await recover
        await p.settle()  # recovery's turn is done before the feed goes on
        resume.set()
        await feed
        await p.settle()
        assert p.texts_to(ANA) == ["OK: hello?"]
        assert len(openai_server.chat_requests()) == 1
