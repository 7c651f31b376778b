"""The daemon's garbage collector on its own timer (bot/ops/collector.py): a look every 2
seconds, which collects what is new and freezes what survived once enough is new or a
minute passed; everything once an hour; a warning for a long stop; `wabot run`'s serve
loop runs it."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
from loguru import logger

from bot.ops import collector
from bot.ops.collector import collect_on_a_timer


@pytest.fixture
def collections() -> Iterator[list[int]]:
    """The generation of each collection while the test runs, with automatic collection
    off so that only the timer's count."""
    seen: list[int] = []

    def watch(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            seen.append(info["generation"])

    enabled = gc.isenabled()
    gc.disable()
    gc.callbacks.append(watch)
    try:
        yield seen
    finally:
        gc.callbacks.remove(watch)
        # What the timer froze is collected; what lives on is frozen again, as the session
        # froze its imports (tests/conftest.py), so later tests' collections stay short.
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        if enabled:
            gc.enable()


class Stop(Exception):
    pass


def sleeps(times: int, slept: list[float]) -> Any:
    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) > times:
            raise Stop

    return sleep


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def test_the_daemon_s_pace():
    assert (collector.EVERY, collector.NEW, collector.LONGEST, collector.FULL_EVERY) == (
        2.0, 20_000, 60.0, 3600.0)
    assert collector.VALVE > collector.NEW  # the timer's looks collect first


QUIET = {"every": 2.0, "new": 10**9, "longest": 10.0, "full_every": 30.0}


async def test_a_quiet_daemon_collects_every_longest_and_everything_every_full(collections):
    slept: list[float] = []
    with pytest.raises(Stop):
        await collect_on_a_timer(sleeps(30, slept), **QUIET)
    assert slept == [2.0] * 31
    # 30 looks, one a collection in five (10 s), the third and sixth (30 s) full ones.
    assert collections == [0, 0, 2, 0, 0, 2]


async def test_what_is_new_makes_the_next_look_collect(collections):
    kept: list[list[int]] = []
    looks = 0

    async def sleep(seconds: float) -> None:
        nonlocal looks
        looks += 1
        if looks == 3:
            kept.extend([] for _ in range(30_000))  # net new objects, kept
        if looks > 4:
            raise Stop

    with pytest.raises(Stop):
        await collect_on_a_timer(sleep, every=2.0, new=25_000, longest=3600.0,
                             full_every=7200.0)
    assert collections == [0]  # the third look, right after they came; not the fourth


async def test_what_survives_a_collection_is_frozen_and_never_walked_again(collections):
    kept = [Node() for _ in range(1000)]
    frozen = gc.get_freeze_count()
    with pytest.raises(Stop):
        await collect_on_a_timer(sleeps(5, []), **QUIET)
    assert collections == [0]
    assert gc.get_freeze_count() >= frozen + len(kept)
    walked = {id(o) for generation in range(3) for o in gc.get_objects(generation)}
    assert not walked & {id(k) for k in kept}


async def test_a_reference_cycle_is_freed_at_the_next_collection(collections):
    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    del a, b
    assert gone() is not None  # no automatic collection: the cycle waits for the timer
    with pytest.raises(Stop):
        await collect_on_a_timer(sleeps(5, []), **QUIET)
    assert gone() is None


async def test_a_cycle_among_frozen_objects_waits_for_the_full_collection(collections):
    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    with pytest.raises(Stop):  # a collection while the cycle is still in use: frozen
        await collect_on_a_timer(sleeps(5, []), **QUIET)
    del a, b
    with pytest.raises(Stop):  # another young collection (10 s) does not walk it
        await collect_on_a_timer(sleeps(5, []), **QUIET)
    assert gone() is not None
    with pytest.raises(Stop):  # the full one (30 s) does
        await collect_on_a_timer(sleeps(15, []), **QUIET)
    assert gone() is None


async def test_a_collection_that_stops_the_daemon_for_seconds_is_a_warning(monkeypatch):
    monkeypatch.setattr(collector, "collect", lambda full: (12, 2.5))
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(f"{m.record['level'].name} {m.record['message']}"),
                      level="DEBUG")
    try:
        with pytest.raises(Stop):
            await collect_on_a_timer(sleeps(5, []), **QUIET)
    finally:
        logger.remove(sink)
    assert lines == ["WARNING the garbage collector stopped the daemon for 2.5 s "
                     "(young collection, 12 objects freed)"]


async def test_the_daemon_runs_the_timer(monkeypatch):
    """serve() starts it beside the watchdog and stops it when the daemon stops."""
    from bot.ops import daemon

    started: list[asyncio.Task[Any]] = []

    async def timer() -> None:
        started.append(asyncio.current_task())  # type: ignore[arg-type]
        await asyncio.Event().wait()

    async def not_started(*args: Any) -> bool:
        await asyncio.sleep(0)  # the timer's task runs meanwhile
        return False  # stopped while waiting for the number's lease: serve() returns

    monkeypatch.setattr(daemon, "collect_on_a_timer", timer)
    monkeypatch.setattr(daemon, "_started", not_started)

    class App:
        claim = None

        async def stop(self) -> None:
            pass

    notifier = daemon.Notifier(None)
    assert await daemon.serve(App(), None, notifier, asyncio.Event()) == 0  # type: ignore[arg-type]
    assert len(started) == 1 and started[0].cancelled()
