"""The phone watch's loop: it checks when the phone's silence can reach the warning, not
every few hours (issue #21)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from bot.clock import VirtualClock
from bot.gateway.phone import PhoneWatch


async def test_the_watch_wakes_when_the_silence_reaches_the_warning_then_reminds(
        tmp_path: Path) -> None:
    clock = VirtualClock()
    watch = PhoneWatch(clock, tmp_path, timedelta(days=10))
    alerts: list[str] = []

    async def alert(subject: str, text: str) -> bool:
        alerts.append(text)
        return True

    task = asyncio.create_task(watch.run(alert), name="phone-watch")
    try:
        await clock.advance(5 * 86400, {task})
        watch.seen(sender_device=0, from_me=True)  # the phone wrote: 10 days from now
        await clock.advance(10 * 86400 - 1, {task})
        assert not alerts and clock.woken["phone-watch"] == 1  # at the first 10 days only
        await clock.advance(1, {task})
        assert len(alerts) == 1 and "for 10 days" in alerts[0]
        await clock.advance(86400, {task})  # still silent: reminded every 6 hours
        assert len(alerts) == 5
    finally:
        task.cancel()
