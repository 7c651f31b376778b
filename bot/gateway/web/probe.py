"""Reaching WhatsApp before Go may try: a TCP probe (DNS included) with capped backoff.

Go's first connect panics when WhatsApp cannot be reached (see `goclient`), so the
connection waits here until a plain TCP connect succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from collections.abc import Callable

from loguru import logger

from bot.clock import Clock

FIRST_START_CAP = 15.0  # seconds between attempts while nobody has linked the number yet


class Probe:
    def __init__(
        self,
        clock: Clock,
        address: tuple[str, int],
        timeout: float,
        backoff: tuple[float, float, float],
        rng: random.Random,
        on_wait: Callable[[str], None],
    ) -> None:
        self.address = address
        self.backoff = backoff  # (initial, cap, jitter)
        self._clock = clock
        self._timeout = timeout
        self._rng = rng
        self._on_wait = on_wait
        self.first_start = False  # never linked: someone waits for the QR code

    async def wait_until_reachable(self) -> None:
        host, port = self.address
        attempt = 0
        while (error := await self.probe()) is not None:
            delay = self.delay(attempt)
            if self.first_start:
                delay = min(delay, FIRST_START_CAP)
            attempt += 1
            logger.bind(attempt=attempt).warning(
                "WhatsApp is unreachable ({}:{}: {}); {}retrying in {:.0f} s",
                host,
                port,
                error,
                "the QR code to scan appears here once connected; " if self.first_start else "",
                delay,
            )
            # The reason on the STATUS line too: the console's card shows this line alone.
            self._on_wait(f"offline: WhatsApp unreachable ({error}); retrying in {delay:.0f} s")
            await self._clock.sleep(delay)

    async def probe(self) -> str | None:
        """None when WhatsApp answers a TCP connect, else why not."""
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(*self.address), self._timeout
            )
        except TimeoutError:
            return f"no answer within {self._timeout:g} s"
        except OSError as exc:  # asyncio's "Connect call failed (…)" carries only errno
            return ((os.strerror(exc.errno) if isinstance(exc.errno, int) and exc.errno > 0
                     else "") or exc.strerror or str(exc) or type(exc).__name__)
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return None

    def delay(self, attempt: int) -> float:
        """The wait before retry `attempt` (0-based): doubling, capped, with jitter."""
        initial, cap, jitter = self.backoff
        base = min(cap, initial * 2.0 ** min(attempt, 32))
        return min(cap, base * (1 + jitter * self._rng.uniform(-1.0, 1.0)))
