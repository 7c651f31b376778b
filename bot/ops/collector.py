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
objects, `take_over`), and then collects on its own timer (`collect_on_a_timer`): every 2
seconds it looks, and once 20,000 net new objects have accumulated (CPython's own trigger
here until now), or a minute has passed, it collects the youngest generation and freezes
what survived, with what the valve below moved on. Each kept object is walked about once,
in a pause as long as what is new, and never again: no collection of an older generation
walks every agent cached since the last one. Automatic collection stays on only as a
safety valve after 100,000 net new objects. A frozen object is still freed as soon as
nothing refers to it; only a reference cycle among frozen objects waits, for the full
collection that runs once an hour (`FULL_EVERY`): it unfreezes everything, collects it all
and freezes what is left. That is one long pause an hour (0.4–0.5 s with 4,000 customers'
agents cached, on the benchmark machine, freeing 10–20 objects); one longer than a second
is logged as a warning.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable

from loguru import logger

VALVE = 100_000  # net new objects that start a collection without waiting for the timer
EVERY = 2.0  # seconds between looks
NEW = 20_000  # net new objects that make a look collect
LONGEST = 60.0  # seconds after which a look collects whatever is new
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
    # Young: the youngest generation only. What the valve moved to the middle one was walked
    # then, and is frozen here with the rest.
    freed = gc.collect(2 if full else 0)
    gc.freeze()
    return freed, time.perf_counter() - started


async def collect_on_a_timer(sleep: Sleep = asyncio.sleep, every: float = EVERY,
                             new: int = NEW, longest: float = LONGEST,
                             full_every: float = FULL_EVERY) -> None:
    """Every `every` seconds, collect what is new once `new` net new objects accumulated or
    `longest` seconds passed, and everything every `full_every` seconds, until cancelled.
    A task of the daemon's event loop: a collection stops the loop anyway, and here it does
    so at a known pace."""
    since_full = since_last = 0.0
    while True:
        await sleep(every)
        since_full += every
        since_last += every
        full = since_full >= full_every
        if not (full or since_last >= longest or gc.get_count()[0] >= new):
            continue
        since_last = 0.0
        if full:
            since_full = 0.0
        freed, took = collect(full)
        if took > SLOW:
            logger.warning("the garbage collector stopped the daemon for {:.1f} s "
                           "({} collection, {} objects freed)", took,
                           "full" if full else "young", freed)
