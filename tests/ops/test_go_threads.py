"""neonize runs every Go call in the loop's default executor: the daemon sizes it so a few
sends stuck on a bad connection do not stall every other Go call (receipts, typing)."""

from __future__ import annotations

import asyncio
import os
import threading

from bot.ops.daemon import size_go_threads
from bot.settings import WhatsAppSettings


async def test_sends_hung_for_whatsmeows_timeout_leave_threads_for_a_read_receipt():
    size_go_threads(WhatsAppSettings().go_threads)
    release = threading.Event()
    # As many hung calls as Python's own default executor has threads (min(32, cores + 4)).
    hung = [asyncio.ensure_future(asyncio.to_thread(release.wait, 30))
            for _ in range(min(32, (os.cpu_count() or 1) + 4))]
    try:
        receipt = asyncio.to_thread(lambda: "read receipt sent")
        assert await asyncio.wait_for(receipt, 5) == "read receipt sent"
    finally:
        release.set()
        await asyncio.gather(*hung)
