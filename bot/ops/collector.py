"""The daemon's garbage collector: what survives a collection is never walked again.

Reference counting frees almost everything a turn makes the moment it is done with it; the
cycle collector is only for reference cycles, and the turn path makes next to none (the
collections measured under load freed tens of objects out of tens of thousands walked).
What the collector walks is what is alive: the turns in flight and, above all, what the
daemon keeps, the cached agents with their customers and memory. CPython walks a kept
object again each time it moves to an older generation and at every full collection, so a
daemon holding 4,000 customers' agents stopped for 10–40 ms every few seconds at 200 msg/s
and for 0.2 s at each collection of the middle generation (`tests/bench/bench_cloud.py`,
issue #23).

So `wabot run`, once everything is imported, freezes what the imports made (about 180,000
objects, `take_over`), and then every 2 seconds (`collect_on_a_timer`) collects the young
generations and freezes what survived: each object is walked about once, in a pause as
long as what is new since the last tick (a few milliseconds), and never again. Automatic
collection stays on only as a safety valve after 50,000 net new objects. A frozen object is
still freed as soon as nothing refers to it; only a reference cycle among frozen objects
would wait, for the full collection that runs once an hour (`FULL_EVERY`): it unfreezes
everything, collects it all, and freezes what is left (one long pause an hour, which a busy
shop's 0.3 s shows up as a warning in the log when it is more than a second).
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable

from loguru import logger

VALVE = 50_000  # net new objects that start a collection without waiting for the timer
EVERY = 2.0  # seconds between collections of what is new
FULL_EVERY = 3600.0  # seconds between full collections
SLOW = 1.0  # a collection that stopped the daemon longer than this is worth a warning

Sleep = Callable[[float], Awaitable[None]]


def take_over() -> None:
    """The collector for a long run: called once, after the imports, before the loop."""
    gc.collect()
    gc.freeze()
    # The older generations' thresholds are out of reach: the timer collects them.
    gc.set_threshold(VALVE, 1_000_000, 1_000_000)


def collect(full: bool) -> tuple[int, float]:
    """Collect what is new (`full`: everything) and freeze what survived:
    (objects freed, seconds the daemon stopped)."""
    started = time.perf_counter()
    if full:
        gc.unfreeze()
    freed = gc.collect(2 if full else 1)
    gc.freeze()
    return freed, time.perf_counter() - started


async def collect_on_a_timer(sleep: Sleep = asyncio.sleep, every: float = EVERY,
                             full_every: float = FULL_EVERY) -> None:
    """Collect what is new every `every` seconds and everything every `full_every`
    seconds, until cancelled. A task of the daemon's event loop: a collection stops the
    loop anyway, and here it does so at a known pace."""
    since_full = 0.0
    while True:
        await sleep(every)
        since_full += every
        full = since_full >= full_every
        if full:
            since_full = 0.0
        freed, took = collect(full)
        if took > SLOW:
            logger.warning("the garbage collector stopped the daemon for {:.1f} s "
                           "({} collection, {} objects freed)", took,
                           "full" if full else "young", freed)
