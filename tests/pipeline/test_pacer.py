"""The send pacer: a per-minute cap over every send, room kept for live chats, the backlog
oldest first, bubbles in order, our own chat unpaced, error 463 recorded as a timelock."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest

from bot.clock import VirtualClock
from bot.gateway.base import Binding, GatewayError
from bot.gateway.memory import MemoryGateway
from bot.gateway.pacer import Lane, Pacer, lane
from bot.gateway.restrictions import FILE_NAME, TIMELOCK, Restrictions, read
from tests.bench.bench_backlog import max_in_any_minute


def paced(clock: VirtualClock, per_minute: int = 20, burst: int = 6,
          restrictions: Restrictions | None = None) -> tuple[Pacer, MemoryGateway]:
    gateway = MemoryGateway(clock)
    gateway.connected_as = "+5215598765432"  # the owner's own chat is never paced
    pacer = Pacer(clock, per_minute, burst, restrictions)
    gateway.bind(Binding(pacer=pacer))
    return pacer, gateway


async def send_in(gateway: MemoryGateway, which: Lane, chat: str, text: str,
                  order: float = 0.0) -> None:
    with lane(which, order):
        await gateway.send_text(chat, text)


async def test_no_minute_ever_holds_more_than_the_cap() -> None:
    clock = VirtualClock()
    _, gateway = paced(clock)
    tasks = [asyncio.create_task(send_in(gateway, Lane.BACKLOG, f"{i}@s.whatsapp.net", "x"))
             for i in range(60)]
    tasks += [asyncio.create_task(send_in(gateway, Lane.LIVE, f"L{i}@s.whatsapp.net", "y"))
              for i in range(30)]
    await clock.wait(set(tasks), 3600)
    assert all(t.done() for t in tasks)
    times = [o.at for o in gateway.sent if o.at is not None]
    assert len(times) == 90
    assert max_in_any_minute(times) <= 20


async def test_the_backlog_is_spaced_and_leaves_room_for_live_replies() -> None:
    clock = VirtualClock()
    start = clock.now()
    _, gateway = paced(clock, per_minute=20, burst=6)
    backlog = [asyncio.create_task(send_in(gateway, Lane.BACKLOG, f"{i}@s.whatsapp.net", "b"))
               for i in range(30)]
    await clock.advance(120, backlog)
    live = [asyncio.create_task(send_in(gateway, Lane.LIVE, f"L{i}@s.whatsapp.net", "live"))
            for i in range(6)]
    await clock.advance(0, live)
    assert all(t.done() for t in live), "six live replies go at once, backlog or not"
    backlog_times = [o.at for o in gateway.sent if o.text == "b" and o.at is not None]
    gaps = {round((b - a).total_seconds(), 3) for a, b in itertools.pairwise(backlog_times)}
    assert min(gaps) >= 60 / 14 - 1e-6  # 14 a minute: the cap less the live reserve
    assert backlog_times[0] == start
    await clock.wait(set(backlog), 3600)


async def test_backlog_goes_oldest_first_and_live_before_it() -> None:
    clock = VirtualClock()
    _, gateway = paced(clock, per_minute=4, burst=1)
    tasks = [asyncio.create_task(send_in(gateway, Lane.BACKLOG, "a@s.whatsapp.net", f"b{age}",
                                         order=float(age))) for age in (30, 10, 20, 0)]
    tasks.append(asyncio.create_task(send_in(gateway, Lane.PROACTIVE, "f@s.whatsapp.net", "f")))
    await clock.advance(1, tasks)
    tasks.append(asyncio.create_task(send_in(gateway, Lane.LIVE, "l@s.whatsapp.net", "live")))
    await clock.wait(set(tasks), 3600)
    # The first backlog send went before anyone else asked; the live one overtook the rest.
    assert [o.text for o in gateway.sent] == ["b0", "live", "b10", "b20", "b30", "f"]


async def test_a_replys_bubbles_keep_their_order_under_the_pacer() -> None:
    clock = VirtualClock()
    _, gateway = paced(clock, per_minute=3, burst=1)

    async def reply(chat: str, n: int) -> None:
        with lane(Lane.BACKLOG, 0.0):
            for i in range(n):
                await gateway.send_text(chat, f"{chat}:{i}")

    tasks = [asyncio.create_task(reply(c, 3)) for c in ("a", "b")]
    await clock.wait(set(tasks), 3600)
    for chat in ("a", "b"):
        assert gateway.texts(chat) == [f"{chat}:{i}" for i in range(3)]


async def test_owner_alerts_to_our_own_chat_are_not_paced() -> None:
    clock = VirtualClock()
    pacer, gateway = paced(clock, per_minute=2, burst=0)
    for i in range(5):
        await gateway.send_text("5215598765432@s.whatsapp.net", f"alert {i}")
    assert len(gateway.sent) == 5 and pacer.granted == 0


async def test_error_463_is_recorded_as_a_reach_out_timelock(tmp_path: Path) -> None:
    clock = VirtualClock()
    restrictions = Restrictions(clock, tmp_path)
    heard: list[str] = []
    restrictions.listeners.append(lambda r: heard.append(r.kind))
    _, gateway = paced(clock, restrictions=restrictions)

    async def refused(chat: str, text: str) -> str:
        # What neonize raises for whatsmeow send.go's `ErrServerReturnedError` + code.
        raise GatewayError("sending to 52…78 failed: server returned error 463")

    gateway._send_text = refused  # type: ignore[method-assign]
    with pytest.raises(GatewayError):
        await gateway.send_text("5215512345678@s.whatsapp.net", "hola")
    assert heard == [TIMELOCK]
    until = restrictions.proactive_until()
    assert until is not None and until > clock.now()
    assert [r.kind for r in read(tmp_path / FILE_NAME, clock.now())] == [TIMELOCK]


def test_a_burst_as_large_as_the_cap_is_refused() -> None:
    with pytest.raises(ValueError, match="burst"):
        Pacer(VirtualClock(), 10, 10)
