"""Per-bubble delivery: each bubble's fate is recorded before the next send, a timed-out
bubble is never resent and stops the reply, a refused one is kept for the retry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.clock import VirtualClock
from bot.gateway.base import DeliveryUnknown, NotDelivered
from bot.gateway.memory import MemoryGateway
from bot.pipeline.presenter import Presenter
from bot.settings import PresenterSettings
from bot.stores.db import Database
from bot.stores.deliveries import DeliveryLog

CHAT = "5215512345678@s.whatsapp.net"
REPLY = "Uno.\n\nDos.\n\nTres."


class Failing(MemoryGateway):
    """Sends until the bubble `at` (0-based count of sends), which raises `error`."""

    def __init__(self, clock: VirtualClock, at: int, error: Exception) -> None:
        super().__init__(clock)
        self.at, self.error, self.tries = at, error, 0

    async def send_text(self, chat: str, text: str) -> str:
        self.tries += 1
        if self.tries == self.at + 1:
            raise self.error
        return await super().send_text(chat, text)


@pytest.fixture
async def log(tmp_path: Path) -> AsyncIterator[DeliveryLog]:
    db = Database(f"sqlite:///{tmp_path / 'wabot.db'}")
    await db.create_all()
    yield DeliveryLog(db, "tienda")
    await db.close()


def presenter(gateway: MemoryGateway, clock: VirtualClock, log: DeliveryLog) -> Presenter:
    p = Presenter(gateway, clock, PresenterSettings(enabled=False))
    p.log = log
    return p


async def states(log: DeliveryLog) -> list[str]:
    return [b.state for b in await log.bubbles("turn:M1")]


async def test_every_bubble_is_recorded_as_sent(log: DeliveryLog) -> None:
    clock = VirtualClock()
    gw = MemoryGateway(clock)
    assert await presenter(gw, clock, log).deliver(CHAT, REPLY, reply_id="turn:M1") == 3
    assert await states(log) == ["sent", "sent", "sent"]


async def test_a_timed_out_bubble_is_never_resent_and_the_rest_is_held(
        log: DeliveryLog) -> None:
    clock = VirtualClock()
    gw = Failing(clock, 1, DeliveryUnknown("sending timed out after 160 s"))
    p = presenter(gw, clock, log)
    with pytest.raises(DeliveryUnknown):
        await p.deliver(CHAT, REPLY, reply_id="turn:M1")
    assert gw.texts() == ["Uno."]  # "Tres." is not sent after a gap the customer may see
    assert await states(log) == ["sent", "unknown", "held"]

    again = MemoryGateway(clock)  # the turn runs again (a restart): nothing goes out
    with pytest.raises(DeliveryUnknown):
        await presenter(again, clock, log).deliver(CHAT, REPLY, reply_id="turn:M1")
    assert again.texts() == []


async def test_a_bubble_that_never_left_is_kept_undelivered_with_the_rest(
        log: DeliveryLog) -> None:
    clock = VirtualClock()
    gw = Failing(clock, 1, NotDelivered("websocket not connected"))
    with pytest.raises(NotDelivered):
        await presenter(gw, clock, log).deliver(CHAT, REPLY, reply_id="turn:M1")
    assert await states(log) == ["sent", "undelivered", "undelivered"]
    assert await log.undelivered() == ["turn:M1"]

    back = MemoryGateway(clock)
    sent = await presenter(back, clock, log).resume(await log.bubbles("turn:M1"))
    assert (sent, back.texts()) == (3, ["Dos.", "Tres."])
    assert await log.undelivered() == []
