"""Waking the other nodes at once when a number is given back or a message journaled for
it: PostgreSQL LISTEN/NOTIFY on one channel, over one connection per process whatever the
numbers it serves. Nodes also look every `fleet.renew_seconds` on their own, so a lost
notification (or SQLite, which has none) only costs that wait."""

from __future__ import annotations

import asyncio
from contextlib import suppress
from typing import Any

from loguru import logger
from sqlalchemy.engine import make_url

CHANNEL = "wabot_fleet"


class Listener:
    """One waiter's view of the channel (each number's claim has its own): it hears the
    notifications about its `topic` (a number's key), or every one without a topic."""

    def __init__(self, topic: str | None = None) -> None:
        self.topic = topic
        self._event = asyncio.Event()

    def heard(self) -> None:
        self._event.set()

    async def wait(self, within: float) -> None:
        """Until another node says something changed, or `within` seconds."""
        with suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), within)
        self._event.clear()


class Wakeup:
    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self._dsn = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        self._conn: Any = None
        self._lock = asyncio.Lock()
        self._closed = False
        self._listeners: list[Listener] = []

    def listener(self, topic: str | None = None) -> Listener:
        listener = Listener(topic)
        self._listeners.append(listener)
        return listener

    async def start(self) -> None:
        """Connect once (later calls return at once; none after `close`: a number that
        starts waiting while the process stops must not open a connection nobody closes)."""
        async with self._lock:
            if self._conn is not None or self._closed:
                return
            import asyncpg  # type: ignore[import-untyped]

            conn = None
            connecting = asyncio.ensure_future(asyncpg.connect(self._dsn))
            try:
                # Cancelled meanwhile (the process stops): the connection still being made
                # is closed once it is, not left to the garbage collector.
                conn = await asyncio.shield(connecting)
                await conn.add_listener(CHANNEL, self._heard)
            except asyncio.CancelledError:
                if conn is None:
                    connecting.add_done_callback(_terminate)
                else:
                    conn.terminate()
                raise
            except Exception as exc:  # polling still works
                logger.debug("fleet: no LISTEN connection ({}); polling only", exc)
                if conn is not None:
                    with suppress(Exception):
                        await conn.close()
                return
            self._conn = conn

    @property
    def listening(self) -> bool:
        return self._conn is not None

    def _heard(self, _conn: Any, _pid: int, _channel: str, topic: str) -> None:
        # A hundred numbers each waiting on the channel: only the one named wakes (and
        # reads the journal or the lease table), not all of them at every notification.
        for listener in self._listeners:
            if listener.topic is None or listener.topic == topic or not topic:
                listener.heard()

    async def notify(self, topic: str = "") -> None:
        """Wake whoever waits on `topic` on the other nodes (everyone when empty); numbers
        released together share the one connection."""
        if self._conn is not None:
            async with self._lock:
                await self._conn.execute("SELECT pg_notify($1, $2)", CHANNEL, topic)

    async def close(self) -> None:
        self._closed = True
        async with self._lock:  # after a start under way: the connection it makes is closed
            if self._conn is not None:
                with suppress(Exception):
                    await self._conn.close()
                self._conn = None


def _terminate(connecting: asyncio.Future[Any]) -> None:
    if not connecting.cancelled() and connecting.exception() is None:
        connecting.result().terminate()
