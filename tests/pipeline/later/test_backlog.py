"""The acceptance scenario of the offline backlog (tests/bench/bench_backlog.py prints its
figures): 500 messages from 200 customers delivered at connect → replies paced under the
cap, oldest first, none twice, stale ones journaled and not answered, one owner alert."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from bot.clock import VirtualClock
from bot.gateway.memory import MemoryGateway
from tests.bench.bench_backlog import scenario
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.pipeline import START, Pipeline, make_settings


async def test_a_downtime_backlog_is_paced_oldest_first_and_stale_ones_are_not_answered(
    tmp_path: Path, openai_server: FakeOpenAI, tenant: str,
) -> None:
    f = await scenario(f"sqlite:///{tmp_path / 'wabot.db'}", tmp_path, openai_server, tenant)
    assert (f.messages, f.customers) == (500, 200)
    assert f.max_in_60s <= f.cap
    assert f.answered_customers == 180 and f.stale_customers_answered == 0
    assert f.answered_twice == 0
    # Chats are handed over strictly oldest first, `backlog_turns` (2) at a time; the reply
    # of the younger of two concurrent turns may overtake when its typing pause is shorter
    # (the presenter's jitter): rare neighbour swaps, never more.
    assert f.first_reply_order_inversions <= 3
    assert f.stale > 0 and f.journal["stale"] == f.stale
    assert f.journal["answered"] == f.messages - f.stale and f.journal["received"] == 0
    assert len([a for a in f.alerts if "not answered" in a]) == 1
    # 180 replies at 14 a minute (the cap less the live reserve) take about 13 minutes.
    assert timedelta(minutes=10) < f.drain < timedelta(minutes=20)
    late = [r for r in openai_server.chat_requests() if "reached you late" in str(r)]
    assert len(late) == 180


async def test_a_customer_writing_live_is_answered_at_once_with_their_backlog(
    tmp_path: Path, openai_server: FakeOpenAI, tenant: str,
) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'wabot.db'}", tmp_path, openai_server,
                             tenant, followups={"enabled": False},
                             knowledge={"enabled": False}, memory={"insights": False})
    clock = VirtualClock(START)
    p = Pipeline(settings, clock, MemoryGateway(clock))
    await p.app.start()
    try:
        for i in range(40):  # a backlog of 40 chats: ~3 minutes to answer
            msg = p.message(f"+5215500000{i:03d}", "¿tienen envíos?", backlog=True)
            msg.timestamp = clock.now() - timedelta(hours=2)
            await p.app.unit.intake(msg)
        waiting = p.message("+5215500000039", "¿hola? sigo esperando")
        await p.app.unit.backlog.complete()
        await p.advance(20)
        await p.app.unit.intake(waiting)  # the youngest backlog chat writes again, live
        await p.advance(15)
        assert len(p.texts_to("+5215500000039")) == 1, "answered in seconds, not minutes"
        [turn] = [r for r in openai_server.chat_requests()
                  if "sigo esperando" in str(r)]
        assert "¿tienen envíos?" in str(turn)  # their backlog joined the same turn
        await p.settle()
        assert len(p.texts_to("+5215500000039")) == 1  # and was not answered again
    finally:
        await p.app.stop()
