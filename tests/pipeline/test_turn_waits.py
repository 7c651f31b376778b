"""What a reply waits for, and what it does not: the debounce counts from when the message
reached the daemon (its journal write's disk flush passes inside the wait, not before it),
and the blue ticks go out while the model writes the answer (the answer does not wait for
their round trip), still before the reply."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

from bot.models import InboundMessage
from bot.pipeline.inbox import Fed
from tests.fakes.pipeline import START, make_settings, pipeline

ANA = "+5215512345678"


def _settings(tmp_path: Path, openai_server: Any, tenant: str, debounce: float) -> Any:
    return make_settings(f"sqlite:///{tmp_path / 'wabot.db'}", tmp_path, openai_server,
                         tenant, presenter={"enabled": False},
                         inbox={"debounce_seconds": debounce})


async def test_the_debounce_counts_from_arrival_not_from_the_journal_write(
        tmp_path, openai_server, tenant):
    async with pipeline(_settings(tmp_path, openai_server, tenant, 2.0)) as p:
        customers = p.app.unit.customers
        journal_add = customers.journal_add

        async def slow_disk(msg: InboundMessage) -> bool:  # a flush that took 1.5 s
            await p.clock.advance(1.5)
            return await journal_add(msg)

        customers.journal_add = slow_disk  # type: ignore[method-assign]
        assert await p.app.unit.inbox.feed(p.message(ANA, "hola")) is Fed.QUEUED
        await p.settle()
        [read, reply] = [o for o in p.gateway.sent if o.chat == p.gateway.chat_for(ANA)]
        assert (read.action, reply.action) == ("read", "text")
        assert reply.at == START + timedelta(seconds=2.0)  # not 3.5: arrival + debounce


async def test_the_blue_ticks_go_out_while_the_model_writes(tmp_path, openai_server, tenant):
    gate = openai_server.hold()
    async with pipeline(_settings(tmp_path, openai_server, tenant, 0.0)) as p:
        receipt_may_finish = asyncio.Event()
        mark_read = p.gateway._mark_read

        async def slow_receipt(chat: str, msg_ids: list[str], sender: str = "") -> None:
            await receipt_may_finish.wait()  # a slow round trip to WhatsApp
            await mark_read(chat, msg_ids, sender)

        p.gateway._mark_read = slow_receipt  # type: ignore[method-assign]
        try:
            await p.say(ANA, "hola")
            await gate.wait_arrived()  # the model was asked while the receipt was on its way
            gate.release()
            await asyncio.sleep(0.3)  # the model's answer is back
            assert p.gateway.sent == []  # …and waits for the ticks: they come first
        finally:
            receipt_may_finish.set()
            gate.release()
        await p.settle()
        assert [o.action for o in p.gateway.sent] == ["read", "text"]
